/**
 * Helpers shared by the flood test, the fault tests and the soak (bench/soak.ts): process
 * figures from /proc, and node scripts for long-running traffic inside rig namespaces.
 */
import fs from 'node:fs';

export interface ProcSample {
  /** utime + stime of all threads, seconds. */
  cpuSeconds: number;
  /** Resident set now and its peak (VmHWM), KiB. */
  rssKiB: number;
  hwmKiB: number;
  /** The resident set's anonymous part (heaps, rings; the rest is the node binary and libraries as they are paged in), KiB. */
  rssAnonKiB: number;
  threads: number;
}

const CLK_TCK = 100;

/** CPU and memory of `pid` from /proc, or undefined if it is gone. */
export function procSample(pid: number): ProcSample | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) in parentheses.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpuSeconds = (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime, stime (fields 14, 15)
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
    return { cpuSeconds, rssKiB: kib('VmRSS'), hwmKiB: kib('VmHWM'), rssAnonKiB: kib('RssAnon'), threads: kib('Threads') };
  } catch {
    return undefined;
  }
}

/**
 * TCP receiver for a continuous stream: accepts connections one after another and prints
 * `{"t":<ms since start>,"bytes":<total>,"conns":<accepted>}` every `intervalMs`. Runs until killed.
 * argv: host port intervalMs
 */
export const STREAM_RECEIVER = `
const net = require('net');
const [host, port, every] = process.argv.slice(1);
const t0 = Date.now(); let bytes = 0, conns = 0;
const srv = net.createServer((s) => {
  conns++;
  s.on('data', (d) => { bytes += d.length; });
  s.on('error', () => {});
});
srv.listen(Number(port), host, () => process.stdout.write('listening\\n'));
setInterval(() => process.stdout.write(JSON.stringify({ t: Date.now() - t0, bytes, conns }) + '\\n'), Number(every));
`;

/**
 * TCP sender for a continuous stream at `rate` bytes/s (0: as fast as TCP allows), reconnecting
 * (after 1 s) whenever the connection breaks; prints `connected` and `{"event":"closed",...}` lines.
 * argv: host port rate
 */
export const STREAM_SENDER = `
const net = require('net');
const [host, port, rateArg] = process.argv.slice(1);
const rate = Number(rateArg); const chunk = Buffer.alloc(16384, 0x5a);
let connects = 0;
const connect = () => {
  let open = true, budget = 0, last = Date.now(), timer;
  const s = net.connect(Number(port), host, () => {
    connects++; process.stdout.write('connected ' + connects + '\\n');
    const pump = () => {
      if (!open) return;
      if (rate > 0) {
        const now = Date.now(); budget = Math.min(rate, budget + (now - last) * rate / 1000); last = now;
        while (budget >= chunk.length) { budget -= chunk.length; if (!s.write(chunk)) { s.once('drain', pump); return; } }
        timer = setTimeout(pump, 20);
      } else {
        while (s.write(chunk)) {}
        s.once('drain', pump);
      }
    };
    pump();
  });
  s.setNoDelay(true);
  const closed = (why) => {
    if (!open) return; open = false; clearTimeout(timer);
    process.stdout.write(JSON.stringify({ event: 'closed', why, t: Date.now() }) + '\\n');
    s.destroy(); setTimeout(connect, 1000);
  };
  s.on('error', (e) => closed(e.code || e.message));
  s.on('close', () => closed('close'));
};
connect();
`;

/** Parses the receiver's report lines. */
export function streamReports(stdout: string): { t: number; bytes: number; conns: number }[] {
  const out: { t: number; bytes: number; conns: number }[] = [];
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as { t: number; bytes: number; conns: number });
    } catch {
      /* a line cut by the ring buffer */
    }
  }
  return out;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Prints what GET argv[1] answers (a daemon's --metrics, from inside its namespace). argv: url */
export const FETCH_METRICS = "fetch(process.argv[1]).then((r) => r.text()).then((t) => process.stdout.write(t), (e) => { console.error(e.message); process.exit(1); })";

export type Metrics = Record<string, number>;

/** `name{labels} value` lines of the Prometheus text format; keys keep the labels but `interface`. */
export function parseMetrics(text: string): Metrics {
  const out: Metrics = {};
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$/.exec(line);
    // Without the interface label: wireweave_x{interface="wg0",reason="mac1"} -> wireweave_x{reason="mac1"}
    if (m) out[m[1]!.replace(/interface="[^"]*",?/, '').replace('{}', '')] = Number(m[2]);
  }
  return out;
}
