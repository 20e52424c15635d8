/**
 * The command line as wg and wg-quick users type it, checked against the real tools in
 * namespaces of the test's own: refused words create nothing; `wireweave show IF FIELD` prints
 * what `wg show IF FIELD` prints, for a wireweave and a wireguard-go interface; errors are in
 * words; a default-route config gets the same nftables table, policy rules and routes as
 * wg-quick (with wireguard-go) installs for the same file; `down` leaves no stale socket
 * behind a daemon that ran as `--user nobody`.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRig, genKeyPair, requireRig, skipUnlessRig, WIREWEAVE_BIN } from '../support/netns.ts';
import type { KeyPair, Rig, RigNode } from '../support/netns.ts';
import { SHOW_FIELDS } from '../../src/cli/show.ts';

const skip = skipUnlessRig(['wireweave', 'wireguard-go']);
const PSK = Buffer.alloc(32, 7).toString('base64');
const GO_ENV = { WG_QUICK_USERSPACE_IMPLEMENTATION: 'wireguard-go' };

let confDir = '';
/** A 0600 config file named IFNAME.conf (wg-quick takes the interface name from it). */
function writeConf(ifname: string, lines: string[]): string {
  if (!confDir) confDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ww-cli-'));
  const file = path.join(confDir, `${ifname}.conf`);
  fs.writeFileSync(file, lines.join('\n') + '\n', { mode: 0o600 });
  return file;
}

async function waitGone(p: string, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 100))) if (!fs.existsSync(p)) return true;
  return !fs.existsSync(p);
}

describe('the wireweave command line against wg, wg-quick and wireguard-go', { skip }, () => {
  let rig: Rig;
  let a: RigNode, b: RigNode, c: RigNode;
  const keysA = genKeyPair(), keysB = genKeyPair(), keysC = genKeyPair();
  let ifA = '', ifB = '', fileA = '', fileB = '';
  const links: [RigNode, string][] = [];

  const peerLines = (keys: KeyPair, endpoint: string, allowed: string) =>
    ['', '[Peer]', `PublicKey = ${keys.publicKey}`, `AllowedIPs = ${allowed}`, `Endpoint = ${endpoint}`];

  before(async () => {
    requireRig(['wireweave', 'wireguard-go']);
    rig = await createRig({ name: 'cli', nodes: 3 });
    // The hub (node 0, with the bridge) hosts only the tests that need no traffic.
    [c, a, b] = rig.nodes as [RigNode, RigNode, RigNode];
    ifA = rig.ifname('ca');
    ifB = rig.ifname('cb');
    fileB = writeConf(ifB, [
      '[Interface]', `PrivateKey = ${keysB.privateKey}`, `Address = ${b.tun4}/24`, 'ListenPort = 51821',
      ...peerLines(keysA, `${a.addr4}:51820`, `${a.tun4}/32`),
      `PresharedKey = ${PSK}`,
      ...peerLines(keysC, `${c.addr4}:51822`, `${c.tun4}/32, ${c.tun6}/128`),
    ]);
    fileA = writeConf(ifA, [
      '[Interface]', `PrivateKey = ${keysA.privateKey}`, `Address = ${a.tun4}/24`, 'ListenPort = 51820',
      ...peerLines(keysB, `${b.addr4}:51821`, `${b.tun4}/32, 10.77.0.0/16`),
      `PresharedKey = ${PSK}`,
      ...peerLines(keysC, `[${c.addr6}]:51822`, `${c.tun6}/128`),
      'PersistentKeepalive = 0',
    ]);
    const upB = await rig.exec(b, ['wg-quick', 'up', fileB], { env: GO_ENV, timeoutMs: 20_000 });
    assert.equal(upB.code, 0, upB.stderr);
    links.push([b, ifB]);
    const upA = await rig.exec(a, [WIREWEAVE_BIN, 'up', fileA], { timeoutMs: 20_000 });
    assert.equal(upA.code, 0, upA.stderr);
    links.push([a, ifA]);
    // A handshake, so that latest-handshakes and transfer have something to show.
    const p = await rig.ping(a, b.tun4, { count: 6, interval: 0.5, wait: 2 });
    const diag = async () => [
      (await rig.exec(a, ['wg', 'show', ifA])).stdout, (await rig.exec(b, ['wg', 'show', ifB])).stdout,
      (await rig.exec(a, ['ip', 'route'])).stdout, (await rig.exec(b, ['ip', 'route'])).stdout, (await rig.exec(a, ['ip', 'addr'])).stdout,
      (await rig.exec(a, ['ping', '-c1', '-W1', b.addr4])).stdout,
    ].join('\n');
    assert.ok(p.received > 0, p.output + await diag());
  });

  after(async () => {
    // Our daemons detach, as wireguard-go does: deleting their links ends them.
    for (const [node, name] of links) await rig?.exec(node, ['ip', 'link', 'del', name]);
    await rig?.destroy();
    if (confDir) fs.rmSync(confDir, { recursive: true, force: true });
  });

  it('refuses wg verbs and typos without creating an interface or a socket', async () => {
    for (const [word, hint] of [['showconf', '`wg showconf`'], ['set', '`wg set`'], ['setconf', '`wg setconf`'], ['save', '`wg-quick save`'], ['genky', '`wireweave genkey`'], ['shwo', '`wireweave show`']]) {
      const sock = `/var/run/wireguard/${word}.sock`;
      const existed = fs.existsSync(sock);
      try {
        const r = await rig.exec(c, [WIREWEAVE_BIN, word!], { timeoutMs: 20_000 });
        assert.equal(r.code, 1, `${word}: ${r.stderr}`);
        assert.ok(r.stderr.includes(`did you mean ${hint}?`), r.stderr);
        assert.equal((await rig.exec(c, ['ip', 'link', 'show', word!])).code === 0, false, `no link ${word}`);
        if (!existed) assert.equal(fs.existsSync(sock), false, `no socket ${sock}`);
      } finally {
        // Were it created after all, its link is what ends the daemon.
        await rig.exec(c, ['ip', 'link', 'del', word!]);
      }
    }
    const long = await rig.exec(c, [WIREWEAVE_BIN, 'averyveryverylongname']);
    assert.equal(long.code, 1);
    assert.match(long.stderr, /too long for an interface name/);
    // `--` takes the next word as an interface name, whatever it looks like.
    const forced = rig.ifname('cf');
    const r = await rig.exec(c, [WIREWEAVE_BIN, '--', forced], { timeoutMs: 20_000 });
    links.push([c, forced]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await rig.exec(c, ['ip', 'link', 'show', forced])).code, 0);
    await rig.execOk(c, ['ip', 'link', 'del', forced]);
    assert.ok(await waitGone(`/var/run/wireguard/${forced}.sock`, 5000));
  });

  /**
   * wireguard-go lists peers in Go map order, which changes from one UAPI read to the next, so
   * two reads of its interface may order peers differently: compare its peers as a set. Ours
   * keep their order, so the wireweave interface is compared exactly.
   */
  const peerOrderFree = (text: string, field: string | undefined): string => {
    if (field === undefined) {
      const [head = '', ...peers] = text.split('\n\n');
      return [head, ...peers.map((p) => p.trimEnd()).sort()].join('\n\n');
    }
    return text.split('\n').sort().join('\n');
  };
  for (const which of ['wireweave', 'wireguard-go'] as const) {
    it(`show IF FIELD prints what wg show IF FIELD prints (${which} interface)`, async () => {
      const ifname = which === 'wireweave' ? ifA : ifB;
      const normal = (text: string, field: string | undefined) => which === 'wireweave' ? text : peerOrderFree(text, field);
      for (const field of [...SHOW_FIELDS, undefined]) {
        const args = field ? [ifname, field] : [ifname];
        // Counters and handshake times may move between the two reads: read again if so.
        let ours = '', theirs = '';
        for (let attempt = 0; attempt < 3; attempt++) {
          const w = await rig.exec(a, ['wg', 'show', ...args], { env: { WG_HIDE_KEYS: 'always' } });
          const o = await rig.exec(a, [WIREWEAVE_BIN, 'show', ...args], { env: { WG_HIDE_KEYS: 'always' } });
          assert.equal(w.code, 0, w.stderr);
          assert.equal(o.code, 0, o.stderr);
          theirs = normal(w.stdout, field);
          ours = normal(o.stdout, field);
          if (ours === theirs) break;
        }
        // wg colours nothing when not on a terminal; the full view's handshake age may tick.
        if (field === undefined) {
          const age = (t: string) => t.replace(/latest handshake: .*/g, 'latest handshake: X');
          assert.equal(age(ours), age(theirs), `show ${args.join(' ')}`);
        } else {
          assert.equal(ours, theirs, `show ${args.join(' ')}`);
        }
      }
    });
  }

  it('says "address already in use" for a ListenPort that is taken, and leaves nothing behind', async () => {
    const ifname = rig.ifname('cp');
    const file = writeConf(ifname, ['[Interface]', `PrivateKey = ${genKeyPair().privateKey}`, 'ListenPort = 51820']);
    const r = await rig.exec(a, [WIREWEAVE_BIN, 'up', file], { timeoutMs: 20_000 });
    links.push([a, ifname]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`wireweave: cannot configure ${ifname}: ListenPort 51820: address already in use`));
    assert.doesNotMatch(r.stderr, /errno/);
    assert.notEqual((await rig.exec(a, ['ip', 'link', 'show', ifname])).code, 0, 'rolled back');
    // wg says the same in its words.
    assert.ok(await waitGone(`/var/run/wireguard/${ifname}.sock`, 5000));
  });

  it('names the Endpoint line of an unresolvable host, and a missing file in words', async () => {
    const ifname = rig.ifname('ce');
    const file = writeConf(ifname, ['[Interface]', `PrivateKey = ${genKeyPair().privateKey}`, '', '[Peer]', `PublicKey = ${keysB.publicKey}`, 'AllowedIPs = 10.78.0.0/16', 'Endpoint = no-such-host.invalid:51820']);
    const r = await rig.exec(a, [WIREWEAVE_BIN, 'up', file], { timeoutMs: 30_000 });
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`${ifname}\\.conf:7: cannot resolve Endpoint host \`no-such-host\\.invalid': `));
    assert.notEqual((await rig.exec(a, ['ip', 'link', 'show', ifname])).code, 0);
    const missing = await rig.exec(a, [WIREWEAVE_BIN, 'up', path.join(confDir, 'wg-absent.conf')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /cannot read .*wg-absent\.conf: no such file or directory\n$/);
  });

  it("installs the nftables table, policy rules and routes wg-quick installs for a default route, and removes them at down", async () => {
    const ifname = rig.ifname('cd');
    // No link-local address on new links here: wg-quick's drop rules list every address the
    // interface has when it runs, and a link-local one would be random.
    await rig.execOk(c, ['sysctl', '-qw', 'net.ipv6.conf.default.addr_gen_mode=1']);
    const file = writeConf(ifname, [
      '[Interface]', `PrivateKey = ${keysC.privateKey}`, `Address = ${c.tun4}/24, ${c.tun6}/64`, 'ListenPort = 51822',
      ...peerLines(keysB, `${b.addr4}:51821`, '0.0.0.0/0, ::/0'),
    ]);
    const capture = async () => {
      const out: string[] = [];
      for (const family of ['ip', 'ip6']) {
        const t = await rig.exec(c, ['nft', 'list', 'table', family, `wg-quick-${ifname}`]);
        out.push(`# nft ${family}\n${t.code === 0 ? t.stdout : '(none)'}`);
      }
      for (const argv of [['ip', '-4', 'rule'], ['ip', '-6', 'rule'], ['ip', '-4', 'route', 'show', 'table', 'all'], ['ip', '-6', 'route', 'show', 'table', 'all']]) {
        const r = await rig.execOk(c, argv);
        // Only what the tunnel added (kernel-made local/multicast routes differ by timing).
        const lines = r.stdout.split('\n').filter((l) => argv[2] === 'rule' || (l.includes(`dev ${ifname}`) && !/^(local|multicast|fe80|ff00)/.test(l) && !l.includes('table local')));
        out.push(`# ${argv.join(' ')}\n${lines.join('\n')}`);
      }
      const mark = await rig.exec(c, ['wg', 'show', ifname, 'fwmark']);
      out.push(`# fwmark ${mark.code === 0 ? mark.stdout : '(no interface)'}`);
      return out.join('\n');
    };
    const before = await capture();

    const wgq = await rig.exec(c, ['wg-quick', 'up', file], { env: GO_ENV, timeoutMs: 20_000 });
    links.push([c, ifname]);
    assert.equal(wgq.code, 0, wgq.stderr);
    const theirs = await capture();
    assert.match(theirs, /chain preraw {\n.*\n\t\tiifname != ".*" ip daddr \S+ fib saddr type != local drop\n/);
    assert.equal((await rig.exec(c, ['wg-quick', 'down', file], { env: GO_ENV, timeoutMs: 20_000 })).code, 0);
    assert.ok(await waitGone(`/var/run/wireguard/${ifname}.sock`, 5000));

    const up = await rig.exec(c, [WIREWEAVE_BIN, 'up', file], { timeoutMs: 20_000 });
    assert.equal(up.code, 0, up.stderr);
    const ours = await capture();
    assert.equal(ours, theirs, 'rule for rule what wg-quick installed');

    const down = await rig.exec(c, [WIREWEAVE_BIN, 'down', file], { timeoutMs: 20_000 });
    assert.equal(down.code, 0, down.stderr);
    assert.ok(await waitGone(`/var/run/wireguard/${ifname}.sock`, 5000));
    const afterDown = await rig.exec(c, ['nft', 'list', 'tables']);
    assert.ok(!afterDown.stdout.includes(`wg-quick-${ifname}`), afterDown.stdout);
    const cleaned = await capture().catch(() => '');
    assert.equal(cleaned.replace(/# fwmark .*/s, ''), before.replace(/# fwmark .*/s, ''), 'down removes what up added');
  });

  it('down leaves no stale socket behind a daemon that ran as --user nobody', async () => {
    const ifname = rig.ifname('cu');
    const file = writeConf(ifname, ['[Interface]', `PrivateKey = ${genKeyPair().privateKey}`, `Address = 10.79.0.1/24`, 'ListenPort = 51830']);
    const sock = `/var/run/wireguard/${ifname}.sock`;
    const up = await rig.exec(c, [WIREWEAVE_BIN, 'up', file], { env: { WIREWEAVE_USER: 'nobody' }, timeoutMs: 20_000 });
    links.push([c, ifname]);
    assert.equal(up.code, 0, up.stderr);
    assert.ok(fs.statSync(sock).isSocket());
    const down = await rig.exec(c, [WIREWEAVE_BIN, 'down', file], { timeoutMs: 20_000 });
    assert.equal(down.code, 0, down.stderr);
    assert.match(down.stderr, /left by the daemon, which ran without root/);
    assert.equal(fs.existsSync(sock), false, 'socket removed');
  });
});
