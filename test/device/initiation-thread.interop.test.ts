/**
 * The wireweave daemon with its handshake initiations computed on the initiation thread
 * (WIREWEAVE_INITIATION_THREAD=always) against wireguard-go in network namespaces: the
 * initiations the thread makes are ones wireguard-go answers, and traffic flows both ways.
 * The daemon's metrics show that the thread computed them.
 *
 * Needs root, /dev/net/tun, wireguard-go, wg, ip, ping; skipped with the reason otherwise,
 * except under CI (process.env.CI set), where that fails.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { requireRig, rigLeftovers, setupPair, skipUnlessRig } from '../support/netns.ts';
import type { Pair } from '../support/netns.ts';
import { FETCH_METRICS, parseMetrics } from '../support/flood-tools.ts';
import type { Metrics } from '../support/flood-tools.ts';
import { until } from '../support/until.ts';

const METRICS_ADDR = '127.0.0.1:9588';

describe('initiation thread: wireweave (A) dials wireguard-go (B)', { skip: skipUnlessRig(['wireweave', 'wireguard-go']) }, () => {
  let pair: Pair | undefined;

  before(async () => {
    requireRig(['wireweave', 'wireguard-go']);
    pair = await setupPair('initiation thread', 'wireweave', 'wireguard-go', {
      daemonEnv: { WIREWEAVE_INITIATION_THREAD: 'always', WIREWEAVE_METRICS: METRICS_ADDR },
    });
  });

  after(async () => {
    await pair?.rig.destroy();
    assert.deepEqual(rigLeftovers(), [], 'left behind');
  });

  it('handshakes with initiations from the thread, and carries traffic both ways', async () => {
    const p = pair!;
    const metrics = async (): Promise<Metrics> => {
      const out = await p.rig.execOk(p.a, [process.execPath, '-e', FETCH_METRICS, `http://${METRICS_ADDR}/metrics`]);
      return parseMetrics(out.stdout);
    };
    await until('the initiation thread is up', () => p.da.logs().includes('initiation thread started (always on)'), 15_000);
    const before = await metrics();
    assert.equal(before.wireweave_handshakes_completed_total, 0, 'no handshake yet');
    // A sends first, so A initiates.
    for (const to of [p.b.tun4, p.b.tun6]) {
      const r = await p.rig.ping(p.a, to, { count: 3, interval: 0.2, wait: 2 });
      assert.equal(r.received, r.transmitted, `ping A -> ${to}: ${r.output}\n${p.da.logs().slice(-2000)}`);
    }
    const m = await metrics();
    assert.ok(m.wireweave_handshake_initiations_offloaded_total! >= 1, `offloaded: ${m.wireweave_handshake_initiations_offloaded_total}`);
    assert.equal(m.wireweave_handshake_initiations_offloaded_total, m.wireweave_handshakes_initiated_total, 'every initiation came from the thread');
    assert.ok(m.wireweave_handshakes_completed_total! >= 1);
    const back = await p.rig.ping(p.b, p.a.tun4, { count: 3, interval: 0.2, wait: 2 });
    assert.equal(back.received, back.transmitted, `ping B -> A: ${back.output}`);
    const dump = (await p.rig.execOk(p.b, ['wg', 'show', p.db.ifname, 'latest-handshakes'])).stdout;
    assert.match(dump, /\s[1-9]\d+\s*$/m, `wireguard-go saw a handshake: ${dump}`);
  });
});
