/**
 * Proves the wireguard-go harness: two real wireguard-go instances peered over
 * 127.0.0.1, each with its TUN device in its own network namespace.
 *
 * Skips (with a reason) when prerequisites are missing, unless CI is set, in
 * which case a missing prerequisite is a failure.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import fs from 'node:fs';
import { canRunWireguardGo, parseWgDump, run, startWireguardGo, which } from './wggo.ts';
import type { WgGo } from './wggo.ts';

const prereqMissing = ((): string | undefined => {
  const c = canRunWireguardGo();
  if (!c.ok) return c.reason;
  if (!which('ping')) return 'ping not found on PATH';
  return undefined;
})();
const skip: string | false = process.env.CI ? false : (prereqMissing ?? false);

function requirePrereqs(): void {
  assert.equal(prereqMissing, undefined, `CI is set but wireguard-go interop prerequisites are missing: ${prereqMissing}`);
}

async function wgOut(args: string[], input?: string): Promise<string> {
  const r = await run('wg', args, { input, timeoutMs: 5000 });
  assert.equal(r.code, 0, `wg ${args[0]} failed: ${r.stderr}`);
  return r.stdout.trim();
}

async function netnsList(): Promise<string[]> {
  const r = await run('ip', ['netns', 'list'], { timeoutMs: 5000 });
  return r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter(Boolean);
}

/** PIDs of our own child processes whose command name is wireguard-go. */
function ourWireguardGoChildren(): number[] {
  const pids: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (comm === 'wireguard-go' && ppid === process.pid) pids.push(Number(d));
    } catch {
      /* process went away */
    }
  }
  return pids;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function diag(...gs: (WgGo | undefined)[]): string {
  return gs
    .filter((g): g is WgGo => !!g)
    .map((g) => `\n--- ${g.ifname} log tail ---\n${g.logs().slice(-4000)}`)
    .join('');
}

test('two wireguard-go peers over 127.0.0.1 pass IPv4 and IPv6 traffic between namespaces', { skip, timeout: 90_000 }, async () => {
  requirePrereqs();
  const n = randomInt(16, 250);
  const h = randomInt(0x1000, 0xffff).toString(16);
  const a4 = `10.${n}.0.1`;
  const b4 = `10.${n}.0.2`;
  const a6 = `fd00:${h}::1`;
  const b6 = `fd00:${h}::2`;

  const privA = await wgOut(['genkey']);
  const privB = await wgOut(['genkey']);
  const psk = await wgOut(['genpsk']);
  const pubA = await wgOut(['pubkey'], `${privA}\n`);
  const pubB = await wgOut(['pubkey'], `${privB}\n`);

  let A: WgGo | undefined;
  let B: WgGo | undefined;
  try {
    // A first (no endpoint for B yet: B's port is not known), then B pointing at A, then tell A about B.
    A = await startWireguardGo({
      privateKey: privA,
      peers: [{ publicKey: pubB, presharedKey: psk, allowedIPs: [`${b4}/32`, `${b6}/128`] }],
      tunAddress4: `${a4}/24`,
      tunAddress6: `${a6}/64`,
    });
    B = await startWireguardGo({
      privateKey: privB,
      peers: [
        { publicKey: pubA, presharedKey: psk, endpoint: `127.0.0.1:${A.listenPort}`, allowedIPs: [`${a4}/32`, `${a6}/128`] },
      ],
      tunAddress4: `${b4}/24`,
      tunAddress6: `${b6}/64`,
      mtu: 1380,
    });
    await A.wgSet(['peer', pubB, 'endpoint', `127.0.0.1:${B.listenPort}`]);

    assert.equal(A.publicKey, pubA);
    assert.equal(B.publicKey, pubB);
    assert.notEqual(A.netns, B.netns);
    assert.ok(A.listenPort > 0 && B.listenPort > 0 && A.listenPort !== B.listenPort);
    assert.ok(fs.existsSync(A.socketPath) && fs.existsSync(B.socketPath));

    // The TUN devices live in the namespaces, not in the root namespace.
    assert.ok(!fs.existsSync(`/sys/class/net/${A.ifname}`), 'A ifname still in root namespace');
    const linkB = await B.exec(['ip', '-o', 'link', 'show', 'dev', B.ifname]);
    assert.equal(linkB.code, 0, linkB.stderr);
    assert.match(linkB.stdout, /mtu 1380\b/);
    assert.match(linkB.stdout, /\bUP\b/);

    for (const [from, to] of [
      [A, b4],
      [A, b6],
      [B, a4],
      [B, a6],
    ] as const) {
      const r = await from.exec(['ping', '-c', '3', '-i', '0.2', '-W', '2', to], { timeoutMs: 20_000 });
      assert.equal(r.code, 0, `ping ${to} from ${from.netns} failed:\n${r.stdout}${r.stderr}${diag(A, B)}`);
      assert.match(r.stdout, / 0% packet loss/);
    }

    for (const [g, peerPub, peerPort] of [
      [A, pubB, B.listenPort],
      [B, pubA, A.listenPort],
    ] as const) {
      const dump = parseWgDump(await g.show());
      assert.equal(dump.publicKey, g.publicKey);
      assert.equal(dump.listenPort, g.listenPort);
      assert.equal(dump.peers.length, 1);
      const p = dump.peers[0]!;
      assert.equal(p.publicKey, peerPub);
      assert.equal(p.hasPresharedKey, true);
      assert.equal(p.endpoint, `127.0.0.1:${peerPort}`);
      assert.ok(p.latestHandshake > 0, `no handshake on ${g.ifname}: ${JSON.stringify(p)}`);
      assert.ok(Math.abs(Date.now() / 1000 - p.latestHandshake) < 120, 'handshake time implausible');
      assert.ok(p.transferRx > 0 && p.transferTx > 0, `no transfer on ${g.ifname}: ${JSON.stringify(p)}`);
    }
    assert.match(A.logs(), /Starting wireguard-go/);
    assert.doesNotMatch(A.logs() + B.logs(), new RegExp([privA, privB, psk].map((k) => k.replace(/[+/]/g, '\\$&')).join('|')));
  } finally {
    await B?.stop();
    await A?.stop();
  }

  // Everything is gone, and stop() is idempotent.
  const nsAfter = await netnsList();
  for (const g of [A, B]) {
    assert.ok(g);
    assert.ok(!nsAfter.includes(g.netns), `namespace ${g.netns} left behind`);
    assert.ok(!fs.existsSync(g.socketPath), `socket ${g.socketPath} left behind`);
    assert.ok(!alive(g.pid), `wireguard-go pid ${g.pid} still alive`);
    await g.stop();
  }
  assert.deepEqual(ourWireguardGoChildren(), []);
});

test('a failed start cleans up and does not leak keys', { skip, timeout: 30_000 }, async () => {
  requirePrereqs();
  const priv = await wgOut(['genkey']);
  const pub = await wgOut(['pubkey'], `${(await wgOut(['genkey']))}\n`);
  const psk = await wgOut(['genpsk']);
  const before = await netnsList();

  // Rejected by wg set (after the namespace and process exist).
  await assert.rejects(
    startWireguardGo({ privateKey: priv, peers: [{ publicKey: pub, presharedKey: psk, allowedIPs: ['10.1.2.0/99'] }] }),
    (e: Error) => {
      assert.match(e.message, /wg set/);
      assert.ok(!e.message.includes(priv) && !e.message.includes(psk), 'key leaked into error message');
      return true;
    },
  );
  // Rejected by our own validation; the bad "key" must not be echoed.
  const bogus = 'this-is-a-secret-not-a-key';
  await assert.rejects(startWireguardGo({ privateKey: bogus, peers: [] }), (e: Error) => {
    assert.match(e.message, /privateKey is not a base64 WireGuard key/);
    assert.ok(!e.message.includes(bogus));
    return true;
  });

  const ours = `wwt${process.pid}x`;
  const after = await netnsList();
  assert.deepEqual(
    after.filter((ns) => ns.startsWith(ours) && !before.includes(ns)),
    [],
  );
  const sockets = fs.existsSync('/var/run/wireguard') ? fs.readdirSync('/var/run/wireguard') : [];
  assert.deepEqual(
    sockets.filter((s) => s.startsWith(`wwg${process.pid % 100000}x`)),
    [],
  );
  assert.deepEqual(ourWireguardGoChildren(), []);
});
