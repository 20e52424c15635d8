/**
 * The DNS codec (src/netstack/dns.ts): round trips, compression, and that malformed or hostile
 * messages (random bytes, pointer loops, truncation) give null instead of throwing or looping.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  decodeMessage, encodeQuery, encodeResponse, isValidHostname, TYPE_A, TYPE_AAAA, TYPE_CNAME,
} from '../../src/netstack/dns.ts';

describe('DNS codec', () => {
  it('round-trips a query and a response with A, AAAA and CNAME records', () => {
    const q = decodeMessage(encodeQuery(0x1234, 'www.Example.test', TYPE_A));
    assert.ok(q, 'query decodes');
    assert.equal(q.id, 0x1234, 'id');
    assert.equal(q.response, false, 'a query');
    assert.equal(q.recursionDesired, true, 'RD set');
    assert.deepEqual(q.questions, [{ name: 'www.Example.test', type: TYPE_A, class: 1 }], 'question');
    const r = decodeMessage(encodeResponse(q, [
      { name: 'www.Example.test', type: TYPE_CNAME, ttl: 30, value: 'web.example.test' },
      { name: 'web.example.test', type: TYPE_A, ttl: 30, value: '192.0.2.7' },
      { name: 'web.example.test', type: TYPE_AAAA, ttl: 30, value: '2001:db8::7' },
    ]));
    assert.ok(r, 'response decodes');
    assert.equal(r.response, true, 'a response');
    assert.deepEqual(r.answers.map((a) => a.value), ['web.example.test', '192.0.2.7', '2001:db8::7'], 'values');
  });

  it('follows compression pointers backwards only', () => {
    // Header, question "a.test" at 12, answer whose name is a pointer to 12.
    const q = encodeQuery(1, 'a.test', TYPE_A);
    const answer = [0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 0, 0, 1];
    const m = Uint8Array.from([...q.subarray(0, 6), 0, 1, ...q.subarray(8), ...answer]);
    m[2] = 0x81; m[3] = 0x80;
    assert.equal(decodeMessage(m)?.answers[0]?.name, 'a.test', 'pointer followed');
    // A pointer to itself (a loop) is rejected.
    const loop = Uint8Array.from([...q.subarray(0, 6), 0, 1, ...q.subarray(8), 0xc0, q.length, 0, 1, 0, 1, 0, 0, 0, 5, 0, 0]);
    assert.equal(decodeMessage(loop), null, 'self-pointer rejected');
  });

  it('never throws on random or truncated input', () => {
    const valid = encodeResponse(decodeMessage(encodeQuery(7, 'x.test', TYPE_A))!, [{ name: 'x.test', type: TYPE_A, ttl: 1, value: '10.0.0.1' }]);
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => { decodeMessage(bytes); }), { numRuns: 2000 });
    for (let i = 0; i < valid.length; i++) assert.doesNotThrow(() => decodeMessage(valid.subarray(0, i)), 'truncated');
    fc.assert(fc.property(fc.integer({ min: 0, max: valid.length - 1 }), fc.integer({ min: 0, max: 255 }), (at, v) => {
      const m = valid.slice();
      m[at] = v;
      decodeMessage(m);
    }), { numRuns: 2000 });
  });

  it('validates host names', () => {
    for (const good of ['a', 'example.test', 'x-1.example.test.', '_srv.example']) assert.ok(isValidHostname(good), good);
    for (const bad of ['', '.', 'a..b', '-a.test', 'a-.test', 'a b', 'x'.repeat(64) + '.test', `${'a.'.repeat(127)}a`]) assert.ok(!isValidHostname(bad), bad);
  });
});
