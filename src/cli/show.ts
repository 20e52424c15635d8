/**
 * `wireweave show [INTERFACE|all|interfaces]`: what `wg show` prints, read over the UAPI socket.
 * Private and preshared keys are shown as "(hidden)" unless WG_HIDE_KEYS=never, as wg(8) does
 * (`always`, any other value or none hides them).
 */
import fs from 'node:fs';
import type { Writable } from 'node:stream';
import { encodeBase64 } from '../core/keys.ts';
import { nodeCrypto } from '../crypto/node.ts';
import { formatPrefix } from '../device/allowedips.ts';
import type { DeviceState } from '../device/config.ts';
import { uapiGet } from '../device/uapi-client.ts';
import { DEFAULT_SOCKET_DIR } from '../device/uapi-server.ts';

export interface ShowIo {
  stdout: Writable;
  stderr: Writable;
}

export function listInterfaces(dir = DEFAULT_SOCKET_DIR): string[] {
  try {
    return fs.readdirSync(dir).filter((f) => f.endsWith('.sock')).map((f) => f.slice(0, -5)).sort();
  } catch {
    return [];
  }
}

function plural(n: number, unit: string): string {
  return `${n} ${unit}${n === 1 ? '' : 's'}`;
}

/** "1 minute, 5 seconds ago", as wg prints a handshake age. */
export function formatAgo(seconds: number): string {
  if (seconds <= 0) return 'Now';
  const parts: string[] = [];
  const units: [number, string][] = [[365 * 86400, 'year'], [86400, 'day'], [3600, 'hour'], [60, 'minute'], [1, 'second']];
  for (const [size, unit] of units) {
    const n = Math.floor(seconds / size);
    if (n > 0) { parts.push(plural(n, unit)); seconds -= n * size; }
  }
  return parts.join(', ') + ' ago';
}

/** "1.50 KiB", as wg prints transfer counters. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(2)} ${units[i]}`;
}

/** wg(8): only WG_HIDE_KEYS=never shows private and preshared keys. */
export function hideKeysFrom(env: NodeJS.ProcessEnv): boolean {
  return env.WG_HIDE_KEYS !== 'never';
}

export function formatShow(ifname: string, state: DeviceState, nowSec = Date.now() / 1000, hideKeys = true): string {
  const secret = (key: Uint8Array) => (hideKeys ? '(hidden)' : encodeBase64(key));
  const lines: string[] = [`interface: ${ifname}`];
  if (state.privateKey) {
    lines.push(`  public key: ${encodeBase64(nodeCrypto.x25519PrivateKey(state.privateKey).publicKey)}`);
    lines.push(`  private key: ${secret(state.privateKey)}`);
  }
  if (state.listenPort) lines.push(`  listening port: ${state.listenPort}`);
  if (state.fwmark) lines.push(`  fwmark: 0x${state.fwmark.toString(16)}`);
  // wg lists peers with the most recent handshake first.
  const peers = [...state.peers].sort((a, b) => b.lastHandshakeTimeSec - a.lastHandshakeTimeSec);
  for (const p of peers) {
    lines.push('', `peer: ${encodeBase64(p.publicKey)}`);
    if (p.presharedKey) lines.push(`  preshared key: ${secret(p.presharedKey)}`);
    if (p.endpoint) lines.push(`  endpoint: ${p.endpoint}`);
    lines.push(`  allowed ips: ${p.allowedIps.length ? p.allowedIps.map(formatPrefix).join(', ') : '(none)'}`);
    if (p.lastHandshakeTimeSec) lines.push(`  latest handshake: ${formatAgo(Math.floor(nowSec - p.lastHandshakeTimeSec))}`);
    if (p.rxBytes || p.txBytes) lines.push(`  transfer: ${formatBytes(p.rxBytes)} received, ${formatBytes(p.txBytes)} sent`);
    if (p.persistentKeepalive) lines.push(`  persistent keepalive: every ${plural(p.persistentKeepalive, 'second')}`);
  }
  return lines.join('\n') + '\n';
}

export async function show(args: string[], io: ShowIo, env = process.env, dir = DEFAULT_SOCKET_DIR): Promise<number> {
  const target = args[0] ?? 'all';
  if (args.length > 1) { io.stderr.write('Usage: wireweave show [INTERFACE | all | interfaces]\n'); return 1; }
  if (target === 'interfaces') {
    const names = listInterfaces(dir);
    if (names.length) io.stdout.write(names.join(' ') + '\n');
    return 0;
  }
  const names = target === 'all' ? listInterfaces(dir) : [target];
  let first = true;
  for (const name of names) {
    let state: DeviceState;
    try {
      state = await uapiGet(name, dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      io.stderr.write(`wireweave: unable to access interface ${name}: ${code === 'ENOENT' ? 'no such interface' : (err as Error).message}\n`);
      return 1;
    }
    if (!first) io.stdout.write('\n');
    first = false;
    io.stdout.write(formatShow(name, state, Date.now() / 1000, hideKeysFrom(env)));
  }
  return 0;
}
