/**
 * What the device logs under a handshake flood: never a line per packet, even at verbose —
 * cookie replies are counted (the metrics export them) and summed up when under-load mode ends.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Device } from '../../src/device/device.ts';
import { MemoryTun } from '../../src/device/tun-memory.ts';
import { MemoryBind, MemoryNetwork } from '../../src/device/bind-memory.ts';
import { ManualClock } from '../../src/device/clock.ts';
import { encodeHex, generatePrivateKey } from '../../src/core/keys.ts';
import { seededRng } from '../../src/core/rng.ts';
import { nodeCrypto } from '../../src/crypto/node.ts';
import { icmpEcho4 } from '../support/ip.ts';

describe('logging under load', () => {
  it('logs the under-load transitions with a count, not each cookie reply', async () => {
    const net = new MemoryNetwork();
    const clock = new ManualClock();
    const lines: string[] = [];
    const logger = { error: (m: string) => lines.push(`E ${m}`), verbose: (m: string) => lines.push(`V ${m}`) };
    const keyA = generatePrivateKey(seededRng(1)), keyB = generatePrivateKey(seededRng(2));
    const pub = (k: Uint8Array) => encodeHex(nodeCrypto.x25519PrivateKey(k).publicKey);
    const a = new Device({ tun: new MemoryTun({ name: 'wwla' }), bind: new MemoryBind(net, '192.0.2.1'), clock, rng: seededRng(1), logger });
    const tunB = new MemoryTun({ name: 'wwlb' });
    const b = new Device({ tun: tunB, bind: new MemoryBind(net, '192.0.2.2'), clock, rng: seededRng(2) });
    await a.ipcSet(`private_key=${encodeHex(keyA)}\nlisten_port=51820\npublic_key=${pub(keyB)}\nallowed_ip=10.9.0.2/32\n`);
    await b.ipcSet(`private_key=${encodeHex(keyB)}\nlisten_port=51820\npublic_key=${pub(keyA)}\nendpoint=192.0.2.1:51820\nallowed_ip=10.9.0.1/32\n`);
    await a.up();
    await b.up();
    a.endpoint.setUnderLoad(true);
    // B's initiations get cookie replies; its retry every REKEY_TIMEOUT carries mac2 and completes.
    for (let i = 0; i < 5; i++) {
      tunB.inject(icmpEcho4('10.9.0.2', '10.9.0.1', 1, i, new Uint8Array(8)));
      await clock.advance(100);
    }
    await clock.advance(6000);
    a.endpoint.setUnderLoad('auto');
    await clock.advance(30_000);
    const sent = a.endpoint.counters.cookieRepliesSent;
    assert.ok(sent >= 1, 'cookie replies were sent');
    assert.ok(!lines.some((l) => /cookie ?reply ?sent|cookieReplySent/i.test(l)), lines.join('\n'));
    assert.ok(lines.includes('V under load: handshake messages without a valid cookie (mac2) get a cookie reply'), lines.join('\n'));
    assert.ok(lines.includes(`V no longer under load; ${sent} cookie replies sent meanwhile`), lines.join('\n'));
    await a.close();
    await b.close();
  });
});
