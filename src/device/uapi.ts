/**
 * The cross-platform userspace configuration protocol (UAPI) that `wg` speaks to wireguard-go
 * over /var/run/wireguard/IFNAME.sock: pure text handling plus a per-connection driver.
 *
 *   get=1\n\n            → key=value lines … errno=0\n\n
 *   set=1\n key=value … \n → errno=N\n\n   (N is 0 or a negated errno, e.g. -22 for EINVAL)
 *
 * Values are accepted and rejected exactly as wireguard-go's device/uapi.go does, with the
 * same errno (EPROTO for a line without '=', EINVAL for everything else it refuses, including
 * unknown keys and peer keys before the first public_key). Addresses follow Go's net/netip
 * (ParseAddrPort for endpoint, ParsePrefix for allowed_ip) and are printed as Go prints them.
 *
 * One deliberate difference: wireguard-go applies a set request line by line, so a bad line
 * leaves the lines before it applied. Here the whole request is parsed and validated first
 * (`SetRequestParser`) and handed to `UapiTarget.applySet` only when all of it is valid. The
 * device then does the steps that can still fail (binding a new port, SO_MARK without
 * CAP_NET_ADMIN) first and undoes the port if the fwmark fails, so an error changes nothing.
 */
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { clampPrivateKey, decodeHex, encodeHex, KEY_HEX_LENGTH, parseKeyHex } from '../core/keys.ts';
import type { DeviceState, EndpointAddress, PeerChange, Prefix, SetRequest, UapiTarget } from './config.ts';
import { Errno, UapiError } from './config.ts';
import { isAllZero } from '../core/bytes.ts';
import { formatPrefix, parsePrefix } from './allowedips.ts';
import { encodeGetResponse } from './uapi-get.ts';
import { formatIp, parseIp, PrefixError } from './../core/ip-address.ts';
import type { Clock } from './clock.ts';
import { systemClock } from './clock.ts';
import { WireweaveError } from '../core/errors.ts';

/** wireguard-go's IpcErrorUnknown: the errno sent when applying fails without a UapiError. */
export const ERRNO_UNKNOWN = 55; // ENOANO
/** Sent when a request is larger than `maxRequestBytes` (wireguard-go has no such limit). */
export const ERRNO_REQUEST_TOO_LARGE = 90; // EMSGSIZE

// ---------------------------------------------------------------------------------------------
// Addresses, as Go's net/netip parses and prints them

class AddrSyntaxError extends WireweaveError {
  constructor(message: string) {
    super('ERR_ADDRESS', message);
  }
}

function fail(msg: string): never {
  throw new AddrSyntaxError(msg);
}

/** Go's strconv.ParseUint(s, 10, bits) with max = 2^bits - 1: decimal digits only. */
function parseUintDec(s: string, max: number): number | null {
  if (!/^[0-9]+$/.test(s)) return null;
  const n = Number(s);
  return n <= max ? n : null;
}

/** Go's netip.ParseAddr, zones included: 4 or 16 bytes and the zone ('' if none). */
function parseAddr(text: string): { bytes: Uint8Array; zone: string } {
  const pct = text.indexOf('%');
  let zone = '';
  let addr = text;
  if (pct >= 0) {
    // Go splits the zone off IPv6 text only; '%' in anything else is an error.
    addr = text.slice(0, pct);
    zone = text.slice(pct + 1);
    if (!addr.includes(':')) fail('missing IPv6 address before the zone');
    if (zone === '') fail('zone must be a non-empty string');
  }
  try {
    return { bytes: parseIp(addr), zone };
  } catch (err) {
    if (err instanceof PrefixError) fail(err.message);
    throw err;
  }
}

/**
 * An endpoint as wireguard-go's bind accepts it (netip.ParseAddrPort): `1.2.3.4:51820`,
 * `[fd00::1]:51820`, `[fe80::1%eth0]:51820`; literal addresses only, port 0..65535. The address
 * comes back in Go's canonical text (RFC 5952, zone kept, IPv4-mapped as ::ffff:a.b.c.d).
 * Throws UapiError(EINVAL).
 */
export function parseEndpoint(text: string): EndpointAddress {
  try {
    const colon = text.lastIndexOf(':');
    if (colon < 0) fail('not an ip:port');
    let host = text.slice(0, colon);
    const portText = text.slice(colon + 1);
    if (host === '') fail('no IP');
    if (portText === '') fail('no port');
    let bracketed = false;
    if (host.charCodeAt(0) === 91 /* [ */) {
      if (host.length < 2 || host.charCodeAt(host.length - 1) !== 93 /* ] */) fail('missing ]');
      host = host.slice(1, -1);
      bracketed = true;
    }
    const port = parseUintDec(portText, 0xffff);
    if (port === null) fail('invalid port');
    const { bytes, zone } = parseAddr(host);
    if (bracketed && bytes.length === 4) fail('square brackets can only be used with IPv6 addresses');
    if (!bracketed && bytes.length === 16) fail('IPv6 addresses must be surrounded by square brackets');
    return { address: zone === '' ? formatIp(bytes) : `${formatIp(bytes)}%${zone}`, port };
  } catch (err) {
    if (err instanceof AddrSyntaxError) throw new UapiError(Errno.EINVAL, `invalid endpoint: ${err.message}`);
    throw err;
  }
}

/**
 * An `allowed_ip` value as Go's netip.ParsePrefix accepts it: an address without zone, '/', a
 * decimal length without sign or leading zeros, in range for the family (unlike
 * allowedips.ts's parsePrefix, a bare address is refused, as wireguard-go does). Host bits are
 * zeroed (wireguard-go's trie masks them on insert). Throws UapiError(EINVAL).
 */
export function parseUapiPrefix(text: string): Prefix {
  if (!text.includes('/')) throw new UapiError(Errno.EINVAL, "invalid allowed_ip: no '/'");
  try {
    return parsePrefix(text);
  } catch (err) {
    if (err instanceof PrefixError) throw new UapiError(Errno.EINVAL, `invalid allowed_ip: ${err.message}`);
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// set=1

function shortText(s: string): string {
  return JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);
}


/**
 * Parses the lines of one `set=1` request incrementally (each line without its '\n'; one
 * trailing '\r' is dropped, as Go's bufio.ScanLines does). `line` throws a UapiError at the
 * first bad line; `finish` returns the validated request. Nothing is applied here.
 */
class SetRequestParser {
  private readonly request: SetRequest = { replacePeers: false, peers: [] };
  private peer: PeerChange | null = null;
  /** After remove=true the peer section is a placeholder: lines are checked, not recorded. */
  private ignoring = false;
  private lineNo = 0;

  line(raw: string): void {
    this.lineNo++;
    const text = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const eq = text.indexOf('=');
    if (eq < 0) throw new UapiError(Errno.EPROTO, `line ${this.lineNo}: expected key=value`);
    const key = text.slice(0, eq);
    const value = text.slice(eq + 1);
    if (key === 'public_key') {
      this.peer = {
        publicKey: this.key(value, key),
        remove: false,
        updateOnly: false,
        replaceAllowedIps: false,
        allowedIps: [],
      };
      this.ignoring = false;
      this.request.peers.push(this.peer);
    } else if (this.peer === null) {
      this.deviceLine(key, value);
    } else {
      this.peerLine(this.peer, key, value);
    }
  }

  finish(): SetRequest {
    return this.request;
  }

  private invalid(what: string): never {
    throw new UapiError(Errno.EINVAL, `line ${this.lineNo}: ${what}`);
  }

  private key(value: string, name: string): Uint8Array {
    if (value.length !== KEY_HEX_LENGTH) this.invalid(`${name} is not ${KEY_HEX_LENGTH} hex digits`);
    try {
      return parseKeyHex(value);
    } catch {
      return this.invalid(`${name} is not ${KEY_HEX_LENGTH} hex digits`);
    }
  }

  private flag(value: string, name: string): void {
    if (value !== 'true') this.invalid(`${name} must be "true"`);
  }

  private deviceLine(key: string, value: string): void {
    const req = this.request;
    switch (key) {
      case 'private_key': {
        const k = this.key(value, key);
        req.privateKey = isAllZero(k) ? null : clampPrivateKey(k);
        break;
      }
      case 'listen_port': {
        const port = parseUintDec(value, 0xffff);
        if (port === null) this.invalid('listen_port is not a number in 0..65535');
        req.listenPort = port;
        break;
      }
      case 'fwmark': {
        const mark = parseUintDec(value, 0xffffffff);
        if (mark === null) this.invalid('fwmark is not a number in 0..4294967295');
        req.fwmark = mark;
        break;
      }
      case 'replace_peers':
        this.flag(value, key);
        req.replacePeers = true;
        break;
      default:
        this.invalid(`invalid UAPI device key ${shortText(key)}`);
    }
  }

  private peerLine(peer: PeerChange, key: string, value: string): void {
    const record = !this.ignoring;
    switch (key) {
      case 'update_only':
        this.flag(value, key);
        if (record) peer.updateOnly = true;
        break;
      case 'remove':
        this.flag(value, key);
        if (record) peer.remove = true;
        this.ignoring = true;
        break;
      case 'preshared_key': {
        const k = this.key(value, key);
        if (record) peer.presharedKey = isAllZero(k) ? null : k;
        break;
      }
      case 'endpoint': {
        let ep: EndpointAddress;
        try {
          ep = parseEndpoint(value);
        } catch (err) {
          return this.invalid(err instanceof Error ? err.message : 'invalid endpoint');
        }
        if (record) peer.endpoint = ep;
        break;
      }
      case 'persistent_keepalive_interval': {
        const secs = parseUintDec(value, 0xffff);
        if (secs === null) this.invalid('persistent_keepalive_interval is not a number in 0..65535');
        if (record) peer.persistentKeepalive = secs;
        break;
      }
      case 'replace_allowed_ips':
        this.flag(value, key);
        if (record) {
          // A replace drops whatever this section added before it, as RemoveByPeer does.
          peer.replaceAllowedIps = true;
          peer.allowedIps.length = 0;
        }
        break;
      case 'allowed_ip': {
        const remove = value.startsWith('-');
        let prefix: Prefix;
        try {
          prefix = parseUapiPrefix(remove ? value.slice(1) : value);
        } catch (err) {
          return this.invalid(err instanceof Error ? err.message : 'invalid allowed_ip');
        }
        if (record) peer.allowedIps.push({ op: remove ? 'remove' : 'add', prefix });
        break;
      }
      case 'protocol_version':
        if (value !== '1') this.invalid('protocol_version must be 1');
        break;
      default:
        this.invalid(`invalid UAPI peer key ${shortText(key)}`);
    }
  }
}

/**
 * Parses the body of a `set=1` request: the lines after `set=1`, optionally ending with the
 * blank line that terminates it. Throws UapiError (EPROTO: a line without '=' or a line after
 * the blank one; EINVAL: any value or key wireguard-go refuses).
 *
 * Peers appear in request order and the same public key may appear more than once: apply them
 * in order. Semantics left to the device, as wireguard-go: a peer whose key is the device's own
 * public key is ignored; a new private key drops any peer with the matching public key; more
 * than 2^16 peers is EINVAL. `remove` wins over everything else in its section; a replace in
 * the section has already cleared the earlier `allowedIps` of that section.
 */
export function parseSetRequest(lines: readonly string[]): SetRequest {
  const parser = new SetRequestParser();
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '' || line === '\r') {
      if (lines.slice(i + 1).some((l) => l !== '')) {
        throw new UapiError(Errno.EPROTO, `line ${i + 1}: data after the blank line that ends the request`);
      }
      break;
    }
    parser.line(line);
  }
  return parser.finish();
}

// ---------------------------------------------------------------------------------------------
// get=1

/**
 * The answer to `get=1`, byte for byte as wireguard-go writes it, including the final
 * `errno=0\n\n`. As there: private_key only when set, listen_port only when not 0, fwmark only
 * when not 0; every peer has preshared_key (zeros when none) and protocol_version=1; endpoint
 * only when known. Peers and allowed IPs appear in the order the state lists them.
 *
 * A UAPI connection sends `encodeGetResponse`'s bytes instead (the same text written as latin1,
 * built without a string per line, and wiped once sent). This string form keeps an endpoint's
 * characters as they are, including any above U+00FF that a library caller put in a zone.
 */
export function formatGetResponse(state: DeviceState): string {
  const out: string[] = [];
  if (state.privateKey && !isAllZero(state.privateKey)) out.push(`private_key=${hex(state.privateKey)}`);
  if (state.listenPort !== 0) out.push(`listen_port=${uint(state.listenPort)}`);
  if (state.fwmark !== 0) out.push(`fwmark=${uint(state.fwmark)}`);
  for (const peer of state.peers) {
    out.push(`public_key=${hex(peer.publicKey)}`, `preshared_key=${hex(peer.presharedKey)}`, 'protocol_version=1');
    if (peer.endpoint) out.push(`endpoint=${peer.endpoint}`);
    out.push(
      `last_handshake_time_sec=${uint(peer.lastHandshakeTimeSec)}`, `last_handshake_time_nsec=${uint(peer.lastHandshakeTimeNsec)}`,
      `tx_bytes=${uint(peer.txBytes)}`, `rx_bytes=${uint(peer.rxBytes)}`, `persistent_keepalive_interval=${uint(peer.persistentKeepalive)}`,
    );
    for (const p of peer.allowedIps) out.push(`allowed_ip=${formatPrefix(p)}`);
  }
  out.push('errno=0', '', '');
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------
// A connection

export interface UapiConnectionOptions {
  /** Bytes one request may have, operation line included. Default 8 MiB (~10k peers). */
  maxRequestBytes?: number;
  /** Bytes one line may have; longer is EIO, as Go's bufio.Scanner limit. Default 65536. */
  maxLineBytes?: number;
  /** A started request must be complete within this time, or the connection is closed. Default 10 s. */
  requestTimeoutMs?: number;
  /** Timers for the request timeout (tests drive a twin); the system clock by default. */
  clock?: Pick<Clock, 'setTimer' | 'clearTimer'>;
  /** Diagnostics (never contains key material). */
  log?: (message: string) => void;
}

const UAPI_CONNECTION_DEFAULTS = {
  maxRequestBytes: 8 * 1024 * 1024,
  maxLineBytes: 65536,
  requestTimeoutMs: 10_000,
} as const;

/** Operations on one target run one at a time, across connections (wireguard-go's ipcMutex). */
const targetQueues = new WeakMap<object, Promise<unknown>>();

function serialized<T>(target: object, fn: () => T | Promise<T>): Promise<T> {
  const previous = targetQueues.get(target) ?? Promise.resolve();
  const run = previous.then(fn);
  targetQueues.set(target, run.catch(() => undefined));
  return run;
}

function errnoOf(err: unknown): number {
  if (err instanceof UapiError || (err instanceof Error && (err as { code?: unknown }).code === 'ERR_UAPI')) {
    const n = Math.abs(Number((err as { errno?: unknown }).errno));
    if (Number.isInteger(n) && n > 0) return n;
  }
  return ERRNO_UNKNOWN;
}

function status(errno: number): string {
  return errno === 0 ? 'errno=0\n\n' : `errno=${-errno}\n\n`;
}

const OP_GET = 'get=1';
const OP_SET = 'set=1';

type Mode = 'op' | 'get' | 'set' | 'skip';

class UapiConnection {
  private readonly stream: Duplex;
  private readonly target: UapiTarget;
  private readonly maxRequest: number;
  private readonly maxLine: number;
  private readonly timeoutMs: number;
  private readonly log: (message: string) => void;
  private readonly done: () => void;

  /** Received text (latin1: one char per byte) not yet consumed from `pos` on. */
  private pending = '';
  private pos = 0;
  /** Where to resume looking for '\n' (everything from `pos` before it has none). */
  private scanFrom = 0;
  private mode: Mode = 'op';
  private parser: SetRequestParser | null = null;
  private skipError: UapiError | null = null;
  private requestBytes = 0;
  private busy = false;
  private waitingDrain = false;
  private ended = false;
  private closing = false;
  private finished = false;
  private timer: unknown = null;
  private readonly clock: Pick<Clock, 'setTimer' | 'clearTimer'>;

  constructor(stream: Duplex, target: UapiTarget, opts: UapiConnectionOptions, done: () => void) {
    this.stream = stream;
    this.target = target;
    this.maxRequest = opts.maxRequestBytes ?? UAPI_CONNECTION_DEFAULTS.maxRequestBytes;
    this.maxLine = opts.maxLineBytes ?? UAPI_CONNECTION_DEFAULTS.maxLineBytes;
    this.timeoutMs = opts.requestTimeoutMs ?? UAPI_CONNECTION_DEFAULTS.requestTimeoutMs;
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? (() => {});
    this.done = done;
  }

  start(): void {
    const s = this.stream;
    s.on('data', (chunk: Buffer | string) => this.onData(chunk));
    s.on('end', () => this.onEnd());
    s.on('error', (err: Error) => this.onError(err));
    s.on('close', () => this.onClose());
    if (s.destroyed) this.onClose();
  }

  // -- input

  private onData(chunk: Buffer | string): void {
    if (this.closing) return;
    this.pending += typeof chunk === 'string' ? chunk : chunk.toString('latin1');
    this.pump();
  }

  private onEnd(): void {
    this.ended = true;
    this.pump();
  }

  private onError(err: Error): void {
    this.log(`uapi: connection error: ${err.message}`);
    this.closing = true;
    this.stream.destroy();
  }

  private onClose(): void {
    this.closing = true;
    this.clearTimer();
    if (!this.finished) {
      this.finished = true;
      this.done();
    }
  }

  /** Consumes as much buffered input as the current state allows. */
  private pump(): void {
    try {
      this.pumpInner();
    } catch (err) {
      // Not expected; never let it escape into the stream's event emitter.
      this.log(`uapi: internal error: ${err instanceof Error ? err.message : String(err)}`);
      this.closeWith(status(ERRNO_UNKNOWN));
    }
  }

  private pumpInner(): void {
    while (!this.closing && !this.busy && !this.waitingDrain) {
      if (this.mode === 'get') {
        if (this.pos >= this.pending.length) break;
        const c = this.pending.charCodeAt(this.pos++);
        this.requestBytes++;
        if (c === 10) {
          this.runGet();
        } else {
          // wireguard-go: "trailing character in UAPI get", EINVAL; the byte is consumed.
          this.endRequest();
          this.write(status(Errno.EINVAL));
        }
        continue;
      }
      if (this.mode === 'op') {
        const partial = this.pending.slice(this.pos, this.pos + 6);
        if (partial.length > 0 && !(OP_GET + '\n').startsWith(partial) && !(OP_SET + '\n').startsWith(partial)) {
          // wireguard-go logs "invalid UAPI operation" and closes without an answer.
          this.log('uapi: invalid operation; closing the connection');
          this.closeWith(status(Errno.EPROTO));
          break;
        }
      }
      const nl = this.pending.indexOf('\n', Math.max(this.pos, this.scanFrom));
      if (nl < 0) {
        this.scanFrom = this.pending.length;
        if (this.pending.length - this.pos > this.maxLine) {
          this.log('uapi: line too long; closing the connection');
          this.closeWith(status(Errno.EIO));
        }
        break;
      }
      const line = this.pending.slice(this.pos, nl);
      this.pos = nl + 1;
      this.scanFrom = this.pos;
      if (line.length > this.maxLine) {
        this.log('uapi: line too long; closing the connection');
        this.closeWith(status(Errno.EIO));
        break;
      }
      this.requestBytes += line.length + 1;
      if (this.requestBytes > this.maxRequest) {
        this.log(`uapi: request larger than ${this.maxRequest} bytes; closing the connection`);
        this.closeWith(status(ERRNO_REQUEST_TOO_LARGE));
        break;
      }
      this.onLine(line);
    }
    this.compact();
    if (this.closing) return;
    const idle = this.mode === 'op' && this.pos >= this.pending.length;
    if (idle || this.busy) this.clearTimer();
    else this.armTimer();
    if (this.ended && !this.busy && !this.waitingDrain) {
      if (idle) {
        this.closeWith(null);
      } else {
        // wireguard-go would apply a set request cut short by EOF; a truncated request is
        // refused here instead (nothing is applied).
        this.log('uapi: connection ended inside a request');
        this.closeWith(status(Errno.EPROTO));
      }
    }
  }

  private onLine(line: string): void {
    switch (this.mode) {
      case 'op':
        this.requestBytes = line.length + 1;
        if (line === OP_GET) {
          this.mode = 'get';
        } else if (line === OP_SET) {
          this.mode = 'set';
          this.parser = new SetRequestParser();
        } else {
          this.closeWith(status(Errno.EPROTO)); // unreachable: caught by the prefix check
        }
        return;
      case 'set':
        if (line === '' || line === '\r') {
          const request = this.parser!.finish();
          this.parser = null;
          this.runSet(request);
          return;
        }
        try {
          this.parser!.line(line);
        } catch (err) {
          // Keep reading up to the blank line, then answer; nothing of the request is applied.
          this.skipError = err instanceof UapiError ? err : new UapiError(ERRNO_UNKNOWN, String(err));
          this.log(`uapi: set rejected: ${this.skipError.message}`);
          this.parser = null;
          this.mode = 'skip';
        }
        return;
      case 'skip':
        if (line === '' || line === '\r') {
          const err = this.skipError!;
          this.skipError = null;
          this.endRequest();
          this.write(status(err.errno));
        }
        return;
      default:
        return;
    }
  }

  private endRequest(): void {
    this.mode = 'op';
    this.requestBytes = 0;
  }

  // -- operations

  private runGet(): void {
    this.endRequest();
    this.runExclusive(() => encodeGetResponse(this.target.streamState?.() ?? this.target.getState()));
  }

  private runSet(request: SetRequest): void {
    this.endRequest();
    this.runExclusive(async () => {
      await this.target.applySet(request);
      return status(0);
    });
  }

  private runExclusive(op: () => string | Uint8Array | Promise<string>): void {
    this.busy = true;
    this.updateFlow();
    serialized(this.target, op).then(
      (text) => this.write(text),
      (err: unknown) => {
        const errno = errnoOf(err);
        this.log(`uapi: operation failed (errno ${errno}): ${err instanceof Error ? err.message : String(err)}`);
        this.write(status(errno));
      },
    ).finally(() => {
      this.busy = false;
      this.updateFlow();
      this.pump();
    }).catch(() => undefined);
  }

  // -- output

  /** Sends a text, or a get answer's bytes, which are wiped once written (or dropped). */
  private write(out: string | Uint8Array): void {
    const s = this.stream;
    if (this.closing || s.destroyed || !s.writable) {
      if (typeof out !== 'string') out.fill(0);
      return;
    }
    let sent: boolean;
    if (typeof out === 'string') sent = s.write(out, 'latin1');
    else if (s instanceof Socket) sent = s.write(out, () => out.fill(0)); // called once the kernel has the bytes
    else {
      // Another Duplex (an in-memory twin) may hand the chunk itself to its reader later.
      sent = s.write(Buffer.from(out));
      out.fill(0);
    }
    if (!sent) {
      this.waitingDrain = true;
      this.updateFlow();
      s.once('drain', () => {
        this.waitingDrain = false;
        this.updateFlow();
        this.pump();
      });
    }
  }

  /** Sends `text` (if any), then closes the connection once it is flushed. */
  private closeWith(text: string | null): void {
    if (this.closing) return;
    if (text !== null) this.write(text);
    this.closing = true;
    this.clearTimer();
    this.pending = '';
    this.pos = 0;
    this.scanFrom = 0;
    const s = this.stream;
    if (s.destroyed) return;
    s.pause();
    if (!s.writable) {
      s.destroy();
      return;
    }
    s.once('finish', () => s.destroy());
    s.end();
    // A peer that never reads cannot keep the connection open forever.
    const t = setTimeout(() => s.destroy(), this.timeoutMs);
    t.unref();
    s.once('close', () => clearTimeout(t));
  }

  private updateFlow(): void {
    if (this.closing) return;
    if (this.busy || this.waitingDrain) this.stream.pause();
    else this.stream.resume();
  }

  private compact(): void {
    if (this.pos === 0) return;
    this.pending = this.pending.slice(this.pos);
    this.scanFrom = Math.max(0, this.scanFrom - this.pos);
    this.pos = 0;
  }

  private armTimer(): void {
    if (this.timer !== null) return;
    // systemClock's timers are unref'd: a pending request does not keep the process alive.
    this.timer = this.clock.setTimer(() => {
      this.timer = null;
      this.log(`uapi: request not completed within ${this.timeoutMs} ms; closing the connection`);
      this.closing = true;
      this.stream.destroy();
    }, this.timeoutMs);
  }

  private clearTimer(): void {
    if (this.timer !== null) {
      this.clock.clearTimer(this.timer);
      this.timer = null;
    }
  }
}

/**
 * Serves UAPI requests on one connection until it closes: `get=1\n\n` and `set=1\n…\n\n`,
 * any number, answered in order. The returned promise resolves when the connection has
 * closed; it never rejects, and nothing is thrown into the stream's events.
 *
 * As wireguard-go: an unknown operation line closes the connection (here after an
 * `errno=-71` answer), `get=1\n` followed by anything but '\n' is answered EINVAL, a line over
 * `maxLineBytes` is EIO and closes. Unlike it: a set request is applied only when complete
 * and valid (a request cut short by EOF is EPROTO), requests are bounded in size and time, and
 * pipelined requests are never lost. Reading pauses while an operation runs and while the
 * peer is not reading answers (backpressure). A stream that is not half-open (allowHalfOpen)
 * cannot be answered after the peer's EOF.
 */
export function handleUapiConnection(stream: Duplex, target: UapiTarget, opts: UapiConnectionOptions = {}): Promise<void> {
  return new Promise<void>((resolve) => {
    new UapiConnection(stream, target, opts, resolve).start();
  });
}

const ZERO_KEY = new Uint8Array(32);

function hex(key: Uint8Array | null): string {
  return encodeHex(key ?? ZERO_KEY);
}

function uint(n: number): string {
  return Number.isFinite(n) && n > 0 ? BigInt(Math.trunc(n)).toString() : '0';
}

/**
 * The body of a `set=1` request for `request` (what `wg setconf` / `wg set` send), without the
 * `set=1` line and the final blank line.
 */
export function formatSetRequest(request: SetRequest): string {
  const out: string[] = [];
  if (request.privateKey !== undefined) out.push(`private_key=${hex(request.privateKey)}`);
  if (request.listenPort !== undefined) out.push(`listen_port=${uint(request.listenPort)}`);
  if (request.fwmark !== undefined) out.push(`fwmark=${uint(request.fwmark)}`);
  if (request.replacePeers) out.push('replace_peers=true');
  for (const peer of request.peers) {
    out.push(`public_key=${hex(peer.publicKey)}`);
    if (peer.remove) { out.push('remove=true'); continue; }
    if (peer.updateOnly) out.push('update_only=true');
    if (peer.presharedKey !== undefined) out.push(`preshared_key=${hex(peer.presharedKey)}`);
    if (peer.endpoint) {
      const a = peer.endpoint.address;
      out.push(`endpoint=${a.includes(':') ? `[${a}]` : a}:${peer.endpoint.port}`);
    }
    if (peer.persistentKeepalive !== undefined) out.push(`persistent_keepalive_interval=${uint(peer.persistentKeepalive)}`);
    if (peer.replaceAllowedIps) out.push('replace_allowed_ips=true');
    for (const { op, prefix } of peer.allowedIps) out.push(`allowed_ip=${op === 'remove' ? '-' : ''}${formatPrefix(prefix)}`);
  }
  return out.map((l) => l + '\n').join('');
}

/** Parses a `get=1` answer (up to, not including, `errno=`) back into a DeviceState. */
export function parseGetResponse(text: string): DeviceState {
  const state: DeviceState = { privateKey: null, listenPort: 0, fwmark: 0, peers: [] };
  let peer: DeviceState['peers'][number] | null = null;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const eq = line.indexOf('=');
    const key = line.slice(0, eq), value = line.slice(eq + 1);
    switch (key) {
      case 'private_key': state.privateKey = decodeHex(value); break;
      case 'listen_port': state.listenPort = Number(value); break;
      case 'fwmark': state.fwmark = Number(value); break;
      case 'public_key':
        peer = {
          publicKey: decodeHex(value), presharedKey: null, endpoint: null, lastHandshakeTimeSec: 0,
          lastHandshakeTimeNsec: 0, rxBytes: 0, txBytes: 0, persistentKeepalive: 0, allowedIps: [], protocolVersion: 1,
        };
        state.peers.push(peer);
        break;
      case 'errno':
        if (value !== '0') throw new UapiError(Math.abs(Number(value)) || Errno.EIO, `the interface answered errno=${value}`);
        return state;
      default:
        if (!peer) break;
        if (key === 'preshared_key') { const k = decodeHex(value); peer.presharedKey = isAllZero(k) ? null : k; }
        else if (key === 'endpoint') peer.endpoint = value;
        else if (key === 'last_handshake_time_sec') peer.lastHandshakeTimeSec = Number(value);
        else if (key === 'last_handshake_time_nsec') peer.lastHandshakeTimeNsec = Number(value);
        else if (key === 'rx_bytes') peer.rxBytes = Number(value);
        else if (key === 'tx_bytes') peer.txBytes = Number(value);
        else if (key === 'persistent_keepalive_interval') peer.persistentKeepalive = Number(value);
        else if (key === 'allowed_ip') peer.allowedIps.push(parsePrefix(value));
        else if (key === 'protocol_version') peer.protocolVersion = Number(value);
    }
  }
  return state;
}
