/**
 * The wg-quick(8) configuration file format: the wg(8) `setconf` format plus wg-quick's own
 * [Interface] keys (Address, DNS, MTU, Table, PreUp, PostUp, PreDown, PostDown, SaveConfig).
 *
 * The parser reads a file the way the two tools do together, as wireguard-tools v1.0.20210914
 * does:
 *
 * - wg-quick cuts each line at the first '#', splits it at the first '=', trims whitespace from
 *   the key and the value, and matches its own keys case-insensitively, only while the last
 *   section header it saw was exactly `[Interface]` (any case, surrounding spaces allowed).
 *   Every other line goes to `wg setconf`.
 * - wg cuts each line at the first '#' and deletes ALL whitespace from it (so `Listen Port = 5 1`
 *   is `ListenPort=51`), matches `[Interface]`, `[Peer]` and its keys case-insensitively and
 *   rejects any other line ("Line unrecognized"), an empty value and a [Peer] without PublicKey.
 *
 * It is stricter than the tools where they accept something that is almost certainly a mistake:
 * a repeated singular key, a second [Interface] section or two peers with one public key are
 * errors (wg lets the last one win); ports must be numbers from 0 (ListenPort) or 1 (Endpoint)
 * to 65535 (glibc's getaddrinfo also takes service names and wraps 65536 to 0); IPv4 addresses
 * must be dotted quads (getaddrinfo also takes inet_aton forms such as `10.1`); MTU must be
 * 68-65535, Address/DNS entries must be IP addresses (wg-quick leaves that to ip(8) and
 * resolvconf(8)).
 *
 * Parsing is pure (no I/O). Error messages are `file:line: problem` and never contain the value
 * of a key field; other values are quoted with anything shaped like a base64 key redacted.
 */
import { lookup } from 'node:dns/promises';
import { realpathSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { ConfigError } from '../core/errors.ts';
import { KeyFormatError, encodeBase64, parseKeyBase64 } from '../core/keys.ts';
import { formatIp, tryParseIp } from '../core/ip-address.ts';
import { formatPrefix } from './allowedips.ts';
import type { EndpointAddress, PeerChange, Prefix, SetRequest } from './config.ts';
import { MESH_KEY_NAMES, applyMeshKey, checkMeshSection, formatMeshSection, meshKey } from './wgquick-mesh.ts';
import type { MeshKey, WgQuickMesh } from './wgquick-mesh.ts';

export type { MeshRelayPolicy, WgQuickMesh } from './wgquick-mesh.ts';

// ---------------------------------------------------------------------------------------------
// Types

/** An interface address (`Address = 10.0.0.1/24`): unlike an allowed IP, the host part is kept. */
export interface InterfaceAddress {
  readonly family: 4 | 6;
  /** 4 or 16 bytes, host bits as written. */
  readonly bytes: Uint8Array;
  /** Prefix length; 32 or 128 when the file gives none (as ip-address(8) assumes). */
  readonly bits: number;
}

/**
 * `Table =`: wg-quick treats exactly `off` and `auto` (case-sensitive) specially; anything else
 * goes to `ip route add ... table VALUE`, where a number is a table id and a word a name from
 * rt_tables (so `Off` is a table NAME, as in wg-quick).
 */
export type WgQuickTable =
  | { readonly kind: 'off' }
  | { readonly kind: 'auto' }
  | { readonly kind: 'id'; readonly id: number }
  | { readonly kind: 'name'; readonly name: string };

/** `Endpoint = host:port`; `host` is an IP literal (IPv6 unbracketed, maybe with %zone) or a hostname, unresolved. */
export interface WgQuickEndpoint {
  host: string;
  port: number;
}

export interface WgQuickInterface {
  privateKey?: Uint8Array;
  listenPort?: number;
  fwmark?: number;
  /** Address lines in order (comma or space separated lists, repeatable). */
  addresses: InterfaceAddress[];
  /** DNS entries that wg-quick treats as servers (IPv4 / IPv6 literals), as written, in order. */
  dns: string[];
  /** DNS entries that wg-quick treats as search domains (anything else), in order. */
  dnsSearch: string[];
  mtu?: number;
  table?: WgQuickTable;
  /** Shell snippets, raw (wg-quick expands %i when running them), in file order. */
  preUp: string[];
  postUp: string[];
  preDown: string[];
  postDown: string[];
  saveConfig: boolean;
}

export interface WgQuickPeer {
  publicKey: Uint8Array;
  presharedKey?: Uint8Array;
  /** In order; host bits zeroed (as the kernel and wireguard-go store them). */
  allowedIps: Prefix[];
  endpoint?: WgQuickEndpoint;
  /** Seconds; 0 = off. Undefined when the file does not say. */
  persistentKeepalive?: number;
  /** Line of the `[Peer]` header, when parsed from a file (for error messages). */
  line?: number;
  /** Line of the `Endpoint =` key, when parsed from a file (a failed resolution names it). */
  endpointLine?: number;
}

export interface WgQuickConfig {
  interface: WgQuickInterface;
  peers: WgQuickPeer[];
  /** wireweave's `[Mesh]` section: peers without an Endpoint are found through these hubs. */
  mesh?: WgQuickMesh;
  /** The file name given to the parser, when parsed from a file (for error messages). */
  fileName?: string;
}

export interface ParseWgQuickOptions {
  /**
   * Receives warnings that wg prints but accepts, such as an allowed IP with a nonzero host
   * part (`file:line: ...`, never containing a key).
   */
  warn?: (message: string) => void;
}

/**
 * A configuration file the parser rejects, or an endpoint that cannot be resolved. The message
 * is one line, `file:line: problem`, and never contains a key.
 */
export class WgQuickConfigError extends ConfigError {
  declare readonly code: 'ERR_CONFIG';
  /** The file name as given to the parser. */
  readonly file: string;
  /** 1-based line number; 0 when the problem is not tied to one line. */
  readonly line: number;
  /** The message without the `file:line: ` prefix. */
  readonly problem: string;
  constructor(file: string, line: number, problem: string, options?: { cause?: unknown }) {
    super('ERR_CONFIG', `${file}:${line}: ${problem}`);
    this.name = 'WgQuickConfigError';
    this.file = file;
    this.line = line;
    this.problem = problem;
    if (options && 'cause' in options) this.cause = options.cause;
  }
}

// ---------------------------------------------------------------------------------------------
// IP addresses (core/ip-address.ts): for dotted-quad IPv4 and IPv6 without a zone, Go's netip
// and glibc's inet_pton (what wg reads with) accept the same texts.

/** An IPv4 or IPv6 literal, the family chosen by the presence of ':', as wg does. */
function parseIp(text: string): { family: 4 | 6; bytes: Uint8Array } | null {
  const bytes = tryParseIp(text);
  return bytes ? { family: bytes.length === 4 ? 4 : 6, bytes } : null;
}

function maskBytes(bytes: Uint8Array, bits: number): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - 8 * i));
    out[i] = out[i]! & ((0xff00 >> keep) & 0xff);
  }
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

// ---------------------------------------------------------------------------------------------
// Small value parsers

/** Whitespace as wg (char_is_space) and wg-quick ([[:space:]] in the C locale) see it. */
const SPACE = /[\t\n\v\f\r ]/g;
const SPACE_ONE = /[\t\n\v\f\r ]/;

function trimSpace(s: string): string {
  return s.replace(/^[\t\n\v\f\r ]+/, '').replace(/[\t\n\v\f\r ]+$/, '');
}

/**
 * Text that could be (part of) a base64 key is never echoed back: any run of 32 or more base64
 * characters, and runs of 12 or more that mix upper and lower case or contain '+' or '/' (a
 * random 12-character piece of a key almost always does; hostnames and numbers do not).
 */
function redact(text: string): string {
  const shown = text.length > 200 ? `${text.slice(0, 200)}...` : text;
  return shown.replace(/[A-Za-z0-9+/]{12,}={0,2}/g, (run) =>
    run.length >= 32 || /[+/]/.test(run) || (/[A-Z]/.test(run) && /[a-z]/.test(run)) ? '<redacted>' : run,
  );
}

function quote(text: string): string {
  return `\`${redact(text)}'`;
}

const DECIMAL = /^[0-9]+$/;

const HOSTNAME = /^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

/** A host in an Endpoint: IPv4 dotted quad, IPv6 (optionally %zone), or a hostname. */
function checkEndpointHost(host: string): string | null {
  if (host === '') return 'Endpoint has no host before the port';
  if (host.includes(':')) {
    const pct = host.indexOf('%');
    const addr = pct >= 0 ? host.slice(0, pct) : host;
    const zone = pct >= 0 ? host.slice(pct + 1) : null;
    if (!addr.includes(':') || !tryParseIp(addr) || (zone !== null && !/^[A-Za-z0-9_.-]+$/.test(zone))) {
      return `Endpoint host ${quote(host)} is not a valid IPv6 address`;
    }
    return null;
  }
  if (/^[0-9.]+$/.test(host)) {
    return tryParseIp(host) ? null : `Endpoint host ${quote(host)} is not a valid IPv4 address (expected a.b.c.d)`;
  }
  return HOSTNAME.test(host) ? null : `Endpoint host ${quote(host)} is not a valid IP address or hostname`;
}

/** wg's endpoint syntax: `host:port` split at the last ':', or `[host]:port`. */
function parseEndpoint(value: string): WgQuickEndpoint | string {
  let host: string;
  let port: string;
  if (value.startsWith('[')) {
    const close = value.indexOf(']');
    if (close < 0) return `Endpoint ${quote(value)} has no matching ']'`;
    host = value.slice(1, close);
    if (value[close + 1] !== ':' || close + 2 >= value.length) return `Endpoint ${quote(value)} has no port (expected [address]:port)`;
    port = value.slice(close + 2);
  } else {
    const colon = value.lastIndexOf(':');
    if (colon < 0 || colon === value.length - 1) return `Endpoint ${quote(value)} has no port (expected host:port)`;
    host = value.slice(0, colon);
    port = value.slice(colon + 1);
  }
  const hostProblem = checkEndpointHost(host);
  if (hostProblem) return hostProblem;
  if (!DECIMAL.test(port) || Number(port) < 1 || Number(port) > 65535) {
    return `Endpoint port ${quote(port)} is not a number from 1 to 65535`;
  }
  return { host, port: Number(port) };
}

function parseKeyValue(name: string, value: string): Uint8Array | string {
  try {
    return parseKeyBase64(value);
  } catch (e) {
    // KeyFormatError messages never contain the text.
    const why = e instanceof KeyFormatError ? ` (${e.message})` : '';
    return `${name} is not a valid base64 WireGuard key${why}`;
  }
}

// ---------------------------------------------------------------------------------------------
// The parser

const WG_QUICK_KEYS = ['Address', 'DNS', 'MTU', 'Table', 'PreUp', 'PostUp', 'PreDown', 'PostDown', 'SaveConfig'] as const;
const INTERFACE_KEYS = ['PrivateKey', 'ListenPort', 'FwMark'] as const;
const PEER_KEYS = ['PublicKey', 'PresharedKey', 'AllowedIPs', 'Endpoint', 'PersistentKeepalive'] as const;
type WgQuickKey = (typeof WG_QUICK_KEYS)[number];
type InterfaceKey = (typeof INTERFACE_KEYS)[number];
type PeerKey = (typeof PEER_KEYS)[number];
type AnyKey = WgQuickKey | InterfaceKey | PeerKey;

const KEY_BY_LOWER = new Map<string, AnyKey>(
  [...WG_QUICK_KEYS, ...INTERFACE_KEYS, ...PEER_KEYS].map((k) => [k.toLowerCase(), k]),
);
const isWgQuickKey = (k: AnyKey): k is WgQuickKey => (WG_QUICK_KEYS as readonly string[]).includes(k);
const isInterfaceKey = (k: AnyKey): k is InterfaceKey => (INTERFACE_KEYS as readonly string[]).includes(k);

const REPEATABLE: ReadonlySet<AnyKey> = new Set<AnyKey>(['Address', 'DNS', 'PreUp', 'PostUp', 'PreDown', 'PostDown', 'AllowedIPs']);

interface PeerDraft {
  line: number;
  peer: Partial<WgQuickPeer> & { allowedIps: Prefix[] };
  seen: Map<AnyKey, number>;
}

function emptyInterface(): WgQuickInterface {
  return { addresses: [], dns: [], dnsSearch: [], preUp: [], postUp: [], preDown: [], postDown: [], saveConfig: false };
}

/**
 * Parses a wg-quick configuration file. `fileName` only names the file in error messages.
 * Throws `WgQuickConfigError` for the first problem found.
 */
export function parseWgQuickConfig(text: string, fileName: string, options: ParseWgQuickOptions = {}): WgQuickConfig {
  const iface = emptyInterface();
  const ifaceSeen = new Map<AnyKey, number>();
  const peers: PeerDraft[] = [];
  const peerByKey = new Map<string, number>();
  let section: 'none' | 'interface' | 'peer' | 'mesh' = 'none';
  let interfaceLine = 0;
  let mesh: WgQuickMesh | undefined;
  const meshSeen = new Map<MeshKey, number>();
  /** wg-quick's own notion: the last section header was exactly [Interface]. */
  let quickInterface = false;

  const fail: (line: number, problem: string) => never = (line, problem) => {
    throw new WgQuickConfigError(fileName, line, problem);
  };

  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const raw = lines[i]!;
    const hash = raw.indexOf('#');
    const stripped = hash >= 0 ? raw.slice(0, hash) : raw;
    const compact = stripped.replace(SPACE, '');
    if (compact === '') continue; // blank or comment-only: both tools skip it
    if (i === 0 && compact.startsWith('\uFEFF')) {
      fail(lineNo, 'the file starts with a byte order mark, which wg rejects; save it without one');
    }

    // --- wg-quick's view of the line
    const eq = stripped.indexOf('=');
    const qKey = trimSpace(eq >= 0 ? stripped.slice(0, eq) : stripped);
    const qValue = trimSpace(eq >= 0 ? stripped.slice(eq + 1) : stripped);
    if (qKey.startsWith('[')) quickInterface = qKey.toLowerCase() === '[interface]';
    if (quickInterface) {
      const k = KEY_BY_LOWER.get(qKey.toLowerCase());
      if (k !== undefined && isWgQuickKey(k)) {
        if (eq < 0) fail(lineNo, `${k} has no '=' and value`);
        const first = ifaceSeen.get(k);
        if (first !== undefined && !REPEATABLE.has(k)) fail(lineNo, `${k} is set twice (first on line ${first})`);
        ifaceSeen.set(k, lineNo);
        const problem = applyWgQuickKey(iface, k, qValue);
        if (problem) fail(lineNo, problem);
        continue;
      }
    }

    // --- wg's view of the line (all whitespace removed)
    const lower = compact.toLowerCase();
    if (lower === '[interface]') {
      if (interfaceLine) fail(lineNo, `second [Interface] section (the first is on line ${interfaceLine}); a file has one`);
      interfaceLine = lineNo;
      section = 'interface';
      continue;
    }
    if (lower === '[mesh]') {
      if (mesh) fail(lineNo, `second [Mesh] section (the first is on line ${mesh.line}); a file has one`);
      mesh = { hubs: [], relay: 'auto', line: lineNo };
      section = 'mesh';
      continue;
    }
    if (section === 'mesh' && !compact.startsWith('[')) {
      // wireweave's own section: keys and values trimmed as wg-quick reads its own keys.
      const mk = meshKey(qKey);
      if (!mk) {
        fail(lineNo, /^[A-Za-z][A-Za-z0-9 _-]{0,31}$/.test(qKey) && redact(qKey) === qKey
          ? `unknown key ${quote(qKey)} in [Mesh]: expected ${MESH_KEY_NAMES}`
          : `unrecognized line in [Mesh]: expected Key = Value with Key one of ${MESH_KEY_NAMES}`);
      }
      if (eq < 0 || qValue === '') fail(lineNo, `${mk} has no value`);
      const first = meshSeen.get(mk);
      if (first !== undefined && mk !== 'Hub') fail(lineNo, `${mk} is set twice (first on line ${first})`);
      meshSeen.set(mk, lineNo);
      const problem = applyMeshKey(mesh!, mk, qValue);
      if (problem) fail(lineNo, problem);
      continue;
    }
    if (lower === '[peer]') {
      peers.push({ line: lineNo, peer: { allowedIps: [], line: lineNo }, seen: new Map() });
      section = 'peer';
      continue;
    }
    if (compact.startsWith('[')) {
      fail(lineNo, compact.endsWith(']') && compact.length <= 40
        ? `unknown section ${quote(compact)}: expected [Interface], [Peer] or [Mesh]`
        : 'unrecognized line: expected a section header [Interface] or [Peer]');
    }
    const ceq = compact.indexOf('=');
    const name = ceq >= 0 ? compact.slice(0, ceq) : compact;
    const value = ceq >= 0 ? compact.slice(ceq + 1) : '';
    const key = KEY_BY_LOWER.get(name.toLowerCase());
    if (key === undefined) {
      const shownKey = ceq >= 0 ? trimSpace(stripped.slice(0, stripped.indexOf('='))) : '';
      const where = section === 'none' ? ' before any section' : section === 'interface' ? ' in [Interface]' : ' in [Peer]';
      if (ceq < 0) fail(lineNo, `unrecognized line${where}: expected Key = Value`);
      fail(lineNo, /^[A-Za-z][A-Za-z0-9 _-]{0,31}$/.test(shownKey) && redact(shownKey) === shownKey
        ? `unknown key ${quote(shownKey)}${where}`
        : `unrecognized key${where}`);
    }
    const k = key as AnyKey;
    if (section === 'none') fail(lineNo, `${k} appears before any [Interface] or [Peer] section`);
    if (isWgQuickKey(k)) {
      if (section === 'peer') fail(lineNo, `${k} is a wg-quick [Interface] setting; it is not allowed in a [Peer] section`);
      fail(lineNo, SPACE_ONE.test(qKey)
        ? `${k} must be written without spaces inside the key for wg-quick to recognize it`
        : `${k} is not recognized here: wg-quick only sees it under a header written exactly [Interface]`);
    }
    if (section === 'interface' && !isInterfaceKey(k)) fail(lineNo, `${k} belongs in a [Peer] section, not in [Interface]`);
    if (section === 'peer' && isInterfaceKey(k)) fail(lineNo, `${k} belongs in the [Interface] section, not in [Peer]`);
    if (ceq < 0) fail(lineNo, `${k} has no '=' and value`);
    if (value === '') fail(lineNo, `${k} has no value`);

    const seen = section === 'interface' ? ifaceSeen : peers[peers.length - 1]!.seen;
    const first = seen.get(k);
    if (first !== undefined && !REPEATABLE.has(k)) fail(lineNo, `${k} is set twice (first on line ${first})`);
    seen.set(k, lineNo);

    if (section === 'interface') {
      const problem = applyInterfaceKey(iface, k as InterfaceKey, value);
      if (problem) fail(lineNo, problem);
    } else {
      const draft = peers[peers.length - 1]!;
      const problem = applyPeerKey(draft.peer, k as PeerKey, value, lineNo, fileName, options);
      if (problem) fail(lineNo, problem);
      if (k === 'PublicKey') {
        const id = encodeBase64(draft.peer.publicKey!);
        const other = peerByKey.get(id);
        if (other !== undefined) fail(lineNo, `this PublicKey is already the key of the peer on line ${other}`);
        peerByKey.set(id, draft.line);
      }
    }
  }

  const out: WgQuickPeer[] = [];
  for (const d of peers) {
    if (!d.peer.publicKey) fail(d.line, '[Peer] section has no PublicKey');
    out.push(d.peer as WgQuickPeer);
  }
  const meshProblem = mesh ? checkMeshSection(mesh) : null;
  if (meshProblem) fail(mesh!.line!, meshProblem);
  return mesh ? { interface: iface, peers: out, mesh, fileName } : { interface: iface, peers: out, fileName };
}

function applyWgQuickKey(iface: WgQuickInterface, key: WgQuickKey, value: string): string | null {
  switch (key) {
    case 'Address': {
      // wg-quick: ADDRESSES+=( ${value//,/ } ) - commas and spaces separate, empty items vanish.
      for (const item of value.split(/[\t\n\v\f\r ,]+/)) {
        if (item === '') continue;
        const slash = item.indexOf('/');
        const ipText = slash >= 0 ? item.slice(0, slash) : item;
        const ip = parseIp(ipText);
        if (!ip) return `Address ${quote(item)} is not an IPv4 or IPv6 address (with an optional /prefix length)`;
        const max = ip.family === 4 ? 32 : 128;
        let bits = max;
        if (slash >= 0) {
          const b = item.slice(slash + 1);
          if (!DECIMAL.test(b) || Number(b) > max) return `Address ${quote(item)} has a prefix length that is not 0-${max}`;
          bits = Number(b);
        }
        iface.addresses.push({ family: ip.family, bytes: ip.bytes, bits });
      }
      return null;
    }
    case 'DNS': {
      // wg-quick: entries matching ^[0-9.]+$ or containing ':' are servers; the rest search domains.
      for (const item of value.split(/[\t\n\v\f\r ,]+/)) {
        if (item === '') continue;
        if (/^[0-9.]+$/.test(item) || item.includes(':')) {
          if (!parseIp(item)) return `DNS server ${quote(item)} is not a valid IPv4 or IPv6 address`;
          iface.dns.push(item);
        } else {
          iface.dnsSearch.push(item);
        }
      }
      return null;
    }
    case 'MTU': {
      if (value === '') return 'MTU has no value';
      if (!DECIMAL.test(value) || Number(value) < 68 || Number(value) > 65535) return `MTU ${quote(value)} is not a number from 68 to 65535`;
      iface.mtu = Number(value);
      return null;
    }
    case 'Table': {
      if (value === '') return 'Table has no value';
      if (value === 'off' || value === 'auto') iface.table = { kind: value };
      else if (DECIMAL.test(value)) {
        if (Number(value) > 0xffffffff) return `Table ${quote(value)} is not a table id from 0 to 4294967295`;
        iface.table = { kind: 'id', id: Number(value) };
      } else if (SPACE_ONE.test(value)) return `Table ${quote(value)} is not off, auto, a number or a single-word table name`;
      else iface.table = { kind: 'name', name: value };
      return null;
    }
    case 'PreUp':
      iface.preUp.push(value);
      return null;
    case 'PostUp':
      iface.postUp.push(value);
      return null;
    case 'PreDown':
      iface.preDown.push(value);
      return null;
    case 'PostDown':
      iface.postDown.push(value);
      return null;
    case 'SaveConfig': {
      // read_bool runs under `shopt -s nocasematch`, so True and FALSE are accepted.
      const v = value.toLowerCase();
      if (v !== 'true' && v !== 'false') return `SaveConfig ${quote(value)} is neither true nor false`;
      iface.saveConfig = v === 'true';
      return null;
    }
  }
}

function applyInterfaceKey(iface: WgQuickInterface, key: InterfaceKey, value: string): string | null {
  switch (key) {
    case 'PrivateKey': {
      const k = parseKeyValue('PrivateKey', value);
      if (typeof k === 'string') return k;
      iface.privateKey = k;
      return null;
    }
    case 'ListenPort':
      if (!DECIMAL.test(value) || Number(value) > 65535) return `ListenPort ${quote(value)} is not a port number from 0 to 65535`;
      iface.listenPort = Number(value);
      return null;
    case 'FwMark': {
      // wg: "off" (any case), decimal, or hex after a lowercase "0x"; at most 0xffffffff.
      let mark: number;
      if (value.toLowerCase() === 'off') mark = 0;
      else if (/^0x[0-9A-Fa-f]+$/.test(value)) mark = parseInt(value.slice(2), 16);
      else if (DECIMAL.test(value)) mark = Number(value);
      else mark = NaN;
      if (!(mark <= 0xffffffff)) return `FwMark ${quote(value)} is neither 0/off nor 0-0xffffffff`;
      iface.fwmark = mark;
      return null;
    }
  }
}

function applyPeerKey(
  peer: PeerDraft['peer'],
  key: PeerKey,
  value: string,
  lineNo: number,
  fileName: string,
  options: ParseWgQuickOptions,
): string | null {
  switch (key) {
    case 'PublicKey':
    case 'PresharedKey': {
      const k = parseKeyValue(key, value);
      if (typeof k === 'string') return k;
      if (key === 'PublicKey') peer.publicKey = k;
      else peer.presharedKey = k;
      return null;
    }
    case 'AllowedIPs': {
      // wg: split at every ',' (an empty item is an error), ip[/cidr], cidr digits only.
      for (const item of value.split(',')) {
        if (item === '') return `AllowedIPs has an empty entry (stray ',')`;
        const slash = item.indexOf('/');
        const ipText = slash >= 0 ? item.slice(0, slash) : item;
        const ip = parseIp(ipText);
        if (!ip) return `AllowedIPs entry ${quote(item)} is not an IPv4 or IPv6 address`;
        const max = ip.family === 4 ? 32 : 128;
        let bits = max;
        if (slash >= 0) {
          const b = item.slice(slash + 1);
          if (!DECIMAL.test(b) || Number(b) > max) return `AllowedIPs entry ${quote(item)} has a prefix length that is not 0-${max}`;
          bits = Number(b);
        }
        const bytes = maskBytes(ip.bytes, bits);
        if (!sameBytes(bytes, ip.bytes)) {
          options.warn?.(
            `${fileName}:${lineNo}: AllowedIPs entry ${quote(item)} has a nonzero host part; using ${formatPrefix({ family: ip.family, bytes, bits })}`,
          );
        }
        peer.allowedIps.push({ family: ip.family, bytes, bits });
      }
      return null;
    }
    case 'Endpoint': {
      const e = parseEndpoint(value);
      if (typeof e === 'string') return e;
      peer.endpoint = e;
      peer.endpointLine = lineNo;
      return null;
    }
    case 'PersistentKeepalive': {
      let v: number;
      if (value.toLowerCase() === 'off') v = 0;
      else if (DECIMAL.test(value)) v = Number(value);
      else v = NaN;
      if (!(v <= 65535)) return `PersistentKeepalive ${quote(value)} is neither 0/off nor 1-65535`;
      peer.persistentKeepalive = v;
      return null;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// To a SetRequest (`wg setconf`)

export interface ToSetRequestOptions {
  /** Resolves an Endpoint hostname to an IP address. Default: node:dns lookup (getaddrinfo, first answer). */
  resolve?: (host: string) => Promise<string>;
}

async function defaultResolve(host: string): Promise<string> {
  const { address } = await lookup(host);
  return address;
}

/**
 * What `wg setconf` sends for the wg part of the file: replace_peers, the private key, listen
 * port and fwmark always (cleared / 0 when the file has none), and per peer replace_allowed_ips
 * plus exactly the keys the file gives. Hostname endpoints are resolved (concurrently) with
 * `resolve`; IP literals are used as written.
 */
export async function toSetRequest(cfg: WgQuickConfig, options: ToSetRequestOptions = {}): Promise<SetRequest> {
  const resolve = options.resolve ?? defaultResolve;
  const file = cfg.fileName ?? '<config>';
  const peers = await Promise.all(
    cfg.peers.map(async (p): Promise<PeerChange> => {
      const change: PeerChange = {
        publicKey: p.publicKey,
        remove: false,
        updateOnly: false,
        replaceAllowedIps: true,
        allowedIps: p.allowedIps.map((prefix) => ({ op: 'add' as const, prefix })),
      };
      if (p.presharedKey) change.presharedKey = p.presharedKey;
      if (p.persistentKeepalive !== undefined) change.persistentKeepalive = p.persistentKeepalive;
      if (p.endpoint) change.endpoint = await resolveEndpoint(p.endpoint, resolve, file, p.endpointLine ?? p.line ?? 0);
      return change;
    }),
  );
  return {
    privateKey: cfg.interface.privateKey ?? null,
    listenPort: cfg.interface.listenPort ?? 0,
    fwmark: cfg.interface.fwmark ?? 0,
    replacePeers: true,
    peers,
  };
}

/** Why a name lookup failed, in words (node:dns codes are getaddrinfo's EAI_* errors). */
function resolveFailure(err: unknown): string {
  switch ((err as { code?: unknown } | null)?.code) {
    case 'ENOTFOUND': return 'no such host (the name does not exist or has no address)';
    case 'EAI_AGAIN': return 'temporary failure in name resolution (no answer from the DNS servers)';
    case 'ENODATA': return 'the name has no address';
    case 'EAI_FAIL': return 'the DNS servers failed to answer';
    default: return err instanceof Error ? redact(err.message) : 'lookup failed';
  }
}

function isIpLiteral(host: string): boolean {
  const pct = host.indexOf('%');
  return parseIp(pct >= 0 && host.includes(':') ? host.slice(0, pct) : host) !== null;
}

async function resolveEndpoint(
  e: WgQuickEndpoint,
  resolve: (host: string) => Promise<string>,
  file: string,
  line: number,
): Promise<EndpointAddress> {
  if (isIpLiteral(e.host)) return { address: e.host, port: e.port };
  let address: string;
  try {
    address = await resolve(e.host);
  } catch (err) {
    throw new WgQuickConfigError(file, line, `cannot resolve Endpoint host ${quote(e.host)}: ${resolveFailure(err)}`, { cause: err });
  }
  if (!isIpLiteral(address)) {
    throw new WgQuickConfigError(file, line, `resolving Endpoint host ${quote(e.host)} gave ${quote(String(address))}, not an IP address`);
  }
  return { address, port: e.port };
}

// ---------------------------------------------------------------------------------------------
// Formatting

/** An interface address as `ip/bits`, host part kept. */
function formatAddress(a: InterfaceAddress): string {
  return `${formatIp(a.bytes)}/${a.bits}`;
}

function formatEndpoint(e: WgQuickEndpoint): string {
  return e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}

/** Throws unless `value` reads back unchanged from a wg-quick line (a list item when `inList`). */
function checkRepresentable(what: string, value: string, inList: boolean): void {
  const bad = inList
    ? value === '' || /[#\t\n\v\f\r ,]/.test(value)
    : /[#\n\r]/.test(value) || value !== trimSpace(value);
  if (bad) {
    throw new RangeError(
      inList
        ? `${what} cannot be written to a wg-quick file: it is empty or contains '#', whitespace or a comma`
        : `${what} cannot be written to a wg-quick file: it contains '#' or a line break, or starts or ends with whitespace`,
    );
  }
}

/**
 * Writes a configuration in the layout wg-quick's SaveConfig produces: [Interface] with the
 * wg-quick keys first (one Address and DNS entry per line), then ListenPort, FwMark and
 * PrivateKey as `wg showconf` prints them (FwMark in hex); then each [Peer], separated by blank
 * lines. `parseWgQuickConfig` reads the result back to an equal configuration. Throws
 * RangeError for values the format cannot hold: a command with '#', a line break or
 * surrounding whitespace (wg-quick cuts and trims them), a DNS search domain or Table name
 * that would read back as something else.
 */
export function formatWgQuickConfig(cfg: WgQuickConfig): string {
  const i = cfg.interface;
  const out: string[] = ['[Interface]'];
  for (const a of i.addresses) out.push(`Address = ${formatAddress(a)}`);
  for (const d of i.dns) {
    checkRepresentable('DNS server', d, true);
    if (!parseIp(d)) throw new RangeError('DNS server is not an IP address');
    out.push(`DNS = ${d}`);
  }
  for (const d of i.dnsSearch) {
    checkRepresentable('DNS search domain', d, true);
    if (/^[0-9.]+$/.test(d) || d.includes(':')) throw new RangeError('DNS search domain would be read back as a server address');
    out.push(`DNS = ${d}`);
  }
  if (i.mtu !== undefined) out.push(`MTU = ${i.mtu}`);
  if (i.table) {
    const t = i.table;
    const text = t.kind === 'id' ? String(t.id) : t.kind === 'name' ? t.name : t.kind;
    if (t.kind === 'name') {
      checkRepresentable('Table name', text, true);
      if (text === 'off' || text === 'auto' || DECIMAL.test(text)) throw new RangeError('Table name would be read back as off, auto or an id');
    }
    out.push(`Table = ${text}`);
  }
  if (i.saveConfig) out.push('SaveConfig = true');
  for (const [key, list] of [['PreUp', i.preUp], ['PostUp', i.postUp], ['PreDown', i.preDown], ['PostDown', i.postDown]] as const) {
    for (const cmd of list) {
      checkRepresentable(key, cmd, false);
      out.push(`${key} = ${cmd}`);
    }
  }
  if (i.listenPort !== undefined) out.push(`ListenPort = ${i.listenPort}`);
  if (i.fwmark !== undefined) out.push(`FwMark = 0x${i.fwmark.toString(16)}`);
  if (i.privateKey) out.push(`PrivateKey = ${encodeBase64(i.privateKey)}`);
  if (cfg.mesh) out.push('', ...formatMeshSection(cfg.mesh));
  for (const p of cfg.peers) {
    out.push('', '[Peer]', `PublicKey = ${encodeBase64(p.publicKey)}`);
    if (p.presharedKey) out.push(`PresharedKey = ${encodeBase64(p.presharedKey)}`);
    if (p.allowedIps.length > 0) out.push(`AllowedIPs = ${p.allowedIps.map(formatPrefix).join(', ')}`);
    if (p.endpoint) out.push(`Endpoint = ${formatEndpoint(p.endpoint)}`);
    if (p.persistentKeepalive !== undefined) out.push(`PersistentKeepalive = ${p.persistentKeepalive === 0 ? 'off' : p.persistentKeepalive}`);
  }
  return out.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------
// Files

/**
 * The interface name wg-quick derives from a configuration file path (`.../NAME.conf` with
 * NAME matching [a-zA-Z0-9_=+.-]{1,15}), or null when wg-quick would refuse the file name.
 */
export function wgQuickInterfaceName(path: string): string | null {
  const m = /(?:^|\/)([a-zA-Z0-9_=+.-]{1,15})\.conf$/.exec(path);
  return m ? m[1]! : null;
}

/**
 * wg-quick's permission warning: the file (symlinks resolved) and its directory share a
 * permission bit for "others" (`(file & dir & 0007) != 0`). Returns the text wg-quick prints to
 * stderr, `` Warning: `/real/path' is world accessible ``, or null. Throws if the file cannot be
 * stat'ed.
 */
export function checkConfigFilePermissions(path: string): string | null {
  const real = realpathSync(path);
  const fileMode = statSync(real).mode;
  const dirMode = statSync(dirname(real)).mode;
  return (fileMode & dirMode & 0o007) !== 0 ? `Warning: \`${real}' is world accessible` : null;
}
