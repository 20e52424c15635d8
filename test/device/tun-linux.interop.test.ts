/**
 * The Linux TUN device against the real kernel. Each test creates its own TUN (wwtun<pid>…),
 * moves it into its own network namespace (wwtn<pid>…) and configures addresses only there, so
 * nothing touches the host's routing. Everything is removed in `after`.
 *
 * Needs root and /dev/net/tun (plus `ip` and iputils `ping`); skips with the reason otherwise,
 * unless CI is set, in which case a missing prerequisite is a failure.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { openLinuxTun } from '../../src/device/linux/tun.ts';
import type { LinuxTun } from '../../src/device/linux/tun.ts';
import { icmpEcho4, icmpEcho6, parseEcho } from '../support/ip.ts';
import type { Echo } from '../support/ip.ts';
import { run, which, withTimeout } from '../support/wggo.ts';
import { until } from '../support/until.ts';

const prereqMissing = ((): string | undefined => {
  if (process.platform !== 'linux') return `Linux only (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'needs root (CAP_NET_ADMIN, network namespaces)';
  if (!fs.existsSync('/dev/net/tun')) return '/dev/net/tun does not exist';
  for (const tool of ['ip', 'ping']) if (!which(tool)) return `${tool} not found on PATH`;
  return undefined;
})();
const skip: string | false = process.env.CI ? false : (prereqMissing ?? false);

function requirePrereqs(): void {
  assert.equal(prereqMissing, undefined, `CI is set but TUN interop prerequisites are missing: ${prereqMissing}`);
}

const pid = process.pid;
/** Second octet of this run's IPv4 subnets and the group of its IPv6 prefix. */
const x = 20 + (pid % 200);
const hx = (0x1000 + (pid % 0xe000)).toString(16);

const namespaces = new Set<string>();
const tuns = new Set<LinuxTun>();
const rootLinks = new Set<string>();

async function sh(cmd: string, ...args: string[]): Promise<string> {
  const r = await run(cmd, args, { timeoutMs: 15_000 });
  assert.equal(r.code, 0, `${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr}${r.stdout}`);
  return r.stdout;
}

async function newNamespace(name: string): Promise<string> {
  await sh('ip', 'netns', 'add', name);
  namespaces.add(name);
  await sh('ip', '-n', name, 'link', 'set', 'lo', 'up');
  return name;
}

async function open(name: string, opts?: Parameters<typeof openLinuxTun>[1]): Promise<LinuxTun> {
  const tun = await openLinuxTun(name, opts);
  tuns.add(tun);
  rootLinks.add(tun.name);
  return tun;
}

/** Moves the link into `ns`, adds the addresses (IPv6 without DAD) and brings it up. */
async function moveAndConfigure(tun: LinuxTun, ns: string, addrs: string[], opts: { from?: string; noIPv6?: boolean } = {}): Promise<void> {
  await sh('ip', ...(opts.from ? ['-n', opts.from] : []), 'link', 'set', 'dev', tun.name, 'netns', ns);
  if (opts.noIPv6) await sh('ip', 'netns', 'exec', ns, 'sysctl', '-qw', `net.ipv6.conf.${tun.name}.disable_ipv6=1`);
  for (const a of addrs) await sh('ip', '-n', ns, 'addr', 'add', a, 'dev', tun.name, ...(a.includes(':') ? ['nodad'] : []));
  await sh('ip', '-n', ns, 'link', 'set', 'dev', tun.name, 'up');
}

function text4(b: Uint8Array): string {
  return Array.from(b).join('.');
}

function text6(b: Uint8Array): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  return groups.join(':');
}

/** A handler that answers ICMP/ICMPv6 echo requests (addresses swapped, fresh checksums) and records them. */
function echoResponder(tun: LinuxTun, seen: Echo[]): (p: Uint8Array) => void {
  return (p) => {
    const e = parseEcho(p);
    if (!e || e.reply) return;
    seen.push(e);
    const reply = e.version === 4
      ? icmpEcho4(text4(e.dst), text4(e.src), e.id, e.seq, e.payload, true)
      : icmpEcho6(text6(e.dst), text6(e.src), e.id, e.seq, e.payload, true);
    assert.equal(tun.write(reply), true, 'write of the echo reply');
  };
}

async function linkShow(ns: string | undefined, name: string): Promise<{ code: number; out: string }> {
  const r = await run('ip', [...(ns ? ['-n', ns] : []), 'link', 'show', 'dev', name], { timeoutMs: 5000 });
  return { code: r.code, out: r.stdout + r.stderr };
}

function closedPromise(tun: LinuxTun): Promise<string> {
  return new Promise((resolve) => tun.onClose(resolve));
}

after(async () => {
  for (const tun of tuns) await tun.close();
  for (const ns of namespaces) await run('ip', ['netns', 'del', ns], { timeoutMs: 10_000 });
  for (const name of rootLinks) {
    if ((await linkShow(undefined, name)).code === 0) await run('ip', ['link', 'del', 'dev', name], { timeoutMs: 5000 });
  }
});

describe('Linux TUN (koffi)', { skip }, () => {
  it('answers ping and ping -6 from a namespace, survives a flood, keeps working when moved between namespaces', { timeout: 120_000 }, async () => {
    requirePrereqs();
    const name = `wwtun${pid}`;
    const tun = await open(name, { mtu: 1380 });
    assert.equal(tun.name, name);
    assert.equal(tun.mtu, 1380);
    const reasons: string[] = [];
    tun.onClose((r) => reasons.push(r));
    const seen: Echo[] = [];
    // Started before the move: the reader keeps its fd across namespaces.
    tun.start(echoResponder(tun, seen));

    const ns = await newNamespace(`wwtn${pid}`);
    await moveAndConfigure(tun, ns, [`10.${x}.0.1/24`, `fd00:${hx}::1/64`]);
    rootLinks.delete(name);
    const shown = await linkShow(ns, name);
    assert.equal(shown.code, 0, shown.out);
    assert.match(shown.out, / mtu 1380 /, 'the MTU we set travels with the link');

    // (a) IPv4 echo
    const p4 = await run('ip', ['netns', 'exec', ns, 'ping', '-c', '3', '-W', '1', `10.${x}.0.2`], { timeoutMs: 20_000 });
    assert.equal(p4.code, 0, `ping failed: ${p4.stdout}${p4.stderr}`);
    const v4 = seen.filter((e) => e.version === 4);
    assert.equal(v4.length, 3);
    for (const e of v4) {
      assert.equal(e.checksumOk, true);
      assert.equal(text4(e.src), `10.${x}.0.1`);
      assert.equal(text4(e.dst), `10.${x}.0.2`);
    }
    assert.deepEqual(v4.map((e) => e.seq), [1, 2, 3]);

    // (b) IPv6 echo (checksum over the pseudo-header)
    const p6 = await run('ip', ['netns', 'exec', ns, 'ping', '-6', '-c', '3', '-W', '1', `fd00:${hx}::2`], { timeoutMs: 20_000 });
    assert.equal(p6.code, 0, `ping -6 failed: ${p6.stdout}${p6.stderr}`);
    const v6 = seen.filter((e) => e.version === 6);
    assert.equal(v6.length, 3);
    for (const e of v6) assert.equal(e.checksumOk, true);

    // (c) a flood: every request answered
    const flood = await run('ip', ['netns', 'exec', ns, 'ping', '-f', '-c', '2000', '-W', '1', '-w', '60', `10.${x}.0.2`], { timeoutMs: 90_000 });
    assert.equal(flood.code, 0, `ping -f failed: ${flood.stdout}${flood.stderr}`);
    assert.match(flood.stdout, /2000 packets transmitted, 2000 received/);
    assert.equal(seen.filter((e) => e.version === 4).length, 3 + 2000);

    // Moved on to a second namespace (the kernel downs it and drops its addresses on the way).
    const ns2 = await newNamespace(`wwtn${pid}b`);
    await moveAndConfigure(tun, ns2, [`10.${x}.1.1/24`], { from: ns });
    const again = await run('ip', ['netns', 'exec', ns2, 'ping', '-c', '2', '-W', '1', `10.${x}.1.2`], { timeoutMs: 20_000 });
    assert.equal(again.code, 0, `ping after the second move failed: ${again.stdout}${again.stderr}`);

    assert.deepEqual(reasons, []);
    const s = tun.stats;
    assert.equal(s.rxDropped, 0);
    assert.equal(s.txPackets, 3 + 3 + 2000 + 2);
    assert.equal(s.txErrors + s.txDropped, 0);
    assert.ok(s.rxPackets >= 2008, `rxPackets ${s.rxPackets}`);

    await tun.close();
    assert.deepEqual(reasons, [], 'close() is not a deletion');
    assert.notEqual((await linkShow(ns2, name)).code, 0, 'closing the fd removes the non-persistent device');
    assert.equal(tun.write(icmpEcho4(`10.${x}.1.2`, `10.${x}.1.1`, 1, 1, new Uint8Array(8), true)), false);
  });

  it('expands a %d name template, defaults the MTU to 1420 and does not bring the link up', { timeout: 30_000 }, async () => {
    requirePrereqs();
    const tun = await open(`wwt${pid}x%d`);
    assert.match(tun.name, new RegExp(`^wwt${pid}x\\d+$`));
    assert.equal(tun.mtu, 1420);
    const ns = await newNamespace(`wwtn${pid}t`);
    await sh('ip', 'link', 'set', 'dev', tun.name, 'netns', ns);
    rootLinks.delete(tun.name);
    const shown = await linkShow(ns, tun.name);
    assert.equal(shown.code, 0, shown.out);
    assert.match(shown.out, / mtu 1420 /);
    assert.doesNotMatch(shown.out, /[<,]UP[,>]/);
    await tun.close();
    assert.notEqual((await linkShow(ns, tun.name)).code, 0);
  });

  it('rejects bad names and MTUs, and an existing non-TUN name', { timeout: 30_000 }, async () => {
    requirePrereqs();
    await assert.rejects(openLinuxTun('x'.repeat(16)), /too long/);
    await assert.rejects(openLinuxTun('a b'), /invalid interface name/);
    await assert.rejects(openLinuxTun(`wwtun${pid}m`, { mtu: 10 }), /invalid MTU/);
    await assert.rejects(openLinuxTun('lo'), /TUNSETIFF lo: E/);
  });

  it('fires onClose("deleted") once when the link is deleted inside its namespace', { timeout: 30_000 }, async () => {
    requirePrereqs();
    const name = `wwtun${pid}d`;
    const tun = await open(name);
    const reasons: string[] = [];
    tun.onClose((r) => reasons.push(r));
    const closed = closedPromise(tun);
    let packets = 0;
    tun.start(() => packets++);
    const ns = await newNamespace(`wwtn${pid}d`);
    await moveAndConfigure(tun, ns, [`10.${x}.2.1/24`], { noIPv6: true });
    rootLinks.delete(name);
    await sh('ip', '-n', ns, 'link', 'del', 'dev', name);
    assert.equal(await withTimeout(closed, 5000, 'onClose after ip link del'), 'deleted');
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(reasons, ['deleted']);
    assert.equal(tun.write(icmpEcho4(`10.${x}.2.2`, `10.${x}.2.1`, 1, 1, new Uint8Array(8))), false);
    await tun.close();
    let late = '';
    tun.onClose((r) => (late = r));
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(late, 'deleted', 'a listener added after the fact still hears why');
  });

  it('detects deletion through write() before start(), and when the namespace is deleted', { timeout: 30_000 }, async () => {
    requirePrereqs();
    // Not started: the failed write reports it.
    const a = await open(`wwtun${pid}e`);
    const nsA = await newNamespace(`wwtn${pid}e`);
    await moveAndConfigure(a, nsA, [`10.${x}.3.1/24`], { noIPv6: true });
    rootLinks.delete(a.name);
    const closedA = closedPromise(a);
    await sh('ip', '-n', nsA, 'link', 'del', 'dev', a.name);
    assert.equal(a.write(icmpEcho4(`10.${x}.3.2`, `10.${x}.3.1`, 1, 1, new Uint8Array(8))), false);
    assert.equal(await withTimeout(closedA, 2000, 'onClose after a failed write'), 'deleted');

    // Started, and its namespace goes away: the kernel deletes the virtual link with it.
    const b = await open(`wwtun${pid}f`);
    b.start(() => {});
    const nsB = await newNamespace(`wwtn${pid}f`);
    await moveAndConfigure(b, nsB, [`10.${x}.4.1/24`], { noIPv6: true });
    rootLinks.delete(b.name);
    const closedB = closedPromise(b);
    await sh('ip', 'netns', 'del', nsB);
    namespaces.delete(nsB);
    assert.equal(await withTimeout(closedB, 15_000, 'onClose after ip netns del'), 'deleted');
  });

  it('drops and counts when the ring is full, delivering the rest exactly once and in order', { timeout: 60_000 }, async () => {
    requirePrereqs();
    const name = `wwtun${pid}r`;
    const tun = await open(name, { ringSlots: 16 });
    const seqs: number[] = [];
    let others = 0;
    let stalled = false;
    const seen: Echo[] = [];
    const respond = echoResponder(tun, seen);
    let answering = false;
    tun.start((p) => {
      if (answering) return respond(p);
      const e = parseEcho(p);
      if (!e || e.reply) {
        others++;
        return;
      }
      seqs.push(e.seq);
      if (!stalled) {
        // Hold the main thread while the rest of the burst arrives: the 16-slot ring overflows.
        stalled = true;
        const until = Date.now() + 1500;
        while (Date.now() < until);
      }
    });
    const ns = await newNamespace(`wwtn${pid}r`);
    await moveAndConfigure(tun, ns, [`10.${x}.5.1/24`], { noIPv6: true });
    rootLinks.delete(name);
    // 300 echo requests sent back to back (preload), none answered.
    const burst = await run('ip', ['netns', 'exec', ns, 'ping', '-q', '-c', '300', '-l', '300', '-W', '1', '-w', '3', `10.${x}.5.2`], { timeoutMs: 20_000 });
    // ping goes on at one per second after the preload until the deadline: count what it sent.
    const sent = Number(/(\d+) packets transmitted/.exec(burst.stdout)?.[1]);
    assert.ok(sent >= 300, burst.stdout + burst.stderr);
    const dropped = tun.stats.rxDropped;
    assert.ok(dropped > 0, 'the ring overflowed');
    // The bound is about the preload (icmp_seq 1..300): ping's once-a-second requests after it may
    // arrive when the stall is over, and then they are rightly delivered.
    const fromBurst = seqs.filter((s) => s <= 300).length;
    assert.ok(fromBurst <= 16 + 1, `at most a ring's worth plus the one being handled, got ${fromBurst} of the burst (${seqs.join(',')})`);
    for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i]! > seqs[i - 1]!, `in order, no duplicates: ${seqs.join(',')}`);
    assert.equal(others, 0, 'nothing but our echo requests reached the link');
    assert.equal(seqs.length + dropped, sent, `delivered ${seqs.length} + dropped ${dropped}`);

    // And it goes on working.
    answering = true;
    const p = await run('ip', ['netns', 'exec', ns, 'ping', '-c', '2', '-W', '1', `10.${x}.5.2`], { timeoutMs: 20_000 });
    assert.equal(p.code, 0, p.stdout + p.stderr);
    await tun.close();
  });
  it('hands a small packet of another flow out ahead of a backlog, never reordering within a flow', { timeout: 60_000 }, async () => {
    requirePrereqs();
    const name = `wwtun${pid}s`;
    const tun = await open(name, { ringSlots: 64 });
    /** Each UDP datagram to port 9000 as "source port:sequence", in the order handed out. */
    const order: string[] = [];
    let stalled = false;
    tun.start((p) => {
      if (!stalled) {
        // Hold the main thread on the first packet while the rest of the burst fills the ring.
        stalled = true;
        const until = Date.now() + 700;
        while (Date.now() < until);
      }
      const ihl = (p[0]! & 15) * 4;
      if (p[0]! >> 4 !== 4 || p[9] !== 17 || ((p[ihl + 2]! << 8) | p[ihl + 3]!) !== 9000) return;
      const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
      order.push(`${dv.getUint16(ihl)}:${dv.getUint32(ihl + 8)}`);
    });
    const ns = await newNamespace(`wwtn${pid}s`);
    await moveAndConfigure(tun, ns, [`10.${x}.6.1/24`], { noIPv6: true });
    rootLinks.delete(name);
    // A bulk flow (port 9001: 1200-byte datagrams, every tenth one small) and, after its 15th and
    // 25th datagrams, one small datagram of another flow (port 9002).
    const script = `
      const dgram = require('node:dgram');
      const open = (port) => new Promise((r) => { const s = dgram.createSocket('udp4'); s.bind(port, '10.${x}.6.1', () => r(s)); });
      const send = (s, len, seq) => new Promise((r) => { const b = Buffer.alloc(len); b.writeUInt32BE(seq); s.send(b, 9000, '10.${x}.6.2', r); });
      (async () => {
        const bulk = await open(9001), other = await open(9002);
        for (let i = 0; i < 40; i++) {
          await send(bulk, i % 10 === 5 ? 40 : 1200, i);
          if (i === 15 || i === 25) await send(other, 40, i);
        }
        bulk.close(); other.close();
      })();`;
    const r = await run('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { timeoutMs: 20_000 });
    assert.equal(r.code, 0, r.stderr);
    await until('the 42 datagrams to be handed out', () => order.length >= 42, 10_000);
    assert.equal(new Set(order).size, 42, `each once: ${order.join(' ')}`);
    const bulkSeqs = order.filter((o) => o.startsWith('9001:')).map((o) => Number(o.slice(5)));
    assert.deepEqual(bulkSeqs, Array.from({ length: 40 }, (_, i) => i), 'the bulk flow in order, its small datagrams included');
    assert.deepEqual(order.filter((o) => o.startsWith('9002:')), ['9002:15', '9002:25']);
    // The other flow's datagram sent after bulk 15 was handed out before bulk 14.
    assert.ok(order.indexOf('9002:15') < order.indexOf('9001:14'), `ahead of the backlog: ${order.join(' ')}`);
    assert.equal(tun.stats.rxDropped, 0);
    await tun.close();
  });
});
