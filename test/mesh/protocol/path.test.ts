/** The path state machine on a virtual clock: relay → direct on a pong, back within seconds. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PathMachine, PATH_TIMING } from '../../../src/mesh/protocol/path.ts';
import type { PathState } from '../../../src/mesh/protocol/path.ts';

/** Runs the machine from deadline to deadline until `until`, answering probes with `answer`. */
function run(m: PathMachine, from: number, until: number, answer: (candidate: string, t: number) => number | null, traffic = true): { t: number; probes: [number, string][] } {
  const probes: [number, string][] = [];
  let t = from;
  while (t <= until) {
    if (traffic) m.onTraffic(t);
    for (const c of m.poll(t)) {
      probes.push([t, c]);
      const rtt = answer(c, t);
      if (rtt !== null) m.onPong(t + rtt, c, rtt);
    }
    const next = Math.min(m.nextDeadline(), traffic ? t + 100 : Infinity);
    if (!Number.isFinite(next)) break;
    t = Math.max(next, t + 1);
  }
  return { t, probes };
}

describe('mesh path state machine', () => {
  it('starts relayed with a reason, and says why after probes go unanswered', () => {
    const m = new PathMachine(0);
    assert.deepEqual(m.state, { kind: 'relay', reason: 'no candidates' });
    assert.equal(m.nextDeadline(), Infinity, 'nothing to probe');
    m.setCandidates(0, ['192.0.2.1:51820', '198.51.100.1:51820']);
    assert.deepEqual(m.poll(0), ['192.0.2.1:51820', '198.51.100.1:51820']);
    assert.deepEqual(m.state, { kind: 'relay', reason: 'no UDP answer from any candidate' });
  });

  it('probes every 5 s for 30 s after a change, then once a minute', () => {
    const m = new PathMachine(0);
    m.setCandidates(0, ['192.0.2.1:1']);
    const { probes } = run(m, 0, 150_000, () => null, false);
    const times = probes.map(([t]) => t);
    assert.deepEqual(times.filter((t) => t < 30_000), [0, 5000, 10000, 15000, 20000, 25000]);
    assert.deepEqual(times.filter((t) => t >= 30_000), [30000, 90000, 150000]);
  });

  it('goes direct on the first pong, and back to relay within heartbeat + timeout when it stops', () => {
    const m = new PathMachine(0);
    m.setCandidates(0, ['192.0.2.1:1', '198.51.100.1:1']);
    let linkUp = true;
    const answer = (c: string) => (linkUp && c === '198.51.100.1:1' ? 3 : null);
    run(m, 0, 20_000, answer);
    assert.equal(m.state.kind, 'direct');
    assert.equal(m.state.kind === 'direct' && m.state.candidate, '198.51.100.1:1');
    linkUp = false;
    const down = 20_001;
    let t = down;
    const kind = (): string => m.state.kind; // read afresh: no narrowing across the loop
    while (kind() === 'direct' && t < down + 60_000) t = run(m, t, t + 100, answer).t;
    const detectedAfter = t - down;
    assert.ok(detectedAfter <= PATH_TIMING.heartbeatMs + PATH_TIMING.pongTimeoutMs + 100, `relay after ${detectedAfter} ms`);
    const after = m.state as PathState;
    assert.match(after.kind === 'relay' ? after.reason : '', /no UDP answer from 198\.51\.100\.1:1/);
    const changes = m.takeChanges();
    assert.deepEqual(changes.map((c) => c.to.kind), ['direct', 'relay']);
    // The link comes back: the burst of probes after the failure finds it again.
    linkUp = true;
    run(m, t, t + PATH_TIMING.burstIntervalMs + 1, answer);
    assert.equal(kind(), 'direct');
  });

  it('an idle direct path sends no heartbeats and is not given up', () => {
    const m = new PathMachine(0);
    m.setCandidates(0, ['192.0.2.1:1']);
    m.poll(0);
    m.onPong(5, '192.0.2.1:1', 5);
    const { probes } = run(m, 10_000, 600_000, () => null, false);
    assert.deepEqual(probes, []);
    assert.equal(m.state.kind, 'direct');
  });

  it('switches to a faster path only when it is clearly faster', () => {
    const m = new PathMachine(0);
    m.setCandidates(0, ['a:1', 'b:1']);
    m.poll(0);
    m.onPong(10, 'a:1', 10);
    m.onPong(11, 'b:1', 9);
    assert.equal(m.state.kind === 'direct' && m.state.candidate, 'a:1', '9 ms is not 20 % better than 10 ms');
    m.onPong(12, 'b:1', 5);
    assert.equal(m.state.kind === 'direct' && m.state.candidate, 'b:1');
  });

  it('ignores pongs from addresses that are not candidates, and leaves a path that stops being one', () => {
    const m = new PathMachine(0);
    m.setCandidates(0, ['a:1']);
    m.poll(0);
    m.onPong(1, 'evil:1', 1);
    assert.equal(m.state.kind, 'relay');
    m.onPong(2, 'a:1', 2);
    assert.equal(m.state.kind, 'direct');
    m.setCandidates(3, ['c:1']);
    assert.deepEqual(m.state, { kind: 'relay', reason: 'the direct address is no longer a candidate' });
  });

  it('Relay = always never probes; Relay = never still probes', () => {
    const always = new PathMachine(0, 'always');
    always.setCandidates(0, ['a:1']);
    assert.deepEqual(always.poll(0), []);
    always.onPong(1, 'a:1', 1);
    assert.deepEqual(always.state, { kind: 'relay', reason: 'relay = always' });
    assert.equal(always.relayAllowed, true);
    const never = new PathMachine(0, 'never');
    never.setCandidates(0, ['a:1']);
    assert.deepEqual(never.poll(0), ['a:1']);
    assert.equal(never.relayAllowed, false);
  });

  it('an unreachable direct address falls back at once', () => {
    const m = new PathMachine(0);
    m.setCandidates(0, ['a:1']);
    m.poll(0);
    m.onPong(1, 'a:1', 1);
    m.onUnreachable(2, 'a:1');
    assert.deepEqual(m.state, { kind: 'relay', reason: 'direct path to a:1 unreachable' });
  });
});
