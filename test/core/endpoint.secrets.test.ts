/**
 * Secret hygiene of the endpoint, looked at from inside (the API cannot show erased memory):
 * what a key change, a key removal, a peer removal and the zeroing timer leave behind.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Simulation, packet, pair } from '../support/pair.ts';
import type { Endpoint } from '../../src/core/endpoint.ts';
import { MESSAGE_RESPONSE, Response, writeType } from '../../src/core/messages.ts';
import { CookieGenerator } from '../../src/core/cookie.ts';

interface PeerInside {
  presharedKey: Uint8Array; staticStatic: Uint8Array | null; queue: Uint8Array[];
  cookies: { cookie: Uint8Array | null };
  hasCookieState: boolean;
}
const inside = (ep: Endpoint<string>) => ep as unknown as {
  local: { privateKey: Uint8Array } | null;
  peers: Map<number, PeerInside>;
};

const zero = (b: Uint8Array) => b.every((x) => x === 0);

describe('endpoint secrets', () => {
  it("a new private key zeroes the endpoint's copy of the old one", () => {
    const { a } = pair();
    const old = inside(a.endpoint).local!.privateKey;
    assert.ok(!zero(old));
    a.endpoint.setPrivateKey(new Uint8Array(32).fill(4));
    assert.ok(zero(old), 'old copy zeroed');
    const second = inside(a.endpoint).local!.privateKey;
    a.endpoint.setPrivateKey(null);
    assert.ok(zero(second), 'zeroed when the key is cleared too');
  });

  it('clearing the key zeroes the cookie secret (its deadline goes); with no key ever set it is a no-op', () => {
    const sim = new Simulation();
    const v = sim.node('v', 61);
    v.endpoint.setUnderLoad(true);
    const msg = new Uint8Array(Response.size);
    writeType(msg, MESSAGE_RESPONSE);
    new CookieGenerator(sim.crypto, v.publicKey).addMacs(msg, 0);
    v.endpoint.recv(1000, msg, 'x');
    assert.equal(v.endpoint.counters.cookieRepliesSent, 1);
    assert.ok(Number.isFinite(v.endpoint.nextDeadline()), 'a secret was drawn');
    v.endpoint.setPrivateKey(null);
    assert.equal(v.endpoint.nextDeadline(), Infinity, 'and zeroed');
    const keyless = sim.node('k', 62, { privateKey: null });
    keyless.endpoint.setPrivateKey(null);
    assert.equal(keyless.endpoint.publicKey, null);
  });

  it('removing a peer zeroes its preshared key and static-static secret and drops its queue', () => {
    const { sim, a, aToB } = pair({ psk: new Uint8Array(32).fill(7) });
    sim.cut.add('a>b');
    a.send(aToB, packet(1, 0));
    const p = inside(a.endpoint).peers.get(aToB)!;
    const psk = p.presharedKey, ss = p.staticStatic!;
    assert.ok(!zero(psk) && !zero(ss) && p.queue.length === 1);
    a.endpoint.removePeer(aToB);
    assert.ok(zero(psk), 'preshared key zeroed');
    assert.ok(zero(ss), 'static-static zeroed');
    assert.equal(p.queue.length, 0);
  });

  it('a cookie received from the peer is forgotten with the peer and when keys are zeroed', () => {
    for (const how of ['remove', 'zero'] as const) {
      const { sim, a, b, aToB } = pair();
      b.endpoint.setUnderLoad(true);
      a.send(aToB, packet(1, 0));
      sim.run(50);
      const p = inside(a.endpoint).peers.get(aToB)!;
      const cookie = p.cookies.cookie!;
      assert.ok(cookie && !zero(cookie), 'a holds a cookie from b');
      if (how === 'remove') a.endpoint.removePeer(aToB);
      else {
        sim.run(10_000);
        b.endpoint.setUnderLoad(false);
        sim.runUntil(a.endpoint.inspectPeer(aToB).timers.zeroKeyMaterial);
        assert.equal(a.eventsOf('keysZeroed').length, 1);
      }
      assert.equal(p.cookies.cookie, null, how);
      assert.ok(zero(cookie), `${how}: the cookie bytes are zeroed`);
    }
  });

  it('cookie state is made only when the peer handshakes, and removing or zeroing before that makes none', () => {
    const { sim, a, aToB } = pair();
    const p = inside(a.endpoint).peers.get(aToB)!;
    assert.equal(p.hasCookieState, false, 'a configured peer holds no mac keys yet');
    sim.run(10_000);
    assert.equal(p.hasCookieState, false, 'nor after idle time');
    a.endpoint.removePeer(aToB);
    assert.equal(p.hasCookieState, false, 'removal does not make it');

    const again = pair();
    const q = inside(again.a.endpoint).peers.get(again.aToB)!;
    again.a.send(again.aToB, packet(1, 0));
    again.sim.run(50);
    assert.equal(q.hasCookieState, true, 'the first initiation makes it');
    assert.equal(again.b.delivered.length, 1, 'and the handshake completes with it');
  });
});
