/**
 * The TCP layer: checksum and header checks, demultiplexing to connections and listeners,
 * RST for segments nobody wants (RFC 9293 §3.10.7.1), listen backlogs, the connection limit,
 * ephemeral ports, and the deadline heap that makes `nextDeadline` O(1).
 */
import { compareBytes } from '../../../core/bytes.ts';
import { ConfigError } from '../../../core/errors.ts';
import { randomUint32 } from '../../../core/rng.ts';
import { formatIp, parseIp } from '../../../core/ip-address.ts';
import { fold, pseudoHeaderSum, sum16 } from '../../../core/checksum.ts';
import { DeadlineHeap } from '../heap.ts';
import { PROTO_TCP } from '../ip.ts';
import type { Family, IpInput, StackHost } from '../ip.ts';
import type { Endpoint4or6, TcpConnection, TcpListener } from '../types.ts';
import { Connection } from './connection.ts';
import { MemoryBudget } from './memory-budget.ts';
import type { ConnectionHost } from './connection.ts';
import { ACK, FIN, parseTcp, RST, segmentLength, SYN, tcpHeaderLength, writeTcpHeader } from './segment.ts';
import type { SegmentOut, TcpSegment } from './segment.ts';

/** A staging buffer holds at most this much of one connection's burst (one GRO batch's worth). */
const STAGING_BYTES = 65536;
/** At most this many are lent at once (further connections deliver per segment), and kept free. */
const MAX_STAGING_LENT = 16;
const MAX_STAGING_FREE = 2;

class Listener implements TcpListener {
  readonly local: Endpoint4or6;
  onConnection?: (conn: TcpConnection) => void;
  readonly halfOpen = new Set<Connection>();
  readonly key: string;
  readonly backlog: number;
  private readonly layer: Tcp;

  constructor(layer: Tcp, local: Endpoint4or6, key: string, backlog: number) {
    this.layer = layer;
    this.local = local;
    this.key = key;
    this.backlog = backlog;
  }

  close(): void {
    this.layer.unlisten(this);
  }
}

export class Tcp implements ConnectionHost {
  private readonly stack: StackHost;
  private readonly connections = new Map<string, Connection>();
  /** Staging buffers (ConnectionHost.stage): lent to connections in this burst, and kept free. */
  private readonly staging = new Set<Connection>();
  private readonly stagingFree: Uint8Array[] = [];
  private stagingLent = 0;
  /** The connection the last segment went to (lookup's fast path); cleared when it is removed. */
  private lastFound: Connection | undefined;
  /** `address|port`, `*` for all our addresses. */
  private readonly listeners = new Map<string, Listener>();
  private readonly heap = new DeadlineHeap<Connection>();
  /** Local ports used by connections and listeners, with use counts. */
  private readonly ports = new Map<number, number>();
  private readonly listenerPorts = new Set<number>();
  private readonly scratch = new Uint8Array(4);
  readonly memory: MemoryBudget;
  /** Inside an input burst, and the connections holding an ACK for its end. */
  private burst = false;
  private readonly heldAcks = new Set<Connection>();

  constructor(stack: StackHost) {
    this.stack = stack;
    const c = stack.config;
    this.memory = new MemoryBudget({ low: c.tcpMemoryLow, pressure: c.tcpMemoryPressure, high: c.tcpMemoryLimit }, stack.counters);
  }

  get config() { return this.stack.config; }
  get counters() { return this.stack.counters; }
  get connectionCount(): number { return this.connections.size; }

  // --- API ------------------------------------------------------------------------------------

  connect(remote: Endpoint4or6, now: number, local?: Partial<Endpoint4or6>): TcpConnection {
    let remoteIp: Uint8Array;
    try { remoteIp = parseIp(remote.address); } catch { throw new ConfigError('ERR_ADDRESS', `not an IP address: ${remote.address}`); }
    if (!Number.isInteger(remote.port) || remote.port < 1 || remote.port > 65535) throw new ConfigError('ERR_PORT', `bad port ${remote.port}`);
    const family: Family = remoteIp.length === 4 ? 4 : 6;
    let localIp = this.stack.sourceFor(family);
    if (local?.address) {
      let ip: Uint8Array;
      try { ip = parseIp(local.address); } catch { throw new ConfigError('ERR_ADDRESS', `not an IP address: ${local.address}`); }
      if (!this.stack.isLocal(formatIp(ip))) throw new ConfigError('ERR_ADDRESS', `${local.address} is not one of the stack's addresses`);
      localIp = ip.length === remoteIp.length ? ip : null;
    }
    const remoteText = formatIp(remoteIp);
    const localText = localIp ? formatIp(localIp) : (family === 4 ? '0.0.0.0' : '::');
    let port = local?.port ?? 0;
    if (port !== 0 && (!Number.isInteger(port) || port < 0 || port > 65535)) throw new ConfigError('ERR_PORT', `bad port ${port}`);
    if (port === 0 && localIp) port = this.ephemeral(localText, remoteText, remote.port);
    const key = `${localText}|${port}|${remoteText}|${remote.port}`;
    if (port !== 0 && localIp && this.connections.has(key)) throw new ConfigError('ERR_ADDRESS_IN_USE', `connection ${key} exists`);
    const conn = this.newConnection(family, localIp ?? new Uint8Array(remoteIp.length), localText, port, remoteIp, remoteText, remote.port);
    if (!localIp) { conn.failSoon('EHOSTUNREACH', `no address of IPv${family} to reach ${remoteText}`, now); return conn; }
    if (port === 0) { conn.failSoon('ECONNABORTED', 'no free ephemeral port', now); return conn; }
    if (this.connections.size >= this.config.maxConnections) {
      this.counters.tcpConnectionLimit++;
      conn.failSoon('ECONNABORTED', 'too many connections', now);
      return conn;
    }
    if (!conn.admitMemory()) {
      conn.failSoon('ENOBUFS', `no buffer space: the stack's TCP memory budget is exhausted (tcpMemoryLimit ${this.config.tcpMemoryLimit} bytes)`, now);
      return conn;
    }
    this.register(conn);
    this.counters.tcpActiveOpens++;
    conn.openActive(now);
    return conn;
  }

  listen(port: number, address: string | undefined, backlog?: number): TcpListener {
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError('ERR_PORT', `bad port ${port}`);
    const addr = address ?? '*';
    if (port === 0) port = this.ephemeral(addr, '', 0);
    const taken = addr === '*'
      ? [...this.listeners.values()].some((l) => l.local.port === port)
      : this.listeners.has(`${addr}|${port}`) || this.listeners.has(`*|${port}`);
    if (taken) throw new ConfigError('ERR_ADDRESS_IN_USE', `TCP port ${port} is already listening`);
    const key = `${addr}|${port}`;
    const l = new Listener(this, { address: addr === '*' ? '::' : addr, port }, key,
      Math.max(1, backlog ?? this.config.synBacklog));
    this.listeners.set(key, l);
    this.listenerPorts.add(port);
    this.usePort(port, 1);
    return l;
  }

  unlisten(l: Listener): void {
    if (this.listeners.get(l.key) !== l) return;
    this.listeners.delete(l.key);
    if (![...this.listeners.values()].some((x) => x.local.port === l.local.port)) this.listenerPorts.delete(l.local.port);
    this.usePort(l.local.port, -1);
    // Half-open connections die with their listener; established ones are the application's.
    for (const c of [...l.halfOpen]) c.abort(0);
  }

  // --- input ----------------------------------------------------------------------------------

  input(ip: IpInput, now: number): void {
    const c = this.counters;
    c.tcpReceived++;
    const b = ip.payload;
    if (b.length < 20) { c.tcpMalformed++; return; }
    if (fold(sum16(b, 0, b.length, pseudoHeaderSum(ip.src, ip.dst, PROTO_TCP, b.length))) !== 0xffff) {
      c.tcpBadChecksum++;
      return;
    }
    const seg = parseTcp(b);
    if (!seg) { c.tcpMalformed++; return; }
    const f = seg.flags;
    if ((f & SYN && f & (FIN | RST)) || (f & (SYN | ACK | RST)) === 0 || seg.srcPort === 0 || seg.dstPort === 0) {
      c.tcpBadFlags++;
      return;
    }
    const conn = this.lookup(ip, seg);
    if (conn) {
      // A new SYN beyond what an old incarnation used may reopen from TIME-WAIT (RFC 9293 §3.6.1).
      const reopens = conn.state === 'TIME-WAIT' && (f & (SYN | ACK)) === SYN && seqAfter(seg.seq, conn.rcvNxt)
        && this.listenerFor(ip, seg) !== undefined;
      if (!reopens) {
        conn.input(seg, now);
        return;
      }
      c.tcpTimeWaitReused++;
      conn.abort(now);
    }
    const listener = this.listenerFor(ip, seg);
    if (listener && (f & (SYN | ACK | RST)) === SYN) {
      this.passiveOpen(listener, ip, seg, now);
      return;
    }
    if (f & RST) { c.tcpRstIgnored++; return; }
    c.tcpNoSocket++;
    this.resetFor(ip, seg);
  }

  /**
   * The connection a segment belongs to. A bulk stream's segments come one connection after
   * another, so the last one found is tried first by its ports and address bytes, which spares
   * building the four-part key string for each segment.
   */
  private lookup(ip: IpInput, seg: TcpSegment): Connection | undefined {
    const last = this.lastFound;
    if (last !== undefined && last.remote.port === seg.srcPort && last.local.port === seg.dstPort && last.family === ip.family
      && compareBytes(last.remoteIp, ip.src) === 0 && compareBytes(last.localIp, ip.dst) === 0) {
      return last;
    }
    const conn = this.connections.get(`${ip.dstText}|${seg.dstPort}|${ip.srcText}|${seg.srcPort}`);
    if (conn) this.lastFound = conn;
    return conn;
  }

  private listenerFor(ip: IpInput, seg: TcpSegment): Listener | undefined {
    return this.listeners.get(`${ip.dstText}|${seg.dstPort}`) ?? this.listeners.get(`*|${seg.dstPort}`);
  }

  private passiveOpen(l: Listener, ip: IpInput, seg: TcpSegment, now: number): void {
    const c = this.counters;
    if (this.connections.size >= this.config.maxConnections) {
      c.tcpConnectionLimit++;
      this.resetFor(ip, seg);
      return;
    }
    if (l.halfOpen.size >= l.backlog) {
      // Make room by silently dropping the oldest half-open connection whose SYN-ACK already went
      // unanswered twice (3 s: a real client answers, or sends data, long before); if all are
      // younger, drop this SYN (the peer will retry). No RST: flood sources are usually spoofed.
      let victim: Connection | undefined;
      for (const h of l.halfOpen) { if (h.synRetries >= 2) { victim = h; break; } }
      if (!victim) { c.tcpSynBacklogFull++; return; }
      c.tcpSynBacklogEvicted++;
      victim.drop();
    }
    const localText = ip.dstText;
    const conn = this.newConnection(ip.family, ip.dst.slice(), localText, seg.dstPort, ip.src.slice(), ip.srcText, seg.srcPort);
    if (!conn.admitMemory()) {
      // The budget is spent: refuse as at the connection limit (counted as tcpMemoryRefused).
      this.resetFor(ip, seg);
      return;
    }
    conn.listener = l;
    l.halfOpen.add(conn);
    this.register(conn);
    c.tcpPassiveOpens++;
    conn.openPassive(seg, now);
  }

  /** RST for a segment without a connection (RFC 9293 §3.10.7.1). Never in reply to RST. */
  private resetFor(ip: IpInput, seg: TcpSegment): void {
    if (seg.flags & RST) return;
    const out: SegmentOut = seg.flags & ACK
      ? { srcPort: seg.dstPort, dstPort: seg.srcPort, seq: seg.ack, ack: 0, flags: RST, window: 0 }
      : { srcPort: seg.dstPort, dstPort: seg.srcPort, seq: 0, ack: (seg.seq + segmentLength(seg)) >>> 0, flags: RST | ACK, window: 0 };
    this.counters.tcpRstSent++;
    this.send(ip.family, ip.dst, ip.src, out, 0);
  }

  /**
   * ICMP Destination Unreachable quoting one of our segments (RFC 1122 §4.2.3.9, RFC 5927): a
   * connection still in SYN-SENT fails (ECONNREFUSED for a port, EHOSTUNREACH otherwise) if the
   * quoted sequence number is its SYN's; established connections treat it as soft and go on.
   */
  unreachable(family: Family, quoted: Uint8Array, reason: 'port' | 'host'): void {
    let off: number;
    if (family === 4) {
      if (quoted.length < 20 || quoted[0]! >> 4 !== 4 || quoted[9] !== PROTO_TCP) return;
      off = (quoted[0]! & 0x0f) * 4;
    } else {
      if (quoted.length < 40 || quoted[0]! >> 4 !== 6 || quoted[6] !== PROTO_TCP) return;
      off = 40;
    }
    if (quoted.length < off + 8) return;
    const src = family === 4 ? quoted.subarray(12, 16) : quoted.subarray(8, 24);
    const dst = family === 4 ? quoted.subarray(16, 20) : quoted.subarray(24, 40);
    const sport = (quoted[off]! << 8) | quoted[off + 1]!;
    const dport = (quoted[off + 2]! << 8) | quoted[off + 3]!;
    const seq = ((quoted[off + 4]! << 24) | (quoted[off + 5]! << 16) | (quoted[off + 6]! << 8) | quoted[off + 7]!) >>> 0;
    const conn = this.connections.get(`${formatIp(src)}|${sport}|${formatIp(dst)}|${dport}`);
    if (!conn || conn.state !== 'SYN-SENT' || seq !== conn.iss) return;
    this.counters.tcpIcmpUnreachable++;
    conn.unreachable(reason === 'port' ? 'ECONNREFUSED' : 'EHOSTUNREACH');
  }

  // --- ConnectionHost -------------------------------------------------------------------------

  emit(conn: Connection, seg: SegmentOut, length: number, fill?: (b: Uint8Array, at: number) => void): void {
    this.send(conn.family, conn.localIp, conn.remoteIp, seg, length, fill);
  }

  reschedule(conn: Connection): void {
    this.heap.update(conn);
  }

  holdAck(conn: Connection): boolean {
    if (!this.burst) return false;
    this.heldAcks.add(conn);
    return true;
  }

  stage(conn: Connection): Uint8Array | undefined {
    if (!this.burst || this.stagingLent >= MAX_STAGING_LENT) return undefined;
    this.stagingLent++;
    this.staging.add(conn);
    return this.stagingFree.pop() ?? new Uint8Array(STAGING_BYTES);
  }

  unstage(buffer: Uint8Array | undefined): void {
    this.stagingLent--;
    if (buffer !== undefined && this.stagingFree.length < MAX_STAGING_FREE) this.stagingFree.push(buffer);
  }

  beginInputBurst(): void {
    this.burst = true;
  }

  endInputBurst(now: number): void {
    this.burst = false; // nothing is held or staged from here on, so the sets do not change below
    // The bytes first: the application's reads may open the window, which the held ACK then carries.
    for (const conn of this.staging) conn.endBurst();
    this.staging.clear();
    for (const conn of this.heldAcks) conn.sendHeldAck(now);
    this.heldAcks.clear();
  }

  removed(conn: Connection): void {
    this.heap.remove(conn);
    if (this.lastFound === conn) this.lastFound = undefined;
    if (this.connections.get(conn.key) === conn) {
      this.connections.delete(conn.key);
      this.usePort(conn.local.port, -1);
    }
  }

  established(conn: Connection): void {
    const l = this.listeners.get(`${conn.local.address}|${conn.local.port}`) ?? this.listeners.get(`*|${conn.local.port}`);
    if (!l) { conn.abort(0); return; }
    l.onConnection?.(conn);
  }

  // --- timers ---------------------------------------------------------------------------------

  nextDeadline(): number {
    return this.heap.min();
  }

  tick(now: number): void {
    // Each connection runs every due timer at once and moves its deadline past `now` (or leaves).
    for (let guard = this.heap.size * 4 + 16; guard > 0; guard--) {
      const conn = this.heap.peek();
      if (!conn || conn.deadline > now) return;
      const before = conn.deadline;
      conn.onTimer(now);
      if (conn.heapIndex >= 0 && conn.deadline <= now && conn.deadline === before) {
        // A timer that does not move would spin: count it as the bug it is and park the connection.
        this.counters.internalErrors++;
        conn.deadline = now + 1;
        this.heap.update(conn);
      }
    }
  }

  // --- helpers --------------------------------------------------------------------------------

  private send(family: Family, src: Uint8Array, dst: Uint8Array, seg: SegmentOut, length: number,
    fill?: (b: Uint8Array, at: number) => void): void {
    const header = tcpHeaderLength(seg);
    this.counters.tcpSegmentsSent++;
    this.sendSeg = seg;
    this.sendHeader = header;
    this.sendFill = fill;
    this.stack.sendIp(family, src, dst, PROTO_TCP, header + length, this.fillSegment, 16);
    this.sendSeg = undefined;
    this.sendFill = undefined;
  }

  /** send()'s segment, for fillSegment: sendIp fills the packet before it sends it, so nothing nests in between. */
  private sendSeg: SegmentOut | undefined;
  private sendHeader = 0;
  private sendFill: ((b: Uint8Array, at: number) => void) | undefined;
  private readonly fillSegment = (b: Uint8Array, o: number): void => {
    writeTcpHeader(b, o, this.sendSeg!);
    if (this.sendFill) this.sendFill(b, o + this.sendHeader);
  };

  private newConnection(family: Family, localIp: Uint8Array, localText: string, localPort: number,
    remoteIp: Uint8Array, remoteText: string, remotePort: number): Connection {
    return new Connection(this, {
      family, localIp, remoteIp,
      local: { address: localText, port: localPort },
      remote: { address: remoteText, port: remotePort },
      key: `${localText}|${localPort}|${remoteText}|${remotePort}`,
      iss: randomUint32(this.config.rng, this.scratch),
      tsOffset: randomUint32(this.config.rng, this.scratch),
    });
  }

  private register(conn: Connection): void {
    this.connections.set(conn.key, conn);
    this.usePort(conn.local.port, 1);
  }

  private usePort(port: number, delta: number): void {
    const n = (this.ports.get(port) ?? 0) + delta;
    if (n <= 0) this.ports.delete(port); else this.ports.set(port, n);
  }

  /**
   * A random port in the ephemeral range (RFC 6056 algorithm 1), 0 if none. For a connection a
   * port is free if no listener has it and the 4-tuple is unused, so one port serves many
   * remotes (and TIME-WAIT pairs only block their own 4-tuple); for a listener it must be unused.
   */
  private ephemeral(local: string, remote: string, remotePort: number): number {
    const { ephemeralPortMin: min, ephemeralPortMax: max } = this.config;
    const span = max - min + 1;
    const start = randomUint32(this.config.rng, this.scratch) % span;
    // Prefer a port nobody uses; settle for a shared one whose 4-tuple is free.
    let shared = 0;
    for (let i = 0; i < span; i++) {
      const p = min + ((start + i) % span);
      if (!this.ports.has(p)) return p;
      if (shared === 0 && remote !== '' && !this.listenerPorts.has(p) && !this.connections.has(`${local}|${p}|${remote}|${remotePort}`)) shared = p;
    }
    return shared;
  }
}

function seqAfter(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}
