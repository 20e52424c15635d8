/**
 * A stub resolver that asks the config's DNS servers through the tunnel (never the host's
 * resolver: a name must not leak outside the tunnel). A and AAAA are asked concurrently; each
 * server gets `attempts` tries of `timeoutMs` before the next one is tried.
 *
 * Search domains (the config's non-address `DNS =` entries, which wg-quick hands to resolvconf)
 * apply as in resolv.conf with ndots:1: a name without a dot is tried with each search domain
 * in order, then as is; a name with a dot, or ending in one, is tried as is only.
 *
 * A UDP answer with the TC bit (too large for a datagram) is asked again over TCP through the
 * tunnel (RFC 7766), when the owner gives a way to open TCP connections; a TCP answer that ends
 * before its length is a failure of that server, never a shorter answer.
 */
import { randomInt } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { ipFamily } from './addr.ts';
import {
  RCODE_NOERROR, RCODE_NXDOMAIN, TYPE_A, TYPE_AAAA, decodeMessage, encodeQuery, isValidHostname, sameName,
} from './dns.ts';
import type { DnsMessage } from './dns.ts';
import { netError } from './errors.ts';
import type { TunnelUdpSocket } from './udp.ts';

export interface ResolverOptions {
  servers: readonly string[];
  /** Search domains, in order (resolv.conf `search`). */
  search?: readonly string[];
  /** A fresh UDP socket on the stack for one query. */
  openSocket: () => TunnelUdpSocket;
  /** A TCP connection to `server`:`port` through the tunnel, for answers truncated over UDP. */
  openTcp?: (server: string, port: number) => Duplex;
  timeoutMs?: number;
  attempts?: number;
}

export interface ResolveOptions {
  /** 4 = A only, 6 = AAAA only, 0 = both (the default). */
  family?: 0 | 4 | 6;
}

export class TunnelResolver {
  private readonly servers: readonly string[];
  private readonly search: readonly string[];
  private readonly openSocket: () => TunnelUdpSocket;
  private readonly openTcp: ((server: string, port: number) => Duplex) | undefined;
  private readonly timeoutMs: number;
  private readonly attempts: number;

  constructor(options: ResolverOptions) {
    this.servers = options.servers;
    // Invalid entries would only fail every short name; the parser already took anything else.
    this.search = (options.search ?? []).map((d) => d.replace(/\.$/, '')).filter((d) => d !== '' && isValidHostname(d));
    this.openSocket = options.openSocket;
    this.openTcp = options.openTcp;
    this.timeoutMs = options.timeoutMs ?? 2000;
    this.attempts = options.attempts ?? 2;
  }

  /** Addresses for `name` (IPv4 first), or an error with code ENOTFOUND / ETIMEDOUT / ESERVFAIL. */
  async resolve(name: string, options: ResolveOptions = {}): Promise<string[]> {
    if (ipFamily(name)) return [name];
    if (!isValidHostname(name)) throw netError('ENOTFOUND', `not a valid host name: ${JSON.stringify(name.slice(0, 80))}`, { hostname: name });
    if (this.servers.length === 0) {
      throw netError('ENOTFOUND', `cannot resolve ${name}: the config has no DNS servers (names are only resolved through the tunnel)`, { hostname: name });
    }
    const family = options.family ?? 0;
    const candidates = searchList(name, this.search);
    let notFound: unknown;
    for (const candidate of candidates) {
      try {
        return await this.resolveExactly(candidate, family);
      } catch (err) {
        // As glibc's res_search: "no such name" moves on to the next candidate, a server that
        // does not answer ends the search (the next name would not fare better).
        const code = (err as { code?: string }).code;
        if (code !== 'ENOTFOUND' && code !== 'ESERVFAIL') throw err;
        notFound ??= err;
      }
    }
    if (candidates.length === 1) throw notFound;
    throw netError((notFound as { code: string }).code, `cannot resolve ${name}: tried ${candidates.join(', ')} (DNS search domains from the config)`, { hostname: name });
  }

  private async resolveExactly(name: string, family: 0 | 4 | 6): Promise<string[]> {
    const types = family === 4 ? [TYPE_A] : family === 6 ? [TYPE_AAAA] : [TYPE_A, TYPE_AAAA];
    const results = await Promise.allSettled(types.map((t) => this.query(name, t)));
    const addresses = results.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
    if (addresses.length > 0) return addresses;
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) throw failure.reason;
    throw netError('ENOTFOUND', `${name} has no ${family === 4 ? 'A' : family === 6 ? 'AAAA' : 'A or AAAA'} records`, { hostname: name });
  }

  private async query(name: string, type: number): Promise<string[]> {
    let lastError: Error | undefined;
    for (const server of this.servers) {
      for (let attempt = 0; attempt < this.attempts; attempt++) {
        try {
          return await this.ask(server, name, type);
        } catch (err) {
          lastError = err as Error;
          if ((err as { code?: string }).code === 'ENOTFOUND') throw err; // an authoritative "no"
        }
      }
    }
    throw lastError ?? netError('ETIMEDOUT', `no answer for ${name}`);
  }

  private ask(server: string, name: string, type: number): Promise<string[]> {
    return new Promise((resolve, reject) => {
      const id = randomInt(0, 65536);
      const socket = this.openSocket();
      let done = false;
      /** Ends the UDP attempt once; false when it had already ended. */
      const stop = (): boolean => {
        if (done) return false;
        done = true;
        clearTimeout(timer);
        socket.close();
        return true;
      };
      const finish = (error: Error | null, value?: string[]) => {
        if (!stop()) return;
        if (error) reject(error); else resolve(value!);
      };
      const timer = setTimeout(() => finish(netError('ETIMEDOUT', `DNS server ${server} did not answer for ${name} within ${this.timeoutMs} ms`, { hostname: name })), this.timeoutMs);
      // The tunnel closing under a query ends it now, not at its timeout.
      socket.once('close', () => finish(netError('ERR_NETSTACK_CLOSED', `the tunnel closed while asking ${server} for ${name}`, { hostname: name })));
      socket.on('message', (msg: Buffer, rinfo: { address: string; port: number }) => {
        if (rinfo.address !== server || rinfo.port !== 53) return;
        const m = decodeMessage(msg);
        // Only the answer to this question counts; anything else is ignored (spoofing, strays).
        if (!m || !answers(m, id, name, type)) return;
        if (m.truncated && this.openTcp) {
          if (stop()) this.askTcp(server, name, type).then(resolve, reject);
          return;
        }
        const result = interpret(m, server, name, type);
        if (result instanceof Error) finish(result); else finish(null, result);
      });
      socket.send(encodeQuery(id, name, type), 53, server, (error) => { if (error) finish(error); });
    });
  }

  /** The same question over TCP (two-byte length, then the message, RFC 1035 §4.2.2). */
  private askTcp(server: string, name: string, type: number): Promise<string[]> {
    return new Promise((resolve, reject) => {
      const id = randomInt(0, 65536);
      const socket = this.openTcp!(server, 53);
      // At most one message: 2 + 65535 bytes and the chunk that completes it.
      let received: Buffer = Buffer.alloc(0);
      let done = false;
      const finish = (error: Error | null, value?: string[]) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        socket.destroy();
        if (error) reject(error); else resolve(value!);
      };
      const timer = setTimeout(() => finish(netError('ETIMEDOUT', `DNS server ${server} did not answer for ${name} over TCP within ${this.timeoutMs} ms`, { hostname: name })), this.timeoutMs);
      const cut = () => finish(netError('ESERVFAIL', `DNS server ${server} closed the TCP connection ${received.length} byte(s) into its answer for ${name}`, { hostname: name }));
      socket.on('error', (err: Error) => finish(err));
      socket.on('end', cut);
      socket.on('close', cut);
      socket.on('data', (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        if (received.length < 2) return;
        const length = received.readUInt16BE(0);
        if (received.length < 2 + length) return;
        const m = decodeMessage(received.subarray(2, 2 + length));
        if (!m || !answers(m, id, name, type)) {
          finish(netError('ESERVFAIL', `DNS server ${server} sent a TCP answer for ${name} that does not match the question`, { hostname: name }));
          return;
        }
        const result = interpret(m, server, name, type);
        if (result instanceof Error) finish(result); else finish(null, result);
      });
      const query = encodeQuery(id, name, type);
      const framed = Buffer.alloc(2 + query.length);
      framed.writeUInt16BE(query.length, 0);
      framed.set(query, 2);
      socket.write(framed);
    });
  }
}

/** Whether `m` is the answer to query `id` for `name`/`type`. */
function answers(m: DnsMessage, id: number, name: string, type: number): boolean {
  return m.response && m.id === id && m.questions.length === 1 && sameName(m.questions[0]!.name, name) && m.questions[0]!.type === type;
}

/** The addresses an answer gives, or the error it means. */
function interpret(m: DnsMessage, server: string, name: string, type: number): string[] | Error {
  if (m.rcode === RCODE_NXDOMAIN) return netError('ENOTFOUND', `${name} does not exist (NXDOMAIN from ${server})`, { hostname: name });
  if (m.rcode !== RCODE_NOERROR) return netError('ESERVFAIL', `DNS server ${server} failed for ${name} (rcode ${m.rcode})`, { hostname: name });
  return m.answers.filter((a) => a.type === type && a.value !== undefined).map((a) => a.value!);
}

/** The names to try for `name`, in order (ndots:1). */
export function searchList(name: string, search: readonly string[]): string[] {
  if (name.endsWith('.')) return [name.slice(0, -1)];
  if (name.includes('.') || search.length === 0) return [name];
  return [...search.map((domain) => `${name}.${domain}`), name];
}
