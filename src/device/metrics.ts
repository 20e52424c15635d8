/**
 * An optional Prometheus endpoint for the daemon (`wireweave -f --metrics 127.0.0.1:9586 wg0`,
 * or WIREWEAVE_METRICS): GET /metrics answers the text exposition format 0.0.4.
 *
 * What is exported is what an operator watches for: handshakes initiated, completed and
 * failed; bytes per peer (labelled with the peer's base64 public key: public keys are not
 * secret, but they do identify peers, so bind to localhost unless the scraper needs more);
 * packets dropped by reason (the core's and the device's); cookie replies; whether under-load
 * mode is on; peers, sessions and uptime. Nothing is computed per packet: a scrape reads the
 * counters the endpoint and the device keep anyway. Never a private or preshared key.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import v8 from 'node:v8';
import { ConfigError, WireweaveError } from '../core/errors.ts';
import { DROP_REASONS } from '../core/endpoint.ts';
import { encodeBase64 } from '../core/keys.ts';
import type { Clock } from './clock.ts';
import { systemClock } from './clock.ts';
import type { Device, DeviceCounters } from './device.ts';
import { gcSnapshot, watchGc } from './gc-watch.ts';

/** Device counters that are drops, exported as `reason` values next to the core's. */
const DEVICE_DROPS: (keyof DeviceCounters)[] = ['noRoute', 'invalidTunPacket', 'sourceNotAllowed', 'invalidDecrypted', 'noEndpoint'];

export interface MetricsOptions {
  /** The device's clock (under-load mode is judged at its `now`); default the system clock. */
  clock?: Clock;
}

/**
 * Collects a device's metrics. Create it when the device is created: handshake failures are
 * counted from then on (the endpoint reports them only as events).
 */
export class DeviceMetrics {
  private readonly device: Device;
  private readonly clock: Clock;
  private readonly startedAt: number;
  private handshakesFailed = 0;

  constructor(device: Device, options: MetricsOptions = {}) {
    this.device = device;
    this.clock = options.clock ?? systemClock;
    this.startedAt = this.clock.now();
    device.onEndpointEvent((e) => { if (e.type === 'handshakeFailed') this.handshakesFailed++; });
  }

  /** The Prometheus text exposition (format 0.0.4). */
  render(): string {
    const d = this.device;
    const e = d.endpoint;
    const c = e.counters;
    const iface = `interface="${escapeLabel(d.name)}"`;
    const out: string[] = [];
    const metric = (name: string, type: 'counter' | 'gauge', help: string, samples: [string, number][]) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, value] of samples) out.push(`${name}{${iface}${labels ? `,${labels}` : ''}} ${formatValue(value)}`);
    };
    const now = this.clock.now();
    let sessions = 0;
    const rx: [string, number][] = [], tx: [string, number][] = [], last: [string, number][] = [];
    for (const id of e.peerIds()) {
      const p = e.inspectPeer(id);
      sessions += (p.current ? 1 : 0) + (p.previous ? 1 : 0) + (p.next ? 1 : 0);
      const label = `public_key="${escapeLabel(encodeBase64(p.publicKey))}"`;
      const stats = e.peerStats(id);
      rx.push([label, stats.rxBytes]);
      tx.push([label, stats.txBytes]);
      last.push([label, stats.lastHandshakeWall / 1000]);
    }
    metric('wireweave_up', 'gauge', 'The interface is running.', [['', 1]]);
    metric('wireweave_uptime_seconds', 'gauge', 'Seconds since the interface started.', [['', Math.max(0, (now - this.startedAt) / 1000)]]);
    metric('wireweave_peers', 'gauge', 'Configured peers.', [['', e.peerCount]]);
    metric('wireweave_sessions', 'gauge', 'Live sessions (current, previous and unconfirmed next keypairs) over all peers.', [['', sessions]]);
    metric('wireweave_under_load', 'gauge', '1 while under-load mode (cookie replies instead of handshakes) is on.', [['', e.isUnderLoad(now) ? 1 : 0]]);
    metric('wireweave_handshakes_initiated_total', 'counter', 'Handshake initiations sent (retries included).', [['', c.handshakeInitiationsSent]]);
    metric('wireweave_handshakes_completed_total', 'counter', 'Handshakes completed, as initiator or responder.', [['', c.handshakesCompleted]]);
    metric('wireweave_handshakes_failed_total', 'counter', 'Peers that gave up a handshake after REKEY_ATTEMPT_TIME without an answer.', [['', this.handshakesFailed]]);
    metric('wireweave_handshake_responses_sent_total', 'counter', 'Handshake responses sent.', [['', c.handshakeResponsesSent]]);
    metric('wireweave_cookie_replies_sent_total', 'counter', 'Cookie replies sent (under load, to handshakes without a valid mac2).', [['', c.cookieRepliesSent]]);
    metric('wireweave_cookie_replies_received_total', 'counter', 'Cookie replies received and accepted.', [['', c.cookieRepliesReceived]]);
    metric('wireweave_datagrams_received_total', 'counter', 'WireGuard datagrams received from the network.', [['', c.datagramsReceived]]);
    metric('wireweave_data_packets_sent_total', 'counter', 'Data packets sent (keepalives excluded).', [['', c.dataPacketsSent]]);
    metric('wireweave_data_packets_received_total', 'counter', 'Data packets received and authenticated (keepalives excluded).', [['', c.dataPacketsReceived]]);
    metric('wireweave_keepalives_sent_total', 'counter', 'Keepalives sent.', [['', c.keepalivesSent]]);
    metric('wireweave_keepalives_received_total', 'counter', 'Keepalives received.', [['', c.keepalivesReceived]]);
    metric('wireweave_handshake_initiations_offloaded_total', 'counter', 'Handshake initiations computed on the initiation thread (of those sent).', [['', d.counters.initiationsOffloaded]]);
    metric('wireweave_foreign_datagrams_total', 'counter', 'Datagrams on the port that are not WireGuard messages.', [['', d.counters.foreignDatagrams]]);
    metric('wireweave_dropped_packets_total', 'counter', 'Packets dropped, by reason (protocol and device).', [
      ...DROP_REASONS.map((r): [string, number] => [`reason="${r}"`, c.dropped[r]]),
      ...DEVICE_DROPS.map((r): [string, number] => [`reason="${r}"`, d.counters[r]]),
    ]);
    metric('wireweave_peer_receive_bytes_total', 'counter', 'Bytes received from a peer (WireGuard datagrams, as wg show counts them).', rx);
    metric('wireweave_peer_transmit_bytes_total', 'counter', 'Bytes sent to a peer (WireGuard datagrams, as wg show counts them).', tx);
    metric('wireweave_peer_last_handshake_seconds', 'gauge', 'Unix time of the last completed handshake with a peer (0 if none).', last);
    renderProcess(out);
    return out.join('\n') + '\n';
  }
}

/**
 * The process's own memory and CPU, under the names the usual Node exporters use (so existing
 * dashboards work): a daemon that grows shows it here, and heap against external against
 * array-buffer bytes says where. Process-wide, so without the interface label.
 */
function renderProcess(out: string[]): void {
  const m = process.memoryUsage();
  const cpu = process.cpuUsage();
  const gauge = (name: string, type: 'counter' | 'gauge', help: string, value: number) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name} ${formatValue(value)}`);
  };
  gauge('process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes.', m.rss);
  gauge('process_cpu_user_seconds_total', 'counter', 'User CPU time spent in seconds.', cpu.user / 1e6);
  gauge('process_cpu_system_seconds_total', 'counter', 'System CPU time spent in seconds.', cpu.system / 1e6);
  gauge('nodejs_heap_size_total_bytes', 'gauge', 'V8 heap size reserved, in bytes.', m.heapTotal);
  gauge('nodejs_heap_size_used_bytes', 'gauge', 'V8 heap in use, in bytes.', m.heapUsed);
  gauge('nodejs_external_memory_bytes', 'gauge', 'Memory of C++ objects bound to JavaScript objects, in bytes.', m.external);
  const gc = gcSnapshot();
  gauge('nodejs_gc_major_collections_total', 'counter', 'Major (mark-sweep-compact) collections since the metrics server started.', gc.majorCollections);
  gauge('nodejs_heap_live_bytes', 'gauge', 'V8 heap in use right after the latest major collection (NaN before the first): the live heap.', gc.liveHeapBytes);
  gauge('nodejs_array_buffers_bytes', 'gauge', 'Memory of ArrayBuffers, SharedArrayBuffers and Buffers (the packet rings included), in bytes.', m.arrayBuffers);
  // Per space: V8 grows the young generation ("new") by its own heuristics up to a fixed cap,
  // which is most of what a daemon's heap size does over its first hours.
  const spaces = v8.getHeapSpaceStatistics();
  for (const [name, help, field] of [
    ['nodejs_heap_space_size_total_bytes', 'V8 heap space size reserved, by space, in bytes.', 'space_size'],
    ['nodejs_heap_space_size_used_bytes', 'V8 heap space in use, by space, in bytes.', 'space_used_size'],
  ] as const) {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
    for (const sp of spaces) out.push(`${name}{space="${escapeLabel(sp.space_name.replace(/_space$/, ''))}"} ${formatValue(sp[field])}`);
  }
}

/** Label values are quoted: backslash, double quote and newline are escaped. */
function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? '+Inf' : '-Inf';
  return String(v);
}

/**
 * `PORT` (on 127.0.0.1), `HOST:PORT` or `[IPV6]:PORT`, as `--metrics` takes it (and as
 * `wireweave proxy` takes its addresses); `0.0.0.0:PORT` or `[::]:PORT` to serve every
 * address. Throws a one-line Error for anything else.
 */
export function parseListenAddress(text: string): { host: string; port: number } {
  const m = /^(?:(?:\[([0-9A-Fa-f:.%\w-]+)\]|([^:[\]\s]+)):)?(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new ConfigError('ERR_METRICS_ADDRESS', `invalid metrics address ${JSON.stringify(text)}: expected [HOST:]PORT, e.g. 127.0.0.1:9586`);
  return { host: m[1] ?? m[2] ?? '127.0.0.1', port };
}

export interface MetricsServer {
  /** The address actually bound (port resolved when 0 was asked for). */
  readonly address: { host: string; port: number };
  close(): Promise<void>;
}

/** Serves `metrics` at http://ADDR/metrics until closed. Rejects (one line) if it cannot listen. */
export async function startMetricsServer(metrics: DeviceMetrics, listen: string): Promise<MetricsServer> {
  const { host, port } = parseListenAddress(listen);
  const server = http.createServer({ headersTimeout: 5000, requestTimeout: 5000 }, (req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: the metrics are at /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    let body: string;
    try {
      body = metrics.render();
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`cannot render the metrics: ${(err as Error).message}\n`);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(new WireweaveError('ERR_METRICS_LISTEN', `cannot serve metrics on ${listen}: ${err.code === 'EADDRINUSE' ? 'address in use' : err.code === 'EACCES' ? 'permission denied' : err.message}`));
    });
    server.listen(port, host, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  const unwatchGc = watchGc();
  return {
    address: { host: bound.address, port: bound.port },
    close: () => new Promise<void>((resolve) => {
      unwatchGc();
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
