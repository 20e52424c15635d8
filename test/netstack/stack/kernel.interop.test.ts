/**
 * The stack against the Linux kernel's TCP/IP: a TUN interface in a private network namespace
 * (kernel side 10.203.0.1 / fd03::1) with a TcpIpStack behind it (10.203.0.2 / fd03::2), driven in
 * real time. Kernel clients and servers are small Python programs. Needs root and /dev/net/tun;
 * skipped otherwise.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { openLinuxTun } from '../../../src/device/linux/tun.ts';
import type { LinuxTun } from '../../../src/device/linux/tun.ts';
import { TcpIpStack } from '../../../src/netstack/stack/stack.ts';
import type { TcpConnection } from '../../../src/netstack/stack/types.ts';
import { seededRng } from '../../../src/core/rng.ts';

// Under CI (root, /dev/net/tun) it must run: a missing prerequisite fails in before() instead.
const skip = process.env.CI ? false : process.getuid?.() !== 0 || !existsSync('/dev/net/tun') ? 'needs root and /dev/net/tun' : false;
const NS = `wwstack${process.pid}`;

function sh(...args: string[]): string {
  return execFileSync(args[0]!, args.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * Runs a command in the namespace; resolves with stdout once it exits. `onOut` sees stdout as it
 * grows (to wait for a server's READY line).
 */
function inNs(args: string[], timeoutMs = 120_000, onOut?: (out: string) => void): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn('ip', ['netns', 'exec', NS, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += d; onOut?.(out); });
    p.stderr.on('data', (d) => { err += d; });
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (code) => { clearTimeout(t); resolve({ code, out, err }); });
  });
}

function python(code: string, timeoutMs?: number, onOut?: (out: string) => void) {
  return inNs(['python3', '-c', code], timeoutMs, onOut);
}

describe('TcpIpStack against the Linux kernel', { skip, timeout: 600_000 }, () => {
  let tun: LinuxTun;
  let stack: TcpIpStack;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t0 = performance.now();
  const now = () => performance.now() - t0;
  /** While set, packets both ways are lost with this probability and delayed 0–4 ms (reordered). */
  let lossy = 0;
  const rng = seededRng(3);

  const schedule = () => {
    if (timer) clearTimeout(timer);
    const d = stack.nextDeadline();
    if (d === Infinity) return;
    timer = setTimeout(() => { stack.tick(now()); schedule(); }, Math.max(0, Math.ceil(d - now())));
  };

  before(async () => {
    sh('ip', 'netns', 'add', NS);
    tun = await openLinuxTun('wws%d', { mtu: 1420, offload: false });
    sh('ip', 'link', 'set', tun.name, 'netns', NS);
    sh('ip', '-n', NS, 'link', 'set', 'lo', 'up');
    sh('ip', '-n', NS, 'addr', 'add', '10.203.0.1/24', 'dev', tun.name);
    sh('ip', '-n', NS, '-6', 'addr', 'add', 'fd03::1/64', 'dev', tun.name, 'nodad');
    sh('ip', '-n', NS, 'link', 'set', tun.name, 'up');
    stack = new TcpIpStack({ addresses: ['10.203.0.2', 'fd03::2'], mtu: 1420 }, {
      output: (p) => {
        if (lossy === 0) { tun.write(p); return; }
        if (rng.nextUint32() / 2 ** 32 < lossy) return;
        const copy = p.slice();
        setTimeout(() => tun.write(copy), (rng.nextUint32() % 5));
      },
    });
    tun.start((p) => {
      if (lossy === 0) { stack.input(p, now()); schedule(); return; }
      if (rng.nextUint32() / 2 ** 32 < lossy) return;
      const copy = p.slice();
      setTimeout(() => { stack.input(copy, now()); schedule(); }, (rng.nextUint32() % 5));
    });
  });

  after(async () => {
    if (timer) clearTimeout(timer);
    await tun?.close();
    try { sh('ip', 'netns', 'del', NS); } catch { /* already gone */ }
  });

  /** An echo server on the stack: every byte comes back; FIN answered with FIN. */
  function echoServer(port: number) {
    const l = stack.tcpListen(port);
    l.onConnection = (c: TcpConnection) => {
      const pending: Uint8Array[] = [];
      let ended = false;
      const flush = () => {
        while (pending.length > 0) {
          const chunk = pending[0]!;
          const n = c.write(chunk, now());
          c.release(n, now());
          if (n < chunk.length) { pending[0] = chunk.subarray(n); return; }
          pending.shift();
        }
        if (ended) c.close(now());
      };
      c.events = {
        onData: (d) => { pending.push(d); flush(); schedule(); },
        onDrain: () => { flush(); schedule(); },
        onEnd: () => { ended = true; flush(); schedule(); },
      };
    };
    return l;
  }

  const echoClient = (host: string, port: number, size: number) => `
import socket, os, sys, threading
data = os.urandom(${size})
s = socket.create_connection(('${host}', ${port}), timeout=60)
got = bytearray()
def rd():
    while True:
        b = s.recv(65536)
        if not b: break
        got.extend(b)
t = threading.Thread(target=rd); t.start()
s.sendall(data); s.shutdown(socket.SHUT_WR)
t.join(); print('OK' if bytes(got) == data else 'BAD %d/%d' % (len(got), len(data)))
`;

  for (const [host, label] of [['10.203.0.2', 'IPv4'], ['fd03::2', 'IPv6']] as const) {
    it(`kernel client → stack echo server, 4 MB both ways (${label})`, async () => {
      const l = echoServer(label === 'IPv4' ? 5001 : 5011);
      const r = await python(echoClient(host, label === 'IPv4' ? 5001 : 5011, 4_000_000));
      l.close();
      assert.equal(r.out.trim(), 'OK', r.err);
    });
  }

  it('stack client → kernel server: 8 MB arrive intact (SHA-256)', async () => {
    let ready: () => void = () => {};
    const isReady = new Promise<void>((r) => { ready = r; });
    const server = python(`
import socket, os, hashlib
data = os.urandom(8_000_000)
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(('10.203.0.1', 5002)); srv.listen(1)
print('READY', flush=True)
c, _ = srv.accept(); c.sendall(data); c.close()
print(hashlib.sha256(data).hexdigest(), flush=True)
`, 120_000, (out) => { if (out.includes('READY')) ready(); });
    await isReady;
    const hash = createHash('sha256');
    const done = new Promise<string | undefined>((resolve) => {
      const c = stack.tcpConnect({ address: '10.203.0.1', port: 5002 }, now());
      c.events = {
        onData: (d) => { hash.update(d); c.release(d.length, now()); },
        onEnd: () => { c.close(now()); schedule(); },
        onClose: (e) => resolve(e?.code),
      };
      schedule();
    });
    const err = await done;
    const r = await server;
    assert.equal(err, undefined);
    assert.equal(r.out.split('\n')[1], hash.digest('hex'), r.err);
  });

  it('zero windows both ways: the kernel probes our full window, we probe the kernel\'s', async () => {
    // Our receiver holds everything for 2 s (window closes), then reads.
    const l = stack.tcpListen(5004);
    const hash = createHash('sha256');
    let total = 0;
    l.onConnection = (c) => {
      const held: Uint8Array[] = [];
      let holding = true;
      setTimeout(() => {
        holding = false;
        for (const d of held) c.release(d.length, now());
        schedule();
      }, 2000);
      c.events = {
        onData: (d) => { hash.update(d); total += d.length; if (holding) held.push(d); else c.release(d.length, now()); },
        onEnd: () => { c.write(new TextEncoder().encode(hash.digest('hex')), now()); c.close(now()); schedule(); },
      };
    };
    const r = await python(`
import socket, os, hashlib
data = os.urandom(6_000_000)
s = socket.create_connection(('10.203.0.2', 5004), timeout=60)
s.sendall(data); s.shutdown(socket.SHUT_WR)
got = b''
while True:
    b = s.recv(65536)
    if not b: break
    got += b
print('OK' if got.decode() == hashlib.sha256(data).hexdigest() else 'BAD')
`);
    l.close();
    assert.equal(r.out.trim(), 'OK', r.err);
    assert.equal(total, 6_000_000);

    // The kernel's receiver holds its (small) buffer shut for 2 s; we must probe, then finish.
    let ready: () => void = () => {};
    const isReady = new Promise<void>((res) => { ready = res; });
    const server = python(`
import socket, hashlib, time
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
srv.bind(('10.203.0.1', 5005)); srv.listen(1)
print('READY', flush=True)
c, _ = srv.accept(); time.sleep(2)
h = hashlib.sha256()
while True:
    b = c.recv(65536)
    if not b: break
    h.update(b)
print(h.hexdigest(), flush=True)
`, 120_000, (out) => { if (out.includes('READY')) ready(); });
    await isReady;
    const probesBefore = stack.counters.tcpZeroWindowProbes;
    const data = new Uint8Array(3_000_000);
    seededRng(9).fill(data);
    const closed = new Promise<string | undefined>((resolve) => {
      const c = stack.tcpConnect({ address: '10.203.0.1', port: 5005 }, now());
      let off = 0;
      const pump = () => {
        while (off < data.length) { const n = c.write(data.subarray(off), now()); off += n; if (n === 0) break; }
        if (off === data.length) c.close(now());
        schedule();
      };
      c.events = { onConnect: pump, onDrain: pump, onClose: (e) => resolve(e?.code) };
      schedule();
    });
    assert.equal(await closed, undefined);
    const out = await server;
    assert.equal(out.out.split('\n')[1], createHash('sha256').update(data).digest('hex'), out.err);
    assert.ok(stack.counters.tcpZeroWindowProbes > probesBefore, 'we probed the zero window');
  });

  it('the kernel pings the stack (IPv4, IPv6, and 4000-byte fragmented pings) and the stack pings the kernel', async () => {
    for (const args of [['ping', '-c', '3', '-i', '0.2', '10.203.0.2'], ['ping', '-6', '-c', '3', '-i', '0.2', 'fd03::2'],
      ['ping', '-c', '2', '-s', '4000', '10.203.0.2'], ['ping', '-6', '-c', '2', '-s', '4000', 'fd03::2']]) {
      const r = await inNs(args, 20_000);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.out}${r.err}`);
    }
    const replies: string[] = [];
    stack.onEchoReply = (e) => replies.push(`${e.from}/${e.sequence}/${e.payload.length}`);
    stack.ping('10.203.0.1', 1, 1, new Uint8Array(56), now());
    stack.ping('fd03::1', 1, 2, new Uint8Array(3000), now());
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(replies.sort(), ['10.203.0.1/1/56', 'fd03::1/2/3000']);
  });

  it('UDP both ways, and a closed port is refused both ways', async () => {
    const u = stack.udpBind(5353);
    u.onMessage = (d, from) => { u.send(d, from, now()); };
    const r = await python(`
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)
s.sendto(b'x' * 3000, ('10.203.0.2', 5353)); d, _ = s.recvfrom(9000)
c = socket.socket(); c.settimeout(5)
print(len(d), c.connect_ex(('10.203.0.2', 5999)))
`);
    u.close();
    assert.equal(r.out.trim(), `3000 111`, r.err);
    const refused = await new Promise<string | undefined>((resolve) => {
      const c = stack.tcpConnect({ address: '10.203.0.1', port: 5998 }, now());
      c.events = { onClose: (e) => resolve(e?.code) };
      schedule();
    });
    assert.equal(refused, 'ECONNREFUSED');
  });

  it('survives 3% loss each way with reordering: 2 MB echo', async () => {
    lossy = 0.03;
    try {
      const l = echoServer(5003);
      const r = await python(echoClient('10.203.0.2', 5003, 2_000_000), 300_000);
      l.close();
      assert.equal(r.out.trim(), 'OK', r.err);
    } finally {
      lossy = 0;
    }
    assert.equal(stack.counters.internalErrors, 0);
    assert.ok(stack.counters.tcpSackBlocksReceived > 0, 'Linux sent SACK blocks: SACK was agreed');
    assert.equal(stack.counters.tcpBadChecksum + stack.counters.ipBadChecksum + stack.counters.udpBadChecksum, 0);
  });
});
