/**
 * `wireweave show [INTERFACE|all|interfaces] [FIELD]`: what `wg show` prints, read over the UAPI socket.
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
import { runtimeDir } from '../netstack/control.ts';
import type { MeshStatus } from '../mesh/peer/mesh-node.ts';
import { meshStatusPath, readStatusSocket } from '../mesh/peer/status-socket.ts';

export interface ShowIo {
  stdout: Writable;
  stderr: Writable;
}

function listInterfaces(dir = DEFAULT_SOCKET_DIR): string[] {
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

/** The mesh lines `show` adds: the hub connection under the interface, a path per mesh peer. */
function meshHubLine(mesh: MeshStatus): string {
  const h = mesh.hub;
  const detail = h.state === 'connected' ? `connected${h.observed ? `, seen as ${h.observed}` : ''}` : `${h.state}${h.reason ? `: ${h.reason}` : ''}`;
  return `  hub: ${h.url} (${detail})`;
}

/** Discovery: the network, our name and addresses, how many members, what was refused. */
function meshNetworkLine(n: NonNullable<MeshStatus['network']>): string {
  const refused = Object.values(n.announceDrops).reduce((a, b) => a + b, 0) + Object.values(n.helloRefused).reduce((a, b) => a + b, 0);
  return `  network: ${n.name} as ${n.self || '(no name)'} (${n.addresses.join(', ') || 'no address'}), ${n.members} ${n.members === 1 ? 'member' : 'members'}${refused ? `, ${refused} refused` : ''}`;
}

function meshPathLine(p: MeshStatus['peers'][number]): string {
  return p.path.kind === 'direct' ? `  path: direct ${p.path.address}` : `  path: relay ${p.path.hub} (${p.path.reason})`;
}

function isMeshStatus(v: unknown): v is MeshStatus {
  const m = v as MeshStatus | null;
  return typeof m === 'object' && m !== null && typeof m.hub?.url === 'string' && Array.isArray(m.peers);
}

export function formatShow(ifname: string, state: DeviceState, nowSec = Date.now() / 1000, hideKeys = true, mesh: MeshStatus | null = null): string {
  const secret = (key: Uint8Array) => (hideKeys ? '(hidden)' : encodeBase64(key));
  const lines: string[] = [`interface: ${ifname}`];
  if (state.privateKey) {
    lines.push(`  public key: ${encodeBase64(nodeCrypto.x25519PrivateKey(state.privateKey).publicKey)}`);
    lines.push(`  private key: ${secret(state.privateKey)}`);
  }
  if (state.listenPort) lines.push(`  listening port: ${state.listenPort}`);
  if (state.fwmark) lines.push(`  fwmark: 0x${state.fwmark.toString(16)}`);
  if (mesh) lines.push(meshHubLine(mesh));
  if (mesh?.network) lines.push(meshNetworkLine(mesh.network));
  const paths = new Map(mesh?.peers.map((p) => [p.publicKey, p]) ?? []);
  // wg lists peers with the most recent handshake first.
  const peers = [...state.peers].sort((a, b) => b.lastHandshakeTimeSec - a.lastHandshakeTimeSec);
  for (const p of peers) {
    lines.push('', `peer: ${encodeBase64(p.publicKey)}`);
    if (p.presharedKey) lines.push(`  preshared key: ${secret(p.presharedKey)}`);
    if (p.endpoint) lines.push(`  endpoint: ${p.endpoint}`);
    const meshPeer = paths.get(encodeBase64(p.publicKey));
    if (meshPeer?.discovered) {
      const d = meshPeer.discovered;
      lines.push(`  name: ${d.name || '(none)'}${d.refused ? ` (its Hello was refused: ${d.refused})` : d.addresses.length ? '' : ' (no Hello yet)'}`);
    }
    if (meshPeer) lines.push(meshPathLine(meshPeer));
    lines.push(`  allowed ips: ${p.allowedIps.length ? p.allowedIps.map(formatPrefix).join(', ') : '(none)'}`);
    if (p.lastHandshakeTimeSec) lines.push(`  latest handshake: ${formatAgo(Math.floor(nowSec - p.lastHandshakeTimeSec))}`);
    if (p.rxBytes || p.txBytes) lines.push(`  transfer: ${formatBytes(p.rxBytes)} received, ${formatBytes(p.txBytes)} sent`);
    if (p.persistentKeepalive) lines.push(`  persistent keepalive: every ${plural(p.persistentKeepalive, 'second')}`);
  }
  return lines.join('\n') + '\n';
}

/** The fields of `wg show INTERFACE FIELD`, in wg's order. */
export const SHOW_FIELDS = [
  'public-key', 'private-key', 'listen-port', 'fwmark', 'peers', 'preshared-keys', 'endpoints', 'allowed-ips',
  'latest-handshakes', 'transfer', 'persistent-keepalive', 'dump',
] as const;
export type ShowField = (typeof SHOW_FIELDS)[number];

const SHOW_USAGE = `Usage: wireweave show [ INTERFACE | all | interfaces ] [${SHOW_FIELDS.join(' | ')}]

Shows interfaces as wg show does: with no argument or \`all', every interface;
\`interfaces' lists their names. A FIELD prints only that, in wg's tab-separated
form for scripts (with \`all', each line starts with the interface name); \`dump'
prints everything, private and preshared keys included, as wg does. The full
view hides private and preshared keys unless WG_HIDE_KEYS=never. An interface
brought up from a file with [Mesh] also shows its hub connection (hub:) and,
per mesh peer, its path: \`relay HUB (why)' or \`direct ADDR:PORT'; with a
Network, the network line and each discovered member's name. --json prints
the same (without private or preshared keys) as JSON, with the mesh's counters.
`;

function isShowField(word: string): word is ShowField {
  return (SHOW_FIELDS as readonly string[]).includes(word);
}

/**
 * `wg show INTERFACE FIELD` output (show.c's ugly_print): peers in the device's order, keys
 * never hidden (these are asked for by name), "(none)" for what is missing, "off" for a zero
 * fwmark or keepalive. With `withInterface` (`wg show all FIELD`) each line starts with
 * `INTERFACE\t`.
 */
export function formatShowField(ifname: string, state: DeviceState, field: ShowField, withInterface: boolean): string {
  const pre = withInterface ? `${ifname}\t` : '';
  const maybeKey = (key: Uint8Array | null | undefined) => (key ? encodeBase64(key) : '(none)');
  const publicKey = state.privateKey ? nodeCrypto.x25519PrivateKey(state.privateKey).publicKey : null;
  const fwmark = state.fwmark ? `0x${state.fwmark.toString(16)}` : 'off';
  const keepalive = (n: number) => (n ? String(n) : 'off');
  const ips = (p: DeviceState['peers'][number], sep: string) => (p.allowedIps.length ? p.allowedIps.map(formatPrefix).join(sep) : '(none)');
  const perPeer = (line: (p: DeviceState['peers'][number]) => string) => state.peers.map((p) => `${pre}${encodeBase64(p.publicKey)}\t${line(p)}\n`).join('');
  switch (field) {
    case 'public-key': return `${pre}${maybeKey(publicKey)}\n`;
    case 'private-key': return `${pre}${maybeKey(state.privateKey)}\n`;
    case 'listen-port': return `${pre}${state.listenPort}\n`;
    case 'fwmark': return `${pre}${fwmark}\n`;
    case 'peers': return state.peers.map((p) => `${pre}${encodeBase64(p.publicKey)}\n`).join('');
    case 'preshared-keys': return perPeer((p) => maybeKey(p.presharedKey));
    case 'endpoints': return perPeer((p) => p.endpoint ?? '(none)');
    case 'allowed-ips': return perPeer((p) => ips(p, ' '));
    case 'latest-handshakes': return perPeer((p) => String(p.lastHandshakeTimeSec));
    case 'transfer': return perPeer((p) => `${p.rxBytes}\t${p.txBytes}`);
    case 'persistent-keepalive': return perPeer((p) => keepalive(p.persistentKeepalive));
    case 'dump': {
      const head = `${pre}${maybeKey(state.privateKey)}\t${maybeKey(publicKey)}\t${state.listenPort}\t${fwmark}\n`;
      return head + perPeer((p) => [
        maybeKey(p.presharedKey), p.endpoint ?? '(none)', ips(p, ','), p.lastHandshakeTimeSec, p.rxBytes, p.txBytes, keepalive(p.persistentKeepalive),
      ].join('\t'));
    }
  }
}

/**
 * `show --json`: one interface as JSON, keys as base64 (private and preshared keys never: the
 * JSON is for scripts and dashboards), times in Unix seconds, the mesh (hub, each peer's path
 * and reason, refused-signal counters) when the interface has one.
 */
export function formatShowJson(ifname: string, state: DeviceState, mesh: MeshStatus | null): Record<string, unknown> {
  const paths = new Map(mesh?.peers.map((p) => [p.publicKey, p]) ?? []);
  return {
    interface: ifname,
    publicKey: state.privateKey ? encodeBase64(nodeCrypto.x25519PrivateKey(state.privateKey).publicKey) : null,
    listenPort: state.listenPort,
    fwmark: state.fwmark,
    ...(mesh ? { mesh: { hub: mesh.hub, relay: mesh.relay, counters: mesh.counters, ...(mesh.network ? { network: mesh.network } : {}) } } : {}),
    peers: state.peers.map((p) => {
      const m = paths.get(encodeBase64(p.publicKey));
      return {
        publicKey: encodeBase64(p.publicKey),
        presharedKey: p.presharedKey !== null,
        endpoint: p.endpoint,
        allowedIps: p.allowedIps.map(formatPrefix),
        latestHandshake: p.lastHandshakeTimeSec,
        rxBytes: p.rxBytes,
        txBytes: p.txBytes,
        persistentKeepalive: p.persistentKeepalive,
        ...(m ? { path: m.path, candidates: m.candidates, signalDrops: m.drops } : {}),
        ...(m?.discovered ? { name: m.discovered.name, discovered: m.discovered } : {}),
      };
    }),
  };
}

export async function show(args: string[], io: ShowIo, env = process.env, dir = DEFAULT_SOCKET_DIR): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) { io.stdout.write(SHOW_USAGE); return 0; }
  const json = args.includes('--json');
  if (json) args = args.filter((a) => a !== '--json');
  if (json && args[1] !== undefined) { io.stderr.write('wireweave: --json shows whole interfaces, not a FIELD\n'); return 1; }
  const jsonOut: Record<string, unknown>[] = [];
  const target = args[0] ?? 'all';
  const field = args[1];
  if (args.length > 2 || (target === 'interfaces' && field !== undefined)) { io.stderr.write(SHOW_USAGE); return 1; }
  if (field !== undefined && !isShowField(field)) {
    io.stderr.write(`wireweave: invalid parameter \`${field.slice(0, 40)}'; one of: ${SHOW_FIELDS.join(', ')}\n`);
    return 1;
  }
  if (target.startsWith('-')) {
    io.stderr.write(`wireweave: unknown option \`${target.slice(0, 40)}'; run 'wireweave show --help'\n`);
    return 1;
  }
  if (target === 'interfaces') {
    const names = listInterfaces(dir);
    if (names.length) io.stdout.write(names.join(' ') + '\n');
    return 0;
  }
  const all = target === 'all';
  const names = all ? listInterfaces(dir) : [target];
  let first = true;
  for (const name of names) {
    let state: DeviceState;
    let answered = dir;
    try {
      state = await uapiGet(name, dir).catch((err: NodeJS.ErrnoException) => {
        // A rootless tunnel (`proxy`/`forward`) keeps its control socket in the user's runtime directory.
        if (err.code !== 'ENOENT' || all) throw err;
        answered = runtimeDir(env, process.getuid?.() ?? -1);
        return uapiGet(name, answered).catch(() => { throw err; });
      });
    } catch (err) {
      const errno = (err as NodeJS.ErrnoException).code;
      const why = errno === 'ENOENT' ? 'no such interface' : errno === 'ECONNREFUSED' ? 'nothing answers on its socket (stale socket of a daemon that exited?)' : (err as Error).message;
      io.stderr.write(`wireweave: unable to access interface ${name}: ${why}\n`);
      // As wg does, `all` goes on with the other interfaces (and still exits 0).
      if (!all) return 1;
      continue;
    }
    if (field !== undefined) {
      io.stdout.write(formatShowField(name, state, field, all));
      continue;
    }
    // A mesh interface (a [Mesh] section) answers on a status socket next to its UAPI socket.
    const status = await readStatusSocket(meshStatusPath(name, answered));
    const mesh = isMeshStatus(status) ? status : null;
    if (json) { jsonOut.push(formatShowJson(name, state, mesh)); continue; }
    if (!first) io.stdout.write('\n');
    first = false;
    io.stdout.write(formatShow(name, state, Date.now() / 1000, hideKeysFrom(env), mesh));
  }
  // One interface: its object; `all`: a list.
  if (json) io.stdout.write(JSON.stringify(all ? jsonOut : jsonOut[0], null, 2) + '\n');
  return 0;
}
