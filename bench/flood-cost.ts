/**
 * What a handshake flood costs the daemon per datagram (issue 15): a wireweave daemon in a network
 * namespace, with a peer configured, takes the flood of test/support/flood-sender.ts (garbage,
 * mac1-valid initiations, no tunnel traffic) for a few seconds; reported are the datagrams it
 * received (its metrics) and the CPU time of each of its threads (/proc/PID/task), per
 * datagram. Root, ip, wg; reports only.
 *
 *   node --import tsx bench/flood-cost.ts [--seconds S] [--pps N]   (default 6 s at 20,000/s)
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createRig, genKeyPair } from '../test/support/netns.ts';
import { FETCH_METRICS, parseMetrics } from '../test/support/flood-tools.ts';
import { positiveFlag } from './util.ts';

const args = process.argv.slice(2);
const SECONDS = positiveFlag(args, 'bench:flood-cost', '--seconds', 6);
/** A rate the daemon keeps up with, so the cost per datagram is not that of a saturated daemon. */
const PPS = positiveFlag(args, 'bench:flood-cost', '--pps', 20_000, true);
const FLOOD_SENDER = fileURLToPath(new URL('../test/support/flood-sender.ts', import.meta.url));
const TSX = import.meta.resolve('tsx');
const METRICS = '127.0.0.1:9589';
const CLK_TCK = 100;

function threads(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(`${tid} ${name}`, (Number(f[11]) + Number(f[12])) / CLK_TCK);
    } catch { /* gone */ }
  }
  return out;
}

const rig = await createRig({ name: 'flood cost', nodes: 2 });
try {
  const [a, c] = rig.nodes as [typeof rig.nodes[0], typeof rig.nodes[0]];
  const d = await rig.startDaemon(a, 'wireweave', undefined, { WIREWEAVE_METRICS: METRICS, LOG_LEVEL: 'error' });
  const kA = genKeyPair(), kB = genKeyPair();
  await rig.configure(a, d.ifname, { privateKey: kA.privateKey, listenPort: 51820, peers: [{ publicKey: kB.publicKey, allowedIPs: ['10.99.0.2/32'] }], address4: '10.99.0.1/24' });
  const received = async (): Promise<number> => {
    const m = parseMetrics((await rig.execOk(a, [process.execPath, '-e', FETCH_METRICS, `http://${METRICS}/metrics`])).stdout);
    return (m.wireweave_datagrams_received_total ?? 0) + (m.wireweave_foreign_datagrams_total ?? 0);
  };
  const flooder = rig.spawnIn(c, ['env', `FLOOD_PPS=${PPS}`, 'nice', '-n', '19', process.execPath, '--import', TSX, FLOOD_SENDER, a.addr4, '51820', kA.publicKey, '', String(SECONDS + 3), '2']);
  await flooder.waitFor(/flooding/, 20_000);
  await new Promise((r) => setTimeout(r, 1500));
  const r0 = await received();
  const t0 = threads(d.proc.pid);
  const w0 = performance.now();
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const t1 = threads(d.proc.pid);
  const wall = (performance.now() - w0) / 1000;
  const r1 = await received();
  const n = r1 - r0;
  console.log(`${n} datagrams in ${wall.toFixed(1)} s = ${(n / wall / 1000).toFixed(1)} kpps`);
  let total = 0;
  for (const [k, v] of t1) {
    const cpu = v - (t0.get(k) ?? 0);
    total += cpu;
    if (cpu >= 0.05) console.log(`  ${k.padEnd(28)} ${(cpu / wall).toFixed(2)} core  ${((cpu * 1e6) / n).toFixed(2)} us/datagram`);
  }
  console.log(`  daemon total ${(total / wall).toFixed(2)} core  ${((total * 1e6) / n).toFixed(2)} us/datagram`);
  process.kill(flooder.pid, 'SIGTERM');
} finally {
  await rig.destroy();
}
