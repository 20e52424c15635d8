/**
 * A SOCKS5 server (RFC 1928) whose connections go through the tunnel: CONNECT and UDP ASSOCIATE,
 * no auth or username/password (RFC 1929). BIND is refused (0x07).
 *
 * Robust to garbage: the handshake is parsed from a buffer bounded to the largest valid message
 * (so a client cannot make us hold more), anything malformed closes the connection, and a
 * handshake that does not complete within `handshakeTimeoutMs` is refused (general failure) and
 * closed. Fails closed: a destination outside the peers' allowed IPs gets reply 0x02 (not allowed
 * by ruleset); it is never dialled from the host.
 */
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import { formatIp, parseIp } from '../core/ip-address.ts';
import { ipFamily } from './addr.ts';
import { messageOf, netError } from './errors.ts';
import { relay, socksReplyFor } from './relay.ts';
import type { LogLine, TunnelNet } from './relay.ts';

export interface Socks5Options {
  /** Require RFC 1929 username/password authentication. */
  auth?: { username: string; password: string };
  /** Default 10 s. */
  handshakeTimeoutMs?: number;
  log?: LogLine;
}

const VERSION = 5;
const METHOD_NONE = 0x00, METHOD_USERPASS = 0x02, METHOD_REFUSED = 0xff;
const CMD_CONNECT = 1, CMD_UDP = 3;
const REP_OK = 0, REP_FAILURE = 1, REP_CMD = 7, REP_ATYP = 8;
/** The largest greeting (2+255), auth (3+255+255) and request (7+255) messages. */
const MAX_HANDSHAKE = 513;

interface Target {
  host: string;
  port: number;
}

/** Starts a SOCKS5 server on the host at `host:port` (port 0 = any). */
export async function startSocks5(tunnel: TunnelNet, host: string, port: number, options: Socks5Options = {}): Promise<net.Server> {
  const server = net.createServer({ allowHalfOpen: true }, (client) => handle(tunnel, client, options));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => { server.off('error', reject); resolve(); });
  });
  return server;
}

/**
 * Reads `[ATYP, ADDR..., PORT]` at `o`: the target and the offset after it, 'short' if more
 * bytes are needed, or null if the address type is unknown or the name empty.
 */
function readAddress(b: Uint8Array, o: number): { target: Target; next: number } | 'short' | null {
  if (b.length <= o) return 'short';
  const atyp = b[o]!;
  let host: string;
  let p: number;
  if (atyp === 1) {
    if (b.length < o + 7) return 'short';
    host = `${b[o + 1]}.${b[o + 2]}.${b[o + 3]}.${b[o + 4]}`;
    p = o + 5;
  } else if (atyp === 4) {
    if (b.length < o + 19) return 'short';
    host = formatIp(b.subarray(o + 1, o + 17));
    p = o + 17;
  } else if (atyp === 3) {
    if (b.length < o + 2) return 'short';
    const len = b[o + 1]!;
    if (len === 0) return null;
    if (b.length < o + 2 + len + 2) return 'short';
    host = Buffer.from(b.subarray(o + 2, o + 2 + len)).toString('latin1');
    p = o + 2 + len;
  } else return null;
  return { target: { host, port: (b[p]! << 8) | b[p + 1]! }, next: p + 2 };
}

/** `[ATYP, ADDR, PORT]` for an IP literal (0.0.0.0 for anything else). */
export function encodeAddress(address: string | undefined, port: number): Buffer {
  const family = address ? ipFamily(address) : 0;
  const ip = family ? parseIp(address!) : new Uint8Array(4);
  return Buffer.from([ip.length === 4 ? 1 : 4, ...ip, port >> 8, port & 0xff]);
}

function reply(code: number, address?: string, port = 0): Buffer {
  return Buffer.concat([Buffer.from([VERSION, code, 0]), encodeAddress(address, port)]);
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a), y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function handle(tunnel: TunnelNet, client: net.Socket, options: Socks5Options): void {
  const log = options.log ?? (() => {});
  const peer = `${client.remoteAddress}:${client.remotePort}`;
  let buffer: Buffer = Buffer.alloc(0);
  let stage: 'greeting' | 'auth' | 'request' | 'done' = 'greeting';
  client.on('error', () => client.destroy());
  const timer = setTimeout(() => {
    if (stage === 'request') client.end(reply(REP_FAILURE));
    else client.destroy();
    log(`socks5 ${peer}: handshake did not complete within ${options.handshakeTimeoutMs ?? 10_000} ms; closed`);
  }, options.handshakeTimeoutMs ?? 10_000);
  const fail = (why: string, response?: Buffer) => {
    clearTimeout(timer);
    stage = 'done';
    client.removeListener('data', onData);
    log(`socks5 ${peer}: ${why}`);
    if (response) client.end(response); else client.destroy();
  };
  const onData = (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk]);
    if (buffer.length > MAX_HANDSHAKE) { fail('handshake too long; closed'); return; }
    for (;;) {
      if (stage === 'greeting') {
        if (buffer.length < 2) return;
        if (buffer[0] !== VERSION) { fail(`not SOCKS5 (version byte ${buffer[0]}); closed`); return; }
        const n = buffer[1]!;
        if (buffer.length < 2 + n) return;
        const methods = buffer.subarray(2, 2 + n);
        buffer = buffer.subarray(2 + n);
        const want = options.auth ? METHOD_USERPASS : METHOD_NONE;
        if (!methods.includes(want)) { fail('no acceptable authentication method', Buffer.from([VERSION, METHOD_REFUSED])); return; }
        client.write(Buffer.from([VERSION, want]));
        stage = options.auth ? 'auth' : 'request';
      } else if (stage === 'auth') {
        if (buffer.length < 2) return;
        if (buffer[0] !== 1) { fail('bad username/password negotiation version; closed'); return; }
        const ulen = buffer[1]!;
        if (buffer.length < 3 + ulen) return;
        const plen = buffer[2 + ulen]!;
        if (buffer.length < 3 + ulen + plen) return;
        const username = buffer.subarray(2, 2 + ulen).toString('utf8');
        const password = buffer.subarray(3 + ulen, 3 + ulen + plen).toString('utf8');
        buffer = buffer.subarray(3 + ulen + plen);
        const ok = sameSecret(username, options.auth!.username) && sameSecret(password, options.auth!.password);
        if (!ok) { fail('authentication failed', Buffer.from([1, 1])); return; }
        client.write(Buffer.from([1, 0]));
        stage = 'request';
      } else if (stage === 'request') {
        if (buffer.length < 4) return;
        if (buffer[0] !== VERSION || buffer[2] !== 0) { fail('malformed request; closed', reply(REP_FAILURE)); return; }
        const parsed = readAddress(buffer, 3);
        if (parsed === 'short') return;
        if (parsed === null) { fail('unsupported address type', reply(REP_ATYP)); return; }
        const cmd = buffer[1]!;
        const rest = buffer.subarray(parsed.next);
        clearTimeout(timer);
        stage = 'done';
        client.removeListener('data', onData);
        if (cmd === CMD_CONNECT) connect(tunnel, client, parsed.target, rest, log, peer);
        else if (cmd === CMD_UDP) associate(tunnel, client, parsed.target, log, peer);
        else fail(`command ${cmd} not supported`, reply(REP_CMD));
        return;
      } else return;
    }
  };
  client.on('data', onData);
}

function connect(tunnel: TunnelNet, client: net.Socket, target: Target, early: Buffer, log: LogLine, peer: string): void {
  client.pause();
  const remote = tunnel.connect({ host: target.host, port: target.port, allowHalfOpen: true });
  let failed = false;
  const onFail = (err: NodeJS.ErrnoException) => {
    if (failed) return;
    failed = true;
    log(`socks5 ${peer}: CONNECT ${target.host}:${target.port} failed: ${messageOf(err)}`);
    client.end(reply(socksReplyFor(err.code)));
    // Paused above: without reading on, data the client sent after its request would keep its
    // EOF unseen and this half-open socket would never close (found by fuzz/targets/proxy.ts).
    client.resume();
  };
  remote.once('error', onFail);
  // Destroyed without an error before it connected (the tunnel closing): still a failed CONNECT.
  const onGone = () => { if ((remote as { connecting?: boolean }).connecting && !client.destroyed) onFail(netError('ECONNABORTED', 'the tunnel closed')); };
  remote.once('close', onGone);
  remote.once('connect', () => {
    remote.off('error', onFail);
    remote.off('close', onGone);
    client.write(reply(REP_OK, remote.localAddress, remote.localPort ?? 0));
    if (early.length > 0) remote.write(early);
    relay(client, remote);
    client.resume();
  });
  client.once('close', () => { if (!remote.destroyed && (remote as { connecting?: boolean }).connecting) remote.destroy(); });
}

/** Decodes a client datagram: RSV(2) FRAG ATYP ADDR PORT DATA. Fragments are not supported. */
export function decodeUdpRequest(d: Buffer): { target: Target; data: Buffer } | null {
  if (d.length < 4 || d[0] !== 0 || d[1] !== 0 || d[2] !== 0) return null;
  const parsed = readAddress(d, 3);
  if (parsed === null || parsed === 'short') return null;
  return { target: parsed.target, data: d.subarray(parsed.next) };
}

function associate(tunnel: TunnelNet, client: net.Socket, target: Target, log: LogLine, peer: string): void {
  // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; their datagrams come from a.b.c.d.
  const unmap = (a: string | undefined) => a?.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
  const localAddress = unmap(client.localAddress);
  const remoteAddress = unmap(client.remoteAddress);
  const family = localAddress && ipFamily(localAddress) === 6 ? 'udp6' : 'udp4';
  const relaySocket = dgram.createSocket(family);
  const tunnelSocket = tunnel.udp();
  let clientUdp: { address: string; port: number } | null = null;
  const close = () => {
    try { relaySocket.close(); } catch { /* already closed */ }
    tunnelSocket.close();
    client.destroy();
  };
  relaySocket.on('error', (err) => { log(`socks5 ${peer}: UDP relay error: ${messageOf(err)}`); close(); });
  relaySocket.bind(0, localAddress, () => {
    const { port } = relaySocket.address() as AddressInfo;
    client.write(reply(REP_OK, localAddress, port));
  });
  relaySocket.on('message', (msg, rinfo) => {
    // Only the client that asked may use the association (RFC 1928 §7), from the port it named.
    if (rinfo.address !== remoteAddress) return;
    if (target.port !== 0 && rinfo.port !== target.port) return;
    const req = decodeUdpRequest(msg);
    if (!req) return;
    clientUdp = { address: rinfo.address, port: rinfo.port };
    tunnelSocket.send(req.data, req.target.port, req.target.host, (err) => {
      if (err) log(`socks5 ${peer}: UDP to ${req.target.host}:${req.target.port} dropped: ${messageOf(err)}`);
    });
  });
  tunnelSocket.on('message', (data: Buffer, from: { address: string; port: number }) => {
    if (!clientUdp) return;
    relaySocket.send(Buffer.concat([Buffer.from([0, 0, 0]), encodeAddress(from.address, from.port), data]), clientUdp.port, clientUdp.address);
  });
  // The association lives as long as the TCP connection that made it.
  client.on('data', () => {});
  client.on('end', close);
  client.on('close', close);
}
