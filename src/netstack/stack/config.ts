/**
 * StackConfig with every default filled in, validated once (ConfigError, nothing changed).
 * Timer values are milliseconds.
 */
import { ConfigError } from '../../core/errors.ts';
import { systemRng } from '../../core/rng.ts';
import type { Rng } from '../../core/rng.ts';
import { parseIp } from '../../core/ip-address.ts';
import { MEMORY_FLOOR } from './tcp/memory-budget.ts';
import type { StackConfig } from './types.ts';

export interface ResolvedConfig {
  readonly addresses4: readonly Uint8Array[];
  readonly addresses6: readonly Uint8Array[];
  readonly mtu: number;
  readonly rng: Rng;
  readonly tcpSendBuffer: number;
  readonly tcpReceiveBuffer: number;
  readonly tcpSendBufferInitial: number;
  readonly tcpReceiveBufferInitial: number;
  readonly tcpMemoryLimit: number;
  readonly tcpMemoryPressure: number;
  readonly tcpMemoryLow: number;
  readonly synBacklog: number;
  readonly maxConnections: number;
  readonly tcpMsl: number;
  readonly tcpUserTimeout: number;
  readonly tcpSynRetries: number;
  readonly tcpSynAckRetries: number;
  readonly tcpInitialRto: number;
  readonly tcpMinRto: number;
  readonly tcpMaxRto: number;
  readonly tcpDelayedAck: number;
  readonly tcpKeepaliveInterval: number;
  readonly tcpKeepaliveProbes: number;
  readonly tcpFinWait2Timeout: number;
  readonly tcpTimestamps: boolean;
  readonly tcpWindowScaling: boolean;
  readonly tcpSack: boolean;
  readonly reassemblyTimeout: number;
  readonly reassemblyMaxBytes: number;
  readonly reassemblyMaxDatagrams: number;
  readonly ephemeralPortMin: number;
  readonly ephemeralPortMax: number;
}

const DEFAULTS = {
  mtu: 1420,
  tcpSendBuffer: 4 * 1024 * 1024,
  tcpReceiveBuffer: 4 * 1024 * 1024,
  /**
   * Where each connection's buffers start; they grow toward the maxima above as the application
   * reads (receive) and as the congestion window opens (send), while the budget allows.
   */
  tcpSendBufferInitial: 64 * 1024,
  tcpReceiveBufferInitial: 64 * 1024,
  /**
   * The stack's TCP memory budget (memory-budget.ts). 128 MiB holds the 16 KiB + 16 KiB floors of
   * all 4096 connections, or a thousand idle connections at their initial windows; pressure at
   * 3/4 of it, relief under 1/2 unless given.
   */
  tcpMemoryLimit: 128 * 1024 * 1024,
  synBacklog: 128,
  maxConnections: 4096,
  /** Maximum segment lifetime; TIME-WAIT lasts 2 × MSL. RFC 9293 says 2 minutes, Linux uses 30 s. */
  tcpMsl: 30_000,
  /** Give up on unacknowledged data after this long (RFC 5482's user timeout). */
  tcpUserTimeout: 180_000,
  /** SYN retransmissions before ETIMEDOUT: 1+2+4+8+16+32 s, then 64 s more, as Linux. */
  tcpSynRetries: 6,
  tcpSynAckRetries: 5,
  tcpInitialRto: 1000,
  /** RFC 6298 asks for 1 s; 200 ms is what Linux (and most stacks) use on fast paths. */
  tcpMinRto: 200,
  tcpMaxRto: 60_000,
  tcpDelayedAck: 40,
  tcpKeepaliveInterval: 75_000,
  tcpKeepaliveProbes: 9,
  tcpFinWait2Timeout: 60_000,
  tcpTimestamps: true,
  tcpWindowScaling: true,
  /** Offer SACK (RFC 2018) and recover from losses with it (RFC 6675). */
  tcpSack: true,
  reassemblyTimeout: 30_000,
  reassemblyMaxBytes: 1024 * 1024,
  reassemblyMaxDatagrams: 64,
  ephemeralPortMin: 49152,
  ephemeralPortMax: 65535,
} as const;

export function resolveConfig(c: StackConfig): ResolvedConfig {
  const addresses4: Uint8Array[] = [];
  const addresses6: Uint8Array[] = [];
  for (const a of c.addresses) {
    let bytes: Uint8Array;
    try { bytes = parseIp(a); } catch { throw new ConfigError('ERR_ADDRESS', `not an IP address: ${JSON.stringify(a)}`); }
    (bytes.length === 4 ? addresses4 : addresses6).push(bytes);
  }
  if (addresses4.length + addresses6.length === 0) throw new ConfigError('ERR_ADDRESS', 'the stack needs at least one address');
  const r = { ...DEFAULTS, ...definedOnly(c as unknown as Record<string, unknown>) } as typeof DEFAULTS & StackConfig;
  const positive = (name: string, v: number, min = 1) => {
    if (!Number.isFinite(v) || v < min) throw new ConfigError('ERR_CONFIG', `${name} must be a number ≥ ${min}, not ${v}`);
  };
  positive('mtu', r.mtu, 1280);
  if (r.mtu > 65535) throw new ConfigError('ERR_CONFIG', `mtu must be ≤ 65535, not ${r.mtu}`);
  positive('tcpSendBuffer', r.tcpSendBuffer);
  positive('tcpReceiveBuffer', r.tcpReceiveBuffer, 1024);
  positive('synBacklog', r.synBacklog);
  positive('maxConnections', r.maxConnections);
  if (r.tcpReceiveBuffer > 1 << 30) throw new ConfigError('ERR_CONFIG', 'tcpReceiveBuffer must be ≤ 1 GiB (window scale 14)');
  positive('tcpSendBufferInitial', r.tcpSendBufferInitial);
  positive('tcpReceiveBufferInitial', r.tcpReceiveBufferInitial, 1024);
  const tcpSendBufferInitial = Math.min(r.tcpSendBufferInitial, r.tcpSendBuffer);
  const tcpReceiveBufferInitial = Math.min(r.tcpReceiveBufferInitial, r.tcpReceiveBuffer);
  positive('tcpMemoryLimit', r.tcpMemoryLimit, 2 * MEMORY_FLOOR);
  const tcpMemoryPressure = r.tcpMemoryPressure ?? Math.floor(r.tcpMemoryLimit * 3 / 4);
  const tcpMemoryLow = r.tcpMemoryLow ?? Math.min(tcpMemoryPressure, Math.floor(r.tcpMemoryLimit / 2));
  positive('tcpMemoryPressure', tcpMemoryPressure, 0);
  positive('tcpMemoryLow', tcpMemoryLow, 0);
  if (!(tcpMemoryLow <= tcpMemoryPressure && tcpMemoryPressure <= r.tcpMemoryLimit)) {
    throw new ConfigError('ERR_CONFIG', `the TCP memory thresholds must be ordered tcpMemoryLow (${tcpMemoryLow}) ≤ tcpMemoryPressure (${tcpMemoryPressure}) ≤ tcpMemoryLimit (${r.tcpMemoryLimit})`);
  }
  if (r.ephemeralPortMin < 1 || r.ephemeralPortMax > 65535 || r.ephemeralPortMin > r.ephemeralPortMax) {
    throw new ConfigError('ERR_CONFIG', 'bad ephemeral port range');
  }
  return {
    ...r, addresses4, addresses6, rng: c.rng ?? systemRng,
    tcpSendBufferInitial, tcpReceiveBufferInitial, tcpMemoryPressure, tcpMemoryLow,
  };
}

function definedOnly(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined && k !== 'addresses' && k !== 'rng') out[k] = v;
  return out;
}
