/**
 * `wireweave up/down` and `wg-quick` with WG_QUICK_USERSPACE_IMPLEMENTATION=bin/wireweave, each
 * against wireguard-go brought up by the real wg-quick, in namespaces of the test's own.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRig, genKeyPair, genPsk, skipUnlessRig, WIREWEAVE_BIN } from '../support/netns.ts';
import type { KeyPair, Rig, RigNode } from '../support/netns.ts';

const skip = skipUnlessRig(['wireweave', 'wireguard-go']);

interface Side { node: RigNode; keys: KeyPair; ifname: string; file: string }

function conf(self: Side, peer: Side, psk: string, port: number, peerPort: number, extra: { allowed?: string; table?: string } = {}): string {
  return [
    '[Interface]',
    `PrivateKey = ${self.keys.privateKey}`,
    `Address = ${self.node.tun4}/24, ${self.node.tun6}/64`,
    `ListenPort = ${port}`,
    ...(extra.table ? [`Table = ${extra.table}`] : []),
    `PostUp = echo up %i > /dev/null`,
    '',
    '[Peer]',
    `PublicKey = ${peer.keys.publicKey}`,
    `PresharedKey = ${psk}`,
    `AllowedIPs = ${extra.allowed ?? `${peer.node.tun4}/32, ${peer.node.tun6}/128`}`,
    `Endpoint = ${peer.node.addr4}:${peerPort}`,
    '',
  ].join('\n');
}

async function waitGone(path: string, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (!fs.existsSync(path)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return !fs.existsSync(path);
}

/** A config file named exactly IFNAME.conf (wg-quick takes the interface name from it), mode 0600. */
let confDir = '';
function writeConf(ifname: string, text: string): string {
  if (!confDir) confDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ww-quick-'));
  const file = path.join(confDir, `${ifname}.conf`);
  fs.writeFileSync(file, text, { mode: 0o600 });
  return file;
}

describe('wireweave up/down and wg-quick with wireweave, against wireguard-go', { skip }, () => {
  let rig: Rig;
  let a: Side, b: Side;
  const psk = genPsk();

  before(async () => {
    rig = await createRig({ name: 'quick' });
    const [na, nb] = rig.nodes;
    a = { node: na!, keys: genKeyPair(), ifname: rig.ifname('qa'), file: '' };
    b = { node: nb!, keys: genKeyPair(), ifname: rig.ifname('qb'), file: '' };
    a.file = writeConf(a.ifname, conf(a, b, psk, 51820, 51821));
    b.file = writeConf(b.ifname, conf(b, a, psk, 51821, 51820));
    // wireguard-go on B, through the real wg-quick.
    const up = await rig.exec(b.node, ['wg-quick', 'up', b.file], { env: { WG_QUICK_USERSPACE_IMPLEMENTATION: 'wireguard-go' }, timeoutMs: 20000 });
    assert.equal(up.code, 0, up.stderr);
  });

  after(async () => {
    // Our daemons detach (like wireguard-go), so the rig does not own their PIDs: deleting
    // the links ends them, even when a test failed half way.
    await rig?.exec(a.node, ['ip', 'link', 'del', a.ifname]);
    await rig?.exec(b.node, ['wg-quick', 'down', b.file], { timeoutMs: 10000 });
    await rig?.destroy();
    if (confDir) fs.rmSync(confDir, { recursive: true, force: true });
  });

  it('wireweave up brings up a working tunnel, show reports it, down removes it and the daemon exits', async () => {
    const up = await rig.exec(a.node, [WIREWEAVE_BIN, 'up', a.file], { timeoutMs: 20000 });
    assert.equal(up.code, 0, up.stderr);
    assert.match(up.stderr, new RegExp(`\\[#\\] ip -4 address add ${a.node.tun4.replaceAll('.', '\\.')}/24 dev ${a.ifname}`));
    for (const [from, to] of [[a, b], [b, a]] as const) {
      const p4 = await rig.ping(from.node, to.node.tun4, { count: 3, interval: 0.2, wait: 2 });
      assert.equal(p4.received, 3, p4.output);
      const p6 = await rig.ping(from.node, to.node.tun6, { count: 3, interval: 0.2, wait: 2 });
      assert.equal(p6.received, 3, p6.output);
    }
    const show = await rig.exec(a.node, [WIREWEAVE_BIN, 'show', a.ifname]);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, new RegExp(`peer: ${b.keys.publicKey.replaceAll('+', '\\+')}`));
    assert.match(show.stdout, /latest handshake: /);
    assert.match(show.stdout, /preshared key: \(hidden\)/);
    assert.ok(!show.stdout.includes(a.keys.privateKey) && !show.stdout.includes(psk), 'no secrets in show');
    // The real wg reads the same state.
    const dump = await rig.dump(a.ifname);
    assert.ok(dump.peers[0]!.latestHandshake > 0 && dump.peers[0]!.hasPresharedKey, 'wg sees handshake and psk');

    const down = await rig.exec(a.node, [WIREWEAVE_BIN, 'down', a.file], { timeoutMs: 20000 });
    assert.equal(down.code, 0, down.stderr);
    assert.ok(await waitGone(`/var/run/wireguard/${a.ifname}.sock`, 5000), 'daemon removed its socket and exited');
    const link = await rig.exec(a.node, ['ip', 'link', 'show', a.ifname]);
    assert.notEqual(link.code, 0);
  });

  it('wg-quick up/down with WG_QUICK_USERSPACE_IMPLEMENTATION=bin/wireweave', async () => {
    const env = { WG_QUICK_USERSPACE_IMPLEMENTATION: WIREWEAVE_BIN };
    const up = await rig.exec(a.node, ['wg-quick', 'up', a.file], { env, timeoutMs: 20000 });
    assert.equal(up.code, 0, up.stderr);
    assert.match(up.stderr, /Falling back to slow userspace implementation|userspace/i);
    const p = await rig.ping(a.node, b.node.tun4, { count: 3, interval: 0.2, wait: 2 });
    assert.equal(p.received, 3, p.output);
    const p6 = await rig.ping(b.node, a.node.tun6, { count: 3, interval: 0.2, wait: 2 });
    assert.equal(p6.received, 3, p6.output);
    const down = await rig.exec(a.node, ['wg-quick', 'down', a.file], { env, timeoutMs: 20000 });
    assert.equal(down.code, 0, down.stderr);
    assert.ok(await waitGone(`/var/run/wireguard/${a.ifname}.sock`, 5000), 'daemon exited when wg-quick deleted the link');
  });

  it('wireweave up with AllowedIPs 0.0.0.0/0: the fwmark policy routing keeps the tunnel out of itself', async () => {
    const full = writeConf(a.ifname, conf(a, b, psk, 51820, 51821, { allowed: '0.0.0.0/0' }));
    const up = await rig.exec(a.node, [WIREWEAVE_BIN, 'up', full], { timeoutMs: 20000 });
    assert.equal(up.code, 0, up.stderr);
    assert.match(up.stderr, /fwmark 51820/);
    assert.match(up.stderr, /suppress_prefixlength 0/);
    const p = await rig.ping(a.node, b.node.tun4, { count: 3, interval: 0.2, wait: 2 });
    assert.equal(p.received, 3, p.output);
    const down = await rig.exec(a.node, [WIREWEAVE_BIN, 'down', full], { timeoutMs: 20000 });
    assert.equal(down.code, 0, down.stderr);
    const rules = await rig.exec(a.node, ['ip', '-4', 'rule', 'show']);
    assert.ok(!rules.stdout.includes('lookup 51820'), `policy rules removed:\n${rules.stdout}`);
  });

  it('reports a bad config file by file and line, changing nothing', async () => {
    const bad = writeConf(a.ifname, '[Interface]\nPrivateKey = nope\n');
    const r = await rig.exec(a.node, [WIREWEAVE_BIN, 'up', bad]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`${a.ifname}\\.conf:2: `));
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.equal((await rig.exec(a.node, ['ip', 'link', 'show', a.ifname])).code !== 0, true);
  });

  it('takes 1000 peers with 10 allowed IPs each through wg setconf and reads them back', async (t) => {
    const ifname = rig.ifname('qm');
    const start = await rig.exec(a.node, [WIREWEAVE_BIN, ifname], { timeoutMs: 20000 });
    assert.equal(start.code, 0, start.stderr);
    try {
      const lines = ['[Interface]', `PrivateKey = ${genKeyPair().privateKey}`, 'ListenPort = 52000'];
      const want = new Map<string, string[]>();
      for (let i = 0; i < 1000; i++) {
        const k = genKeyPair().publicKey;
        const ips = Array.from({ length: 10 }, (_, j) => `10.${100 + (i >> 8)}.${i & 255}.${j * 16}/28`);
        want.set(k, ips);
        lines.push('', '[Peer]', `PublicKey = ${k}`, `AllowedIPs = ${ips.join(', ')}`, `Endpoint = 192.0.2.${i % 250}:${1000 + i}`);
      }
      const file = rig.secretFile('many.conf', lines.join('\n') + '\n');
      const t0 = Date.now();
      await rig.wgOk(['setconf', ifname, file]);
      const setMs = Date.now() - t0;
      const conf = await rig.wgOk(['showconf', ifname]);
      t.diagnostic(`wg setconf of 1000 peers × 10 allowed IPs: ${setMs} ms`);
      const got = new Map<string, string[]>();
      let current = '';
      for (const line of conf.split('\n')) {
        const m = /^(\w+) = (.*)$/.exec(line);
        if (!m) continue;
        if (m[1] === 'PublicKey') { current = m[2]!; got.set(current, []); }
        if (m[1] === 'AllowedIPs' && current) got.get(current)!.push(...m[2]!.split(', '));
      }
      assert.equal(got.size, 1000);
      for (const [k, ips] of want) assert.deepEqual(got.get(k), ips);
    } finally {
      await rig.exec(a.node, ['ip', 'link', 'del', ifname]);
      assert.ok(await waitGone(`/var/run/wireguard/${ifname}.sock`, 5000), 'daemon exited with its link');
    }
  });
});
