/**
 * Faults end to end (issue 6), wireweave on both ends in network namespaces (test/support/netns.ts):
 *
 * - a UDP shim (test/support/udp-shim.ts) between the daemons loses, reorders and duplicates
 *   datagrams (seeded); a TCP transfer through the tunnel still arrives with the right hash;
 * - while a TCP stream flows: the peers' UAPI sockets take 50 clients at once (garbage,
 *   half-written requests, valid gets); the peer is removed and re-added (`wg set ... remove`);
 *   A's underlay address changes (roaming); A's daemon is killed (SIGKILL) and restarted with
 *   the same keys: B re-handshakes by itself, the same TCP connection resumes, a new one works.
 *
 * Resume times are printed (t.diagnostic) and bounded generously. Needs root, /dev/net/tun, wg,
 * ip, ping, sysctl; skipped with the reason otherwise, except under CI (process.env.CI set).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { createRig, genKeyPair, genPsk, requireRig, rigLeftovers, setupPair, skipUnlessRig, tcpTransfer } from '../support/netns.ts';
import type { Daemon, Impl, InterfaceConfig, Pair, Rig, RigNode, Spawned } from '../support/netns.ts';
import { withTimeout } from '../support/wggo.ts';
import { sleep, STREAM_RECEIVER, STREAM_SENDER, streamReports } from '../support/flood-tools.ts';
import { lastShimReport } from '../support/udp-shim.ts';

const SHIM = fileURLToPath(new URL('../support/udp-shim.ts', import.meta.url));
const TSX = import.meta.resolve('tsx');

function describeShim(implB: Impl): void {
  describe(`faults: loss, reordering and duplication in a UDP shim (wireweave <-> ${implB})`, { skip: skipUnlessRig(['wireweave', implB]) }, () => {
    let rig: Rig | undefined;
    before(() => requireRig(['wireweave', implB]));
    after(async () => {
      await rig?.destroy();
      assert.deepEqual(rigLeftovers(), [], 'left behind');
    });

    it('a 20 MB TCP transfer through the tunnel arrives intact (loss 2 %, reorder 5 %, duplicate 2 %)', async (t) => {
      rig = await createRig({ name: 'shim', nodes: 3 });
      const r = rig;
      const [s, a, b] = r.nodes as [RigNode, RigNode, RigNode];
      const [da, db] = await Promise.all([r.startDaemon(a, 'wireweave'), r.startDaemon(b, implB)]);
      const kA = genKeyPair(), kB = genKeyPair(), psk = genPsk();
      const [pA, pB, shimA, shimB] = [51820, 51821, 40001, 40002];
      const shim = r.spawnIn(s, [process.execPath, '--import', TSX, SHIM, s.addr4, String(shimA), String(shimB), `${a.addr4}:${pA}`, `${b.addr4}:${pB}`,
        '--loss', '0.02', '--reorder', '0.05', '--dup', '0.02', '--delay-max', '8', '--seed', String(process.pid)]);
      await shim.waitFor(/ready/, 20_000);
      await r.configure(a, da.ifname, { privateKey: kA.privateKey, listenPort: pA, peers: [{ publicKey: kB.publicKey, presharedKey: psk, endpoint: `${s.addr4}:${shimA}`, allowedIPs: [`${b.tun4}/32`] }], address4: `${a.tun4}/24` });
      await r.configure(b, db.ifname, { privateKey: kB.privateKey, listenPort: pB, peers: [{ publicKey: kA.publicKey, presharedKey: psk, endpoint: `${s.addr4}:${shimB}`, allowedIPs: [`${a.tun4}/32`] }], address4: `${b.tun4}/24` });
      const logs = (): string => [da, db].map((d: Daemon) => `--- ${d.node.label} (${d.impl}) ---\n${d.logs().slice(-2000)}`).join('\n');
      // The first handshake may itself be lost: retries come every 5 s.
      const deadline = Date.now() + 30_000;
      while ((await r.ping(a, b.tun4, { count: 1, wait: 1 })).received === 0) assert.ok(Date.now() < deadline, `no handshake through the shim:\n${logs()}`);
      const bytes = 20_000_000;
      const x = await tcpTransfer(r, a, b, b.tun4, bytes, 180_000);
      const y = await tcpTransfer(r, b, a, a.tun4, 5_000_000, 120_000);
      const rep = lastShimReport(shim.stdout());
      t.diagnostic(`A -> B ${bytes / 1e6} MB at ${x.mbPerS.toFixed(2)} MB/s, B -> A 5 MB at ${y.mbPerS.toFixed(2)} MB/s through the shim`);
      if (rep) {
        for (const [dir, c] of Object.entries(rep)) t.diagnostic(`shim ${dir}: ${c.in} in, ${c.lost} lost, ${c.reordered} reordered, ${c.duplicated} duplicated`);
      }
      assert.equal(x.receivedBytes, bytes, 'all bytes A -> B');
      assert.equal(x.receivedSha256, x.sentSha256, 'hash A -> B');
      assert.equal(y.receivedSha256, y.sentSha256, 'hash B -> A');
      assert.ok(rep && rep.aToB.lost > 0 && rep.aToB.reordered > 0 && rep.aToB.duplicated > 0, `the shim really interfered: ${JSON.stringify(rep)}`);
      assert.ok(da.proc.running() && db.proc.running(), 'both daemons alive');
    });
  });
}

describeShim('wireweave');
describeShim('wireguard-go');

/** A TCP stream from `from` to `to` through the tunnel, with its receiver's byte count. */
interface Stream { recv: Spawned; send: Spawned; bytes(): number; conns(): number; stop(): Promise<void> }

async function startStream(r: Rig, from: RigNode, to: RigNode, host: string, port: number, rate: number): Promise<Stream> {
  const recv = r.spawnIn(to, [process.execPath, '-e', STREAM_RECEIVER, host, String(port), '200']);
  await recv.waitFor(/listening/, 10_000);
  const send = r.spawnIn(from, [process.execPath, '-e', STREAM_SENDER, host, String(port), String(rate)]);
  await send.waitFor(/connected 1/, 20_000);
  const last = () => streamReports(recv.stdout().slice(-4000)).at(-1);
  return {
    recv, send,
    bytes: () => last()?.bytes ?? 0,
    conns: () => last()?.conns ?? 0,
    stop: async () => { await send.stop(); await recv.stop(); },
  };
}

/** Milliseconds until the stream has carried `minBytes` more than it had at the call; throws after `boundMs`. */
async function resumes(stream: Stream, what: string, boundMs: number, minBytes = 500_000): Promise<number> {
  const t0 = Date.now();
  const start = stream.bytes();
  while (stream.bytes() - start < minBytes) {
    if (Date.now() - t0 > boundMs) throw new Error(`${what}: the stream did not resume within ${boundMs} ms (${stream.bytes() - start} bytes)`);
    await sleep(100);
  }
  return Date.now() - t0;
}

describe('faults: a wireweave pair under reconfiguration, roaming, UAPI abuse and a daemon crash', { skip: skipUnlessRig(['wireweave']) }, () => {
  let p: Pair | undefined;
  let stream: Stream | undefined;
  const RATE = 2_000_000;

  before(async () => {
    requireRig(['wireweave']);
    p = await setupPair('faults', 'wireweave', 'wireweave');
  });
  after(async () => {
    await stream?.stop();
    await p?.rig.destroy();
    assert.deepEqual(rigLeftovers(), [], 'left behind');
  });

  const logs = (q: Pair): string => [q.da, q.db].map((d) => `--- ${d.node.label} ---\n${d.logs().slice(-2000)}`).join('\n');

  it('50 UAPI clients at once (garbage, half-written requests, valid gets): responsive, nothing changes', async (t) => {
    assert.ok(p, 'rig');
    const q = p;
    stream = await startStream(q.rig, q.a, q.b, q.b.tun4, 5301, RATE);
    const before = await q.rig.wgOk(['show', q.da.ifname, 'dump']);
    const pubB = Buffer.from(q.keysB.publicKey, 'base64').toString('hex');
    const connect = (): Promise<net.Socket> => new Promise((resolve, reject) => {
      const c = net.connect(q.da.socketPath, () => resolve(c));
      c.once('error', reject);
    });
    const readAll = (c: net.Socket, until: RegExp, ms: number): Promise<string> => new Promise((resolve) => {
      let text = '';
      const done = (): void => { clearTimeout(timer); resolve(text); };
      const timer = setTimeout(done, ms);
      c.on('data', (d: Buffer) => { text += d.toString('latin1'); if (until.test(text)) done(); });
      c.on('close', done);
      c.on('error', done);
    });
    const held: net.Socket[] = [];
    const getTimes: number[] = [];
    const garbageAnswers: string[] = [];
    const clients = Array.from({ length: 50 }, async (_, i) => {
      const c = await connect();
      const kind = i % 3;
      if (kind === 0) {
        // Garbage: random bytes, some of it with newlines, then a blank line.
        c.write(Buffer.concat([crypto.randomBytes(64 + (i * 97) % 4000), Buffer.from(i % 2 ? '\n\n' : '\nset=1\nlisten_port=99999999\n\n')]));
        garbageAnswers.push(await readAll(c, /errno=-?\d+\n\n/, 5000));
        c.destroy();
      } else if (kind === 1) {
        // Half-written requests, held open while the others are served, then abandoned.
        c.write(i % 2 ? 'set=1\nlisten_port=4444\nprivate_key=' : 'get=1\n');
        held.push(c);
      } else {
        const t0 = Date.now();
        c.write('get=1\n\n');
        const text = await readAll(c, /errno=0\n\n/, 10_000);
        getTimes.push(Date.now() - t0);
        assert.match(text, new RegExp(`listen_port=${q.portA}\n`), `get ${i}: ${text.slice(0, 300)}`);
        assert.match(text, new RegExp(`public_key=${pubB}\n`), `get ${i}: peer`);
        assert.ok(text.endsWith('errno=0\n\n'), `get ${i}: terminated`);
        c.destroy();
      }
    });
    await Promise.all(clients);
    // With the half-written ones still open, `wg` itself is served.
    const t0 = Date.now();
    await q.rig.wgOk(['show', q.da.ifname, 'dump']);
    const wgMs = Date.now() - t0;
    for (const c of held) c.destroy();
    await sleep(300);
    const after = await q.rig.wgOk(['show', q.da.ifname, 'dump']);
    getTimes.sort((x, y) => x - y);
    t.diagnostic(`${getTimes.length} valid gets answered, median ${getTimes[getTimes.length >> 1]} ms, max ${getTimes.at(-1)} ms; wg show with ${held.length} half-written requests open: ${wgMs} ms`);
    t.diagnostic(`garbage clients: ${garbageAnswers.filter((x) => /errno=-?[1-9]/.test(x)).length}/${garbageAnswers.length} got an error answer, the rest were closed`);
    const strip = (d: string): string => d.split('\n').map((l) => l.split('\t').filter((_, k) => k !== 4 && k !== 5 && k !== 6).join('\t')).join('\n');
    assert.equal(strip(after), strip(before), 'configuration unchanged (handshake time and byte counters aside)');
    assert.equal(getTimes.length, 16, 'every valid get answered');
    assert.ok(q.da.proc.running(), 'A alive');
    await resumes(stream, 'stream during UAPI abuse', 10_000, 100_000);
    const ping = await q.rig.ping(q.b, q.a.tun4, { count: 2 });
    assert.equal(ping.received, 2, ping.output);
  });

  it('the peer is removed and re-added while traffic flows', async (t) => {
    assert.ok(p && stream, 'rig and stream');
    const q = p;
    await q.rig.wgOk(['set', q.da.ifname, 'peer', q.keysB.publicKey, 'remove']);
    await sleep(1000);
    const pskFile = q.rig.secretFile('psk', `${q.psk}\n`);
    try {
      await q.rig.wgOk(['set', q.da.ifname, 'peer', q.keysB.publicKey, 'preshared-key', pskFile, 'endpoint', `${q.b.addr4}:${q.portB}`,
        'allowed-ips', `${q.b.tun4}/32,${q.b.tun6}/128`]);
    } finally {
      fs.rmSync(pskFile, { force: true });
    }
    const ms = await resumes(stream, 'after remove/re-add', 20_000);
    t.diagnostic(`stream A -> B resumed ${ms} ms after the peer was re-added (1 s after its removal)`);
    assert.equal(stream.conns(), 1, 'the same TCP connection carried on');
  });

  it("A's underlay address changes (roaming) while traffic flows: B follows", async (t) => {
    assert.ok(p && stream, 'rig and stream');
    const { a, rig } = p;
    const oldAddr = a.addr4;
    const newAddr = oldAddr.replace(/\.\d+$/, `.${a.index + 201}`);
    await rig.execOk(a, ['ip', '-4', 'addr', 'add', `${newAddr}/24`, 'dev', a.dev]);
    await rig.execOk(a, ['ip', '-4', 'addr', 'del', `${oldAddr}/24`, 'dev', a.dev]);
    a.addr4 = newAddr;
    const routes = (await rig.execOk(a, ['ip', '-4', 'route', 'show', 'dev', a.dev])).stdout;
    if (!routes.includes(rig.underlay4)) await rig.execOk(a, ['ip', '-4', 'route', 'add', rig.underlay4, 'dev', a.dev, 'src', newAddr]);
    const ms = await resumes(stream, 'after roaming', 20_000);
    const e = (await rig.wgOk(['show', p.db.ifname, 'endpoints'])).trim();
    t.diagnostic(`stream A -> B resumed ${ms} ms after A moved from ${oldAddr} to ${newAddr}; B: ${e.split('\t')[1] ?? e}`);
    assert.ok(e.includes(`${newAddr}:${p.portA}`), `B follows A: ${e}`);
    const ping = await rig.ping(p.b, a.tun4, { count: 2 });
    assert.equal(ping.received, 2, `B -> A after roaming: ${ping.output}`);
  });

  it("A's daemon is killed (SIGKILL) mid-transfer and restarted: B re-handshakes, the transfer resumes", async (t) => {
    assert.ok(p && stream, 'rig and stream');
    const q = p;
    await stream.stop();
    // B -> A this time: only B sends, so B has to notice by itself that its session is dead.
    stream = await startStream(q.rig, q.b, q.a, q.a.tun4, 5302, RATE);
    await resumes(stream, 'before the kill', 10_000, 200_000);
    const hsBefore = (await q.rig.dump(q.db.ifname)).peers[0]!.latestHandshake;
    const ifname = q.da.ifname;
    process.kill(q.da.proc.pid, 'SIGKILL');
    const exit = await withTimeout(q.da.proc.exited, 10_000, 'A to die');
    assert.equal(exit.signal, 'SIGKILL', JSON.stringify(exit));
    // SIGKILL leaves the UAPI socket file behind; the TUN device went with the process.
    fs.rmSync(q.da.socketPath, { force: true });
    await sleep(1000);
    const tRestart = Date.now();
    const da = await q.rig.startDaemon(q.a, 'wireweave', ifname);
    const cfg: InterfaceConfig = {
      privateKey: q.keysA.privateKey, listenPort: q.portA,
      peers: [{ publicKey: q.keysB.publicKey, presharedKey: q.psk, endpoint: `${q.b.addr4}:${q.portB}`, allowedIPs: [`${q.b.tun4}/32`, `${q.b.tun6}/128`] }],
      address4: `${q.a.tun4}/24`, address6: `${q.a.tun6}/64`,
    };
    await q.rig.configure(q.a, ifname, cfg);
    q.da = da;
    const ms = await resumes(stream, 'after the restart', 90_000).catch((e: Error) => { throw new Error(`${e.message}\n${logs(q)}`); });
    const dump = await q.rig.dump(q.db.ifname);
    t.diagnostic(`after SIGKILL and restart (${Date.now() - tRestart - ms} ms to start and configure), the B -> A stream resumed ${ms} ms later on connection #${stream.conns()}; B's latest handshake ${hsBefore} -> ${dump.peers[0]!.latestHandshake}`);
    assert.ok(dump.peers[0]!.latestHandshake > hsBefore, 'B re-handshook');
    assert.equal(stream.conns(), 1, 'the same TCP connection survived the daemon restart');
    // A new connection works, both ways, and pings too.
    const x = await tcpTransfer(q.rig, q.a, q.b, q.b.tun4, 5_000_000, 60_000);
    assert.equal(x.receivedSha256, x.sentSha256, 'new connection A -> B intact');
    for (const [from, to] of [[q.a, q.b.tun6], [q.b, q.a.tun4]] as const) {
      const ping = await q.rig.ping(from, to, { count: 2 });
      assert.equal(ping.received, 2, `ping ${from.label} -> ${to}: ${ping.output}`);
    }
    await stream.stop();
    stream = undefined;
  });
});
