/**
 * The daemon hardened as documented in SECURITY.md, end to end in network namespaces:
 * `wireweave -f --metrics 127.0.0.1:9586 --user nobody IF` against wireguard-go. After start-up
 * the process has no root left, `wg` still configures it through the root-owned socket,
 * packets flow both ways, and the Prometheus endpoint reports the handshake and the bytes.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createRig, genKeyPair, skipUnlessRig, WIREWEAVE_BIN } from '../support/netns.ts';
import type { Daemon, Rig, RigNode, Spawned } from '../support/netns.ts';
import { lookupUser } from '../../src/device/privileges.ts';

const skip = skipUnlessRig(['wireweave', 'wireguard-go']);

describe('wireweave --user nobody --metrics against wireguard-go', { skip }, () => {
  let rig: Rig;
  let a: RigNode, b: RigNode;
  let ww: Spawned;
  let ifA: string;
  let go: Daemon;
  const keysA = genKeyPair(), keysB = genKeyPair();

  before(async () => {
    rig = await createRig({ name: 'privileges' });
    [a, b] = rig.nodes as [RigNode, RigNode];
    ifA = rig.ifname('a');
    ww = rig.spawnIn(a, [process.execPath, WIREWEAVE_BIN, '-f', '--metrics', '127.0.0.1:9586', '--user', 'nobody', ifA], { env: { LOG_LEVEL: 'verbose' } });
    await ww.waitFor(/running as user nobody/, 15_000);
    go = await rig.startDaemon(b, 'wireguard-go');
    await rig.configure(a, ifA, {
      privateKey: keysA.privateKey, listenPort: 51820, address4: `${a.tun4}/24`,
      peers: [{ publicKey: keysB.publicKey, endpoint: `${b.addr4}:51821`, allowedIPs: [`${b.tun4}/32`] }],
    });
    await rig.configure(b, go.ifname, {
      privateKey: keysB.privateKey, listenPort: 51821, address4: `${b.tun4}/24`,
      peers: [{ publicKey: keysA.publicKey, endpoint: `${a.addr4}:51820`, allowedIPs: [`${a.tun4}/32`] }],
    });
  });

  after(async () => {
    await rig?.destroy();
    // Without root the daemon cannot unlink its socket in /var/run/wireguard (SECURITY.md).
    if (ifA) fs.rmSync(path.join('/var/run/wireguard', `${ifA}.sock`), { force: true });
  });

  it('runs as nobody with no way back, its socket still root\'s and answering wg', async () => {
    const nobody = lookupUser('nobody');
    const status = fs.readFileSync(`/proc/${ww.pid}/status`, 'utf8');
    assert.match(status, new RegExp(`^Uid:\\t${nobody.uid}\\t${nobody.uid}\\t${nobody.uid}\\t${nobody.uid}$`, 'm'), status);
    assert.match(status, /^CapEff:\t0+$/m);
    const sock = fs.statSync(path.join('/var/run/wireguard', `${ifA}.sock`));
    assert.equal(sock.uid, 0);
    assert.equal(sock.mode & 0o777, 0o600);
    assert.match(await rig.wgOk(['show', ifA, 'listen-port']), /^51820\n$/);
  });

  it('carries pings both ways', async () => {
    for (const [from, to] of [[a, b.tun4], [b, a.tun4]] as const) {
      const r = await rig.ping(from, to, { count: 3, interval: 0.2, wait: 2 });
      assert.equal(r.received, r.transmitted, r.output);
    }
  });

  it('reports the handshake and the traffic on the metrics endpoint', async () => {
    const r = await rig.execOk(a, ['curl', '-sf', 'http://127.0.0.1:9586/metrics']);
    const value = (name: string) => Number(new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'm').exec(r.stdout)?.[1]);
    assert.ok(value('wireweave_handshakes_completed_total') >= 1, r.stdout);
    assert.ok(value('wireweave_peer_receive_bytes_total') > 0, 'bytes from the peer');
    assert.equal(value('wireweave_peers'), 1);
    assert.ok(!r.stdout.includes(keysA.privateKey), 'no private key');
  });

  it('refuses what needs root now, over the UAPI, and keeps running', async () => {
    const res = await rig.wg(['set', ifA, 'listen-port', '81']);
    assert.notEqual(res.code, 0, 'a port below 1024 is refused');
    assert.ok(ww.running(), 'still running');
    assert.match(await rig.wgOk(['show', ifA, 'listen-port']), /^51820\n$/);
  });
});
