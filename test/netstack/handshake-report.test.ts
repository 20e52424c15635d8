/**
 * The handshake report of a rootless tunnel (src/netstack/handshake-report.ts) on virtual time:
 * the first handshake with each peer is reported, a peer that does not answer is named after the
 * timeout with what to check, and a later success after such a warning is reported again.
 */
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encodeBase64 } from '../../src/core/keys.ts';
import { ManualClock } from '../../src/device/clock.ts';
import { reportHandshakes } from '../../src/netstack/handshake-report.ts';
import type { HandshakeReport } from '../../src/netstack/handshake-report.ts';
import { makePair } from './helpers.ts';
import type { Pair } from './helpers.ts';

describe('handshake report', () => {
  let pair: Pair | undefined;
  let report: HandshakeReport | undefined;
  afterEach(async () => {
    report?.stop();
    await pair?.alice.destroy();
    await pair?.bob.destroy();
  });

  const bobKey = (p: Pair) => encodeBase64(p.alice.config.peers[0]!.publicKey);

  it('starts a handshake at once and reports it when it completes', async () => {
    const clock = new ManualClock();
    pair = await makePair({ options: { clock } });
    const lines: string[] = [], verbose: string[] = [];
    report = reportHandshakes(pair.alice.device, { clock, log: (l) => lines.push(l), verbose: (l) => verbose.push(l) });
    await clock.advance(10);
    const key = bobKey(pair);
    assert.ok(report.connected.has(key), 'bob is connected without any traffic');
    assert.deepEqual(lines, [`handshake with peer ${key} (192.0.2.2:51820) completed`]);
    await clock.advance(20_000);
    assert.equal(lines.length, 1, 'no warning once connected');
  });

  it('names a peer that does not answer after the timeout, then reports the late handshake', async () => {
    const clock = new ManualClock();
    pair = await makePair({ options: { clock } });
    let bobDown = true;
    pair.network.filter = (_d, _from, to) => !(bobDown && to.port === 51820);
    const lines: string[] = [];
    report = reportHandshakes(pair.alice.device, { clock, log: (l) => lines.push(l), timeoutMs: 15_000 });
    await clock.advance(14_999);
    assert.deepEqual(lines, [], 'nothing said before the timeout');
    await clock.advance(1);
    const key = bobKey(pair);
    assert.deepEqual(lines, [`no handshake with peer ${key} (192.0.2.2:51820) after 15 s; check its Endpoint, its keys and that it lists our public key`]);
    bobDown = false;
    await clock.advance(6_000); // the next retransmission (REKEY_TIMEOUT, 5 s + jitter)
    assert.equal(lines.length, 2, lines.join('\n'));
    assert.match(lines[1]!, new RegExp(`^handshake with peer ${key.replace(/[+/]/g, '\\$&')} \\(192\\.0\\.2\\.2:51820\\) completed after \\d+ s$`));
  });

  it('reports a peer whose handshake attempts ran out (REKEY_ATTEMPT_TIME)', async () => {
    const clock = new ManualClock();
    pair = await makePair({ options: { clock } });
    pair.network.filter = (_d, _from, to) => to.port !== 51820;
    const lines: string[] = [];
    report = reportHandshakes(pair.alice.device, { clock, log: (l) => lines.push(l), timeoutMs: 600_000 });
    await clock.advance(100_000);
    assert.equal(lines.length, 1, lines.join('\n'));
    assert.match(lines[0]!, /^no handshake with peer .* after retrying for 90 s; check its Endpoint/);
  });
});
