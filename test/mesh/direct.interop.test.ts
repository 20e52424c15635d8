/**
 * Must-show 2 of issue 14: A and B, mesh peers without Endpoint, can also reach each other
 * directly (the same bridge in H): the probes find the direct path and it is chosen (`show`
 * says direct, the WireGuard endpoint is B's address). Then the direct link goes away in the
 * middle of a TCP stream (the bridge ports become isolated: both still reach H, not each other):
 * the same connection carries on through the relay within 5 s; the link comes back and the peers
 * return to the direct path.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { skipUnlessRig, WIREWEAVE_BIN } from '../support/netns.ts';
import type { Rig } from '../support/netns.ts';
import { meshConf, meshLab, meshPeer, until, writeConf } from './mesh-rig.ts';
import type { MeshLab, MeshSide } from './mesh-rig.ts';

const skip = skipUnlessRig(['wireweave']);

/** B's receiver: counts and hashes what arrives, reports the longest silence between chunks. */
const RECEIVER = `import net from 'node:net'; import crypto from 'node:crypto';
net.createServer((s) => {
  const h = crypto.createHash('sha256'); let n = 0, last = 0, maxGap = 0;
  s.on('data', (d) => { const t = Date.now(); if (last) maxGap = Math.max(maxGap, t - last); last = t; n += d.length; h.update(d); });
  s.on('end', () => { console.log(JSON.stringify({ bytes: n, sha: h.digest('hex'), maxGapMs: maxGap })); process.exit(0); });
}).listen(9000, process.argv[2], () => console.log('listening'));
`;

/** A's sender: 32 KiB every 50 ms for the given seconds, pseudo-random, then its hash. */
const SENDER = `import net from 'node:net'; import crypto from 'node:crypto';
const [host, seconds] = [process.argv[2], Number(process.argv[3])];
const h = crypto.createHash('sha256'); let n = 0; const end = Date.now() + seconds * 1000;
const s = net.connect(9000, host, () => {
  const tick = setInterval(() => {
    if (Date.now() >= end) { clearInterval(tick); s.end(() => console.log(JSON.stringify({ bytes: n, sha: h.digest('hex') }))); return; }
    const c = crypto.randomBytes(32768); h.update(c); n += c.length; s.write(c);
  }, 50);
});
s.on('error', (e) => { console.error(e.message); process.exit(1); });
`;

describe('mesh: the direct path is preferred, and the relay takes over when it fails', { skip }, () => {
  let lab: MeshLab | undefined;
  let rig: Rig;
  let a: MeshSide, b: MeshSide;
  let dir = '';
  const port = 20000 + ((process.pid + 29) % 20000);
  const isolated = async (on: boolean) => {
    for (const p of ['pb', 'pc']) await rig.execOk(rig.nodes[0]!, ['ip', 'link', 'set', 'dev', p, 'type', 'bridge_slave', 'isolated', on ? 'on' : 'off']);
  };
  const pathOf = async (s: MeshSide) => /^ {2}path: (.*)$/m.exec((await rig.exec(s.node, [WIREWEAVE_BIN, 'show', s.ifname])).stdout)?.[1] ?? '';

  before(async () => {
    lab = await meshLab({ name: 'mesh-direct', port, sides: [{ ifname: 'da', isolated: false }, { ifname: 'db', isolated: false }] });
    rig = lab.rig;
    dir = lab.dir;
    [a, b] = lab.sides as [MeshSide, MeshSide];
    writeConf(dir, a, meshConf(a, lab.hub.url, [meshPeer(b)]));
    writeConf(dir, b, meshConf(b, lab.hub.url, [meshPeer(a)]));
    fs.writeFileSync(path.join(dir, 'receiver.mjs'), RECEIVER);
    fs.writeFileSync(path.join(dir, 'sender.mjs'), SENDER);
  });

  after(async () => {
    await lab?.destroy();
  });

  it('chooses the direct path when one answers', async (t) => {
    for (const s of [a, b]) {
      const up = await rig.exec(s.node, [WIREWEAVE_BIN, 'up', s.file], { timeoutMs: 30_000 });
      assert.equal(up.code, 0, up.stderr);
    }
    const started = Date.now();
    const chosen = new Map<MeshSide, string>();
    for (const [s, other] of [[a, b], [b, a]] as const) {
      const p = await until(`${s.node.label} on a direct path`, async () => { const p = await pathOf(s); return p.startsWith('direct') ? p : undefined; }, 20_000);
      // Either of the other side's underlay addresses: the first candidate to answer wins, and
      // IPv4 and IPv6 answer about as fast.
      const esc = (ip: string) => ip.replace(/[.[\]]/g, '\\$&');
      assert.match(p, new RegExp(`^direct (${esc(other.node.addr4)}|${esc(`[${other.node.addr6}]`)}):\\d+$`));
      chosen.set(s, p.slice('direct '.length));
    }
    t.diagnostic(`direct on both sides ${Date.now() - started} ms after up`);
    assert.equal((await rig.ping(a.node, b.node.tun6, { count: 3 })).received, 3);
    const dump = await rig.dump(a.ifname);
    assert.equal(dump.peers[0]!.endpoint, chosen.get(a), 'the WireGuard endpoint is the direct address');
  });

  it('one TCP stream: direct, relay within 5 s of the link going down, direct again when it is back', async (t) => {
    const receiver = rig.spawnIn(b.node, [process.execPath, path.join(dir, 'receiver.mjs'), b.node.tun4]);
    await receiver.waitFor(/listening/, 10_000);
    const sender = rig.spawnIn(a.node, [process.execPath, path.join(dir, 'sender.mjs'), b.node.tun4, '30']);
    await new Promise((r) => setTimeout(r, 4000));
    assert.match(await pathOf(a), /^direct /);
    await isolated(true);
    const down = Date.now();
    await until('A back on the relay', async () => (await pathOf(a)).startsWith('relay'), 10_000);
    const toRelay = Date.now() - down;
    t.diagnostic(`A on the relay ${toRelay} ms after the direct link went down: ${await pathOf(a)}`);
    assert.ok(toRelay <= 5000, `${toRelay} ms to fall back`);
    await new Promise((r) => setTimeout(r, 6000));
    await isolated(false);
    const back = Date.now();
    await until('A direct again', async () => (await pathOf(a)).startsWith('direct'), 20_000);
    t.diagnostic(`A direct again ${Date.now() - back} ms after the link came back`);
    // Polled: the rig's processes do not keep the test's event loop alive by themselves.
    await until('the stream to end', async () => !sender.running() && !receiver.running(), 60_000);
    const [sent, got] = [sender.stdout(), receiver.stdout()];
    const s = JSON.parse(sent.trim().split('\n').pop()!) as { bytes: number; sha: string };
    const r = JSON.parse(got.trim().split('\n').pop()!) as { bytes: number; sha: string; maxGapMs: number };
    t.diagnostic(`${s.bytes} bytes over one connection; longest silence at the receiver ${r.maxGapMs} ms`);
    assert.equal(r.bytes, s.bytes);
    assert.equal(r.sha, s.sha);
    assert.ok(r.maxGapMs < 5000, `the stream stalled ${r.maxGapMs} ms`);
  });
});
