/**
 * `DNS = 10.0.0.2, corp, example.test`: the entries that are not addresses are search domains,
 * which wg-quick hands to resolvconf; the tunnel's resolver applies them as resolv.conf does
 * with ndots:1 (a short name is tried with each domain in order, then as is).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { decodeMessage, encodeResponse, TYPE_A } from '../../src/netstack/dns.ts';
import { searchList } from '../../src/netstack/resolver.ts';
import { makePair } from './helpers.ts';
import type { Pair } from './helpers.ts';

describe('search list (ndots:1, as resolv.conf)', () => {
  it('puts the search domains first for a name without a dot, and only then the name', () => {
    assert.deepEqual(searchList('db', ['corp', 'example.test']), ['db.corp', 'db.example.test', 'db']);
  });
  it('tries a dotted name as is, and a name ending in a dot as is without the dot', () => {
    assert.deepEqual(searchList('db.corp', ['corp']), ['db.corp']);
    assert.deepEqual(searchList('db.', ['corp']), ['db']);
    assert.deepEqual(searchList('db', []), ['db']);
  });
});

describe('DNS search domains through the tunnel', () => {
  let pair: Pair;
  const asked: string[] = [];
  before(async () => {
    pair = await makePair({ aliceInterface: 'DNS = 10.0.0.2, corp, example.test' });
    const zone: Record<string, string> = { 'db.corp': '10.0.0.2', 'web.example.test': '10.0.0.2', plain: '10.0.0.2' };
    const dns = pair.bob.udp(53);
    dns.on('message', (msg: Buffer, rinfo: { address: string; port: number }) => {
      const q = decodeMessage(msg);
      if (!q || q.questions.length !== 1) return;
      const { name, type } = q.questions[0]!;
      if (type === TYPE_A) asked.push(name.toLowerCase());
      const value = zone[name.toLowerCase()];
      const answers = value && type === TYPE_A ? [{ name, type, ttl: 60, value }] : [];
      dns.send(encodeResponse(q, answers, value ? 0 : 3), rinfo.port, rinfo.address);
    });
  });
  after(async () => { await pair.close(); });

  const resolveA = async (name: string) => { asked.length = 0; return pair.alice.resolve(name, { family: 4 }); };

  it('resolves a short name with the first search domain that has it', async () => {
    assert.deepEqual(await resolveA('db'), ['10.0.0.2']);
    assert.deepEqual(asked, ['db.corp']);
    assert.deepEqual(await resolveA('web'), ['10.0.0.2']);
    assert.deepEqual(asked, ['web.corp', 'web.example.test'], 'NXDOMAIN for web.corp moves on to the next domain');
  });

  it('tries the short name as is after the search domains', async () => {
    assert.deepEqual(await resolveA('plain'), ['10.0.0.2']);
    assert.deepEqual(asked, ['plain.corp', 'plain.example.test', 'plain']);
  });

  it('does not search for a dotted name or one ending in a dot', async () => {
    await assert.rejects(resolveA('db.nowhere'), { code: 'ENOTFOUND' });
    assert.deepEqual(asked, ['db.nowhere']);
    await assert.rejects(resolveA('db.'), { code: 'ENOTFOUND' });
    assert.deepEqual(asked, ['db']);
  });

  it('names every name it tried when none exists', async () => {
    await assert.rejects(resolveA('nothing'), (err: NodeJS.ErrnoException) => {
      assert.equal(err.code, 'ENOTFOUND');
      assert.match(err.message, /nothing\.corp, nothing\.example\.test, nothing/);
      return true;
    });
  });

  it('connects to a short name through the search domain', async () => {
    const server = pair.bob.listen(7301);
    server.on('connection', (s) => s.end('hi'));
    const c = pair.alice.connect({ host: 'db', port: 7301 });
    await once(c, 'connect');
    assert.equal(c.remoteAddress, '10.0.0.2');
    c.resume();
    await once(c, 'end');
    c.destroy();
    server.close();
  });
});
