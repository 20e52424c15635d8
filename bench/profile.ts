/**
 * Profiles two wireweave daemons (each with --cpu-prof) in a namespace rig while iperf3 pushes
 * TCP through the tunnel, then prints the top self-time functions per thread.
 *   node --import tsx bench/profile.ts [--seconds 8] [--dir /tmp/wireweave-prof]
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRig, genKeyPair, WIREWEAVE_BIN } from '../test/support/netns.ts';
import type { RigNode } from '../test/support/netns.ts';

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
};
const seconds = Number(arg('seconds', '8'));
const dir = arg('dir', '/tmp/wireweave-prof');
fs.rmSync(dir, { recursive: true, force: true });
fs.mkdirSync(dir, { recursive: true });

const rig = await createRig({ name: 'prof' });
/** Daemon name by PID (`ip netns exec` execs the daemon, so the PID is the daemon's). */
const names = new Map<number, string>();
const [a, b] = rig.nodes as [RigNode, RigNode];
const ka = genKeyPair(), kb = genKeyPair();
const ia = rig.ifname('pa'), ib = rig.ifname('pb');
try {
  const start = (n: RigNode, name: string) =>
    rig.spawnIn(n, [process.execPath, '--cpu-prof', `--cpu-prof-dir=${dir}`, WIREWEAVE_BIN, '-f', name]);
  const procs = [start(a, ia), start(b, ib)];
  names.set(procs[0]!.pid, `${ia} (sender side)`);
  names.set(procs[1]!.pid, `${ib} (receiver side)`);
  for (const name of [ia, ib]) {
    for (let i = 0; i < 100 && !fs.existsSync(`/var/run/wireguard/${name}.sock`); i++) await new Promise((r) => setTimeout(r, 100));
  }
  await rig.configure(a, ia, { privateKey: ka.privateKey, listenPort: 51820, peers: [{ publicKey: kb.publicKey, endpoint: `${b.addr4}:51821`, allowedIPs: [`${b.tun4}/32`] }], address4: `${a.tun4}/24` });
  await rig.configure(b, ib, { privateKey: kb.privateKey, listenPort: 51821, peers: [{ publicKey: ka.publicKey, endpoint: `${a.addr4}:51820`, allowedIPs: [`${a.tun4}/32`] }], address4: `${b.tun4}/24` });
  rig.spawnIn(b, ['iperf3', '-s', '-1']);
  await new Promise((r) => setTimeout(r, 700));
  const r = await rig.exec(a, ['iperf3', '-c', b.tun4, '-t', String(seconds), '-f', 'm']);
  process.stdout.write(r.stdout.split('\n').filter((l) => /sender|receiver/.test(l)).join('\n') + '\n');
  for (const p of procs) await p.stop(5000);
} finally {
  await rig.destroy();
}

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }
for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort()) {
  const prof = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  prof.samples.forEach((id, i) => {
    const cf = byId.get(id)!.callFrame;
    const key = `${cf.functionName || '(anonymous)'} ${cf.url.split('/').pop()}:${cf.lineNumber + 1}`;
    const dt = prof.timeDeltas[i] ?? 0;
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
  });
  if (total < 1e6) continue; // short-lived threads
  const idle = self.get('(idle) :0') ?? 0;
  // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile; thread 0 is the main thread.
  const [, , , pid, thread] = file.split('.');
  const who = `${names.get(Number(pid)) ?? `pid ${pid}`}, ${thread === '0' ? 'main thread' : `worker ${thread}`}`;
  process.stdout.write(`\n${who}: ${(total / 1e6).toFixed(1)} s sampled, ${((total - idle) / 1e6).toFixed(1)} s not idle\n`);
  for (const [k, v] of [...self].sort((x, y) => y[1] - x[1]).slice(0, 12)) {
    process.stdout.write(`  ${(v / 1e3).toFixed(0).padStart(7)} ms ${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}\n`);
  }
}
process.stdout.write(`\n(koffi calls that block, e.g. poll() in the reader threads, count as busy time in the profile.)\n`);
