/**
 * Tells the operator of a rootless tunnel whether its peers answer: "tunnel up" only means the
 * UDP socket is open. At start a handshake is begun with every peer that has an Endpoint (as
 * wireguard-go does with a persistent keepalive), the first completed handshake with each peer is
 * reported, a peer without one after `timeoutMs` is named with what to check, and so is a peer
 * whose handshake attempts ran out later (REKEY_ATTEMPT_TIME). Renewals go to the verbose log.
 */
import { encodeBase64 } from '../core/keys.ts';
import type { Clock } from '../device/clock.ts';
import type { Device } from '../device/device.ts';

export interface HandshakeReportOptions {
  clock: Clock;
  /** Lines at the default level (stderr of `proxy`/`forward`). */
  log: (line: string) => void;
  /** Lines at verbose level. */
  verbose?: (line: string) => void;
  /** Name a peer without a handshake this long after start (default 15000 ms). */
  timeoutMs?: number;
  /** Begin a handshake with every peer that has an Endpoint at start (default true). */
  initiate?: boolean;
}

interface PeerReport {
  key: string;
  /** Handshakes completed since start. */
  completed: number;
  /** A failure was reported and no handshake completed since. */
  warned: boolean;
}

export interface HandshakeReport {
  /** Peers (base64 public keys) with at least one completed handshake since start. */
  readonly connected: ReadonlySet<string>;
  stop(): void;
}

export function reportHandshakes(device: Device, options: HandshakeReportOptions): HandshakeReport {
  const { clock, log } = options;
  const verbose = options.verbose ?? (() => {});
  const timeoutMs = options.timeoutMs ?? 15_000;
  const started = clock.now();
  const peers = new Map<number, PeerReport>();
  const connected = new Set<string>();
  let stopped = false;
  const endpointOf = (key: string) => device.getState().peers.find((p) => encodeBase64(p.publicKey) === key)?.endpoint;
  const reportOf = (id: number): PeerReport => {
    let r = peers.get(id);
    if (!r) {
      r = { key: encodeBase64(device.endpoint.inspectPeer(id).publicKey), completed: 0, warned: false };
      peers.set(id, r);
    }
    return r;
  };
  const seconds = () => Math.round((clock.now() - started) / 1000);

  device.onEndpointEvent((e) => {
    if (stopped) return;
    if (e.type === 'handshakeCompleted') {
      const r = reportOf(e.peer);
      r.completed++;
      connected.add(r.key);
      if (r.completed === 1 || r.warned) log(`handshake with peer ${r.key} (${endpointOf(r.key) ?? 'no endpoint'}) completed${r.warned ? ` after ${seconds()} s` : ''}`);
      else verbose(`handshake with peer ${r.key} renewed`);
      r.warned = false;
    } else if (e.type === 'handshakeFailed') {
      const r = reportOf(e.peer);
      if (r.warned) return;
      r.warned = true;
      log(`no handshake with peer ${r.key} (${endpointOf(r.key) ?? 'no endpoint'}) after retrying for 90 s; check its Endpoint, its keys and that it lists our public key (will retry with the next packet)`);
    }
  });

  if (options.initiate ?? true) {
    const now = clock.now();
    for (const id of device.endpoint.peerIds()) {
      const key = encodeBase64(device.endpoint.inspectPeer(id).publicKey);
      if (endpointOf(key)) device.endpoint.initiateHandshake(now, id);
      else verbose(`peer ${key} has no Endpoint: waiting for it to reach us`);
    }
    // An empty set changes nothing but re-arms the device's timer for the retransmissions.
    void device.applySet({ replacePeers: false, peers: [] }).catch(() => {});
  }

  const timer = clock.setTimer(() => {
    if (stopped) return;
    for (const p of device.getState().peers) {
      const key = encodeBase64(p.publicKey);
      if (connected.has(key) || !p.endpoint) continue;
      const id = device.endpoint.peerIdByKey(p.publicKey);
      if (id !== undefined) reportOf(id).warned = true;
      log(`no handshake with peer ${key} (${p.endpoint}) after ${Math.round(timeoutMs / 1000)} s; check its Endpoint, its keys and that it lists our public key`);
    }
  }, timeoutMs);

  return {
    connected,
    stop: () => {
      stopped = true;
      clock.clearTimer(timer);
    },
  };
}
