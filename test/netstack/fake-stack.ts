/**
 * A stand-in for the real sans-I/O stack (src/netstack/stack/), implementing its contract
 * (TcpIpStackApi) with a toy transport so the Node-facing layer (tun, api, proxies, forwards) can be
 * tested while the real stack is written, and so tests can provoke edge cases on demand.
 *
 * Packets are real IPv4/IPv6 headers (the device routes them by address) around a private
 * protocol 253 ("for experimentation", RFC 3692): type, ports, one 32-bit argument, data. There
 * is no retransmission (the in-memory network is reliable and ordered); flow control is a credit
 * window returned by `release`, so the backpressure paths of the Duplex are exercised.
 */
import { formatIp, parseIp } from '../../src/core/ip-address.ts';
import type {
  EchoReply, Endpoint4or6, TcpIpStackApi, StackConfig, StackIO, TcpConnection, TcpErrorCode, TcpEvents, TcpListener,
  TcpState, UdpSocket,
} from '../../src/netstack/stack/types.ts';

const PROTO = 253;
const T_SYN = 1, T_SYNACK = 2, T_RST = 3, T_DATA = 4, T_FIN = 5, T_WND = 6, T_UDP = 7, T_ECHO = 8, T_ECHOREPLY = 9;
const WINDOW = 64 * 1024;
const SEGMENT = 1200;

export class FakeStack implements TcpIpStackApi {
  readonly counters: Record<string, number> = { input: 0, dropped: 0 };
  onEchoReply?: (reply: EchoReply) => void;
  readonly config: StackConfig;
  readonly io: StackIO;
  readonly conns = new Map<string, FakeConn>();
  readonly listeners = new Map<number, FakeListener>();
  readonly udps = new Map<number, FakeUdp>();
  private nextPort = 40000;
  /** Drop every packet to this port silently (to test connect timeouts). */
  blackhole = new Set<number>();
  /** How long a SYN waits for an answer before ETIMEDOUT. */
  connectTimeoutMs = 5_000;

  constructor(config: StackConfig, io: StackIO) {
    this.config = config;
    this.io = io;
  }

  input(packet: Uint8Array, now: number): void {
    this.counters.input!++;
    const v = packet[0]! >> 4;
    const h = v === 4 ? 20 : 40;
    if ((v !== 4 && v !== 6) || packet.length < h + 9 || packet[v === 4 ? 9 : 6] !== PROTO) { this.counters.dropped!++; return; }
    const src = formatIp(packet.subarray(v === 4 ? 12 : 8, v === 4 ? 16 : 24));
    const dst = formatIp(packet.subarray(v === 4 ? 16 : 24, v === 4 ? 20 : 40));
    const b = packet.subarray(h);
    const type = b[0]!, sport = (b[1]! << 8) | b[2]!, dport = (b[3]! << 8) | b[4]!;
    const arg = ((b[5]! << 24) | (b[6]! << 16) | (b[7]! << 8) | b[8]!) >>> 0;
    const data = b.slice(9);
    const key = `${dst}|${dport}|${src}|${sport}`;
    if (type === T_ECHO) { this.send(dst, src, T_ECHOREPLY, 0, 0, arg, data); return; }
    if (type === T_ECHOREPLY) { this.onEchoReply?.({ from: src, id: arg >>> 16, sequence: arg & 0xffff, payload: data }); return; }
    if (type === T_UDP) { this.udps.get(dport)?.onMessage?.(data, { address: src, port: sport }); return; }
    if (type === T_SYN) {
      const l = this.listeners.get(dport);
      if (!l || this.blackhole.has(dport)) { if (!l) this.send(dst, src, T_RST, dport, sport, 0); return; }
      const conn = new FakeConn(this, { address: dst, port: dport }, { address: src, port: sport }, 'ESTABLISHED');
      this.conns.set(key, conn);
      this.send(dst, src, T_SYNACK, dport, sport, 0);
      l.onConnection?.(conn);
      return;
    }
    const conn = this.conns.get(key);
    if (!conn) { if (type !== T_RST) this.send(dst, src, T_RST, dport, sport, 0); return; }
    conn.onSegment(type, arg, data, now);
  }

  tick(now: number): void {
    for (const c of [...this.conns.values()]) {
      if (c.state === 'SYN-SENT' && now >= c.deadline) c.fail('ETIMEDOUT', 'connection timed out');
    }
  }

  nextDeadline(): number {
    let d = Infinity;
    for (const c of this.conns.values()) if (c.state === 'SYN-SENT') d = Math.min(d, c.deadline);
    return d;
  }

  tcpConnect(remote: Endpoint4or6, now: number, local?: Partial<Endpoint4or6>): TcpConnection {
    const family = remote.address.includes(':') ? 6 : 4;
    const address = local?.address ?? this.config.addresses.find((a) => (a.includes(':') ? 6 : 4) === family) ?? '0.0.0.0';
    const conn = new FakeConn(this, { address, port: local?.port ?? this.nextPort++ }, remote, 'SYN-SENT');
    conn.deadline = now + this.connectTimeoutMs;
    this.conns.set(conn.key, conn);
    this.send(address, remote.address, T_SYN, conn.local.port, remote.port, 0);
    return conn;
  }

  tcpListen(port: number, address?: string): TcpListener {
    if (this.listeners.has(port)) throw Object.assign(new Error(`port ${port} in use`), { code: 'ERR_PORT_IN_USE' });
    const l: FakeListener = { local: { address: address ?? this.config.addresses[0]!, port }, close: () => { this.listeners.delete(port); } };
    this.listeners.set(port, l);
    return l;
  }

  udpBind(port = 0, address?: string): UdpSocket {
    if (port === 0) port = this.nextPort++;
    if (this.udps.has(port)) throw Object.assign(new Error(`port ${port} in use`), { code: 'ERR_PORT_IN_USE' });
    const local = { address: address ?? this.config.addresses[0]!, port };
    const u: FakeUdp = {
      local,
      send: (data, to) => {
        const from = this.config.addresses.find((a) => a.includes(':') === to.address.includes(':'));
        if (!from || data.length > 1400) return false;
        this.send(from, to.address, T_UDP, port, to.port, 0, data);
        return true;
      },
      close: () => { this.udps.delete(port); },
    };
    this.udps.set(port, u);
    return u;
  }

  ping(to: string, id: number, sequence: number, payload: Uint8Array): boolean {
    const from = this.config.addresses.find((a) => a.includes(':') === to.includes(':'));
    if (!from) return false;
    this.send(from, to, T_ECHO, 0, 0, ((id << 16) | sequence) >>> 0, payload);
    return true;
  }

  send(src: string, dst: string, type: number, sport: number, dport: number, arg: number, data: Uint8Array = new Uint8Array(0)): void {
    const s = parseIp(src), d = parseIp(dst);
    const h = s.length === 4 ? 20 : 40;
    const p = new Uint8Array(h + 9 + data.length);
    if (h === 20) {
      p[0] = 0x45; p[2] = p.length >> 8; p[3] = p.length & 0xff; p[8] = 64; p[9] = PROTO; p.set(s, 12); p.set(d, 16);
    } else {
      p[0] = 0x60; p[4] = (p.length - 40) >> 8; p[5] = (p.length - 40) & 0xff; p[6] = PROTO; p[7] = 64; p.set(s, 8); p.set(d, 24);
    }
    const b = p.subarray(h);
    b[0] = type; b[1] = sport >> 8; b[2] = sport & 0xff; b[3] = dport >> 8; b[4] = dport & 0xff;
    b[5] = arg >>> 24; b[6] = (arg >>> 16) & 0xff; b[7] = (arg >>> 8) & 0xff; b[8] = arg & 0xff;
    b.set(data, 9);
    this.io.output(p);
    p.fill(0xee); // the view is only valid during the call
  }
}

interface FakeListener extends TcpListener { onConnection?: (conn: TcpConnection) => void }
interface FakeUdp extends UdpSocket { onMessage?: (data: Uint8Array, from: Endpoint4or6) => void }

export class FakeConn implements TcpConnection {
  state: TcpState;
  events: TcpEvents = {};
  deadline = Infinity;
  private queue: Uint8Array[] = [];
  private queued = 0;
  private credit = WINDOW;
  private wantDrain = false;
  private finQueued = false;
  private finSent = false;
  private finReceived = false;
  private readonly stack: FakeStack;
  readonly local: Endpoint4or6;
  readonly remote: Endpoint4or6;
  readonly sendBuffer: number;

  constructor(stack: FakeStack, local: Endpoint4or6, remote: Endpoint4or6, state: TcpState) {
    this.stack = stack;
    this.local = local;
    this.remote = remote;
    this.state = state;
    this.sendBuffer = stack.config.tcpSendBuffer ?? 256 * 1024;
  }

  get key(): string { return `${this.local.address}|${this.local.port}|${this.remote.address}|${this.remote.port}`; }
  get bufferedAmount(): number { return this.queued; }

  write(data: Uint8Array): number {
    if (this.finQueued || this.state === 'CLOSED') return 0;
    const n = Math.min(data.length, this.sendBuffer - this.queued);
    if (n > 0) { this.queue.push(data.slice(0, n)); this.queued += n; }
    if (n < data.length) this.wantDrain = true;
    this.flush();
    return n;
  }

  release(n: number): void {
    if (this.state !== 'CLOSED' && n > 0) this.seg(T_WND, n);
  }

  shutdown(): void {
    if (this.state === 'CLOSED') return;
    this.finQueued = true;
    this.flush();
  }

  close(): void { this.shutdown(); }

  abort(): void {
    if (this.state === 'CLOSED') return;
    this.seg(T_RST, 0);
    this.forget();
  }

  setKeepAlive(): void {}

  onSegment(type: number, arg: number, data: Uint8Array, _now: number): void {
    switch (type) {
      case T_SYNACK:
        if (this.state !== 'SYN-SENT') return;
        this.state = 'ESTABLISHED';
        this.events.onConnect?.();
        this.flush();
        return;
      case T_RST: this.fail(this.state === 'SYN-SENT' ? 'ECONNREFUSED' : 'ECONNRESET', this.state === 'SYN-SENT' ? 'connection refused' : 'connection reset by peer'); return;
      case T_DATA: this.events.onData?.(data); return;
      case T_FIN:
        this.finReceived = true;
        this.events.onEnd?.();
        this.maybeClosed();
        return;
      case T_WND:
        this.credit += arg;
        this.flush();
        if (this.wantDrain && this.queued < this.sendBuffer) { this.wantDrain = false; this.events.onDrain?.(); }
    }
  }

  fail(code: TcpErrorCode, message: string): void {
    if (this.state === 'CLOSED') return;
    this.forget();
    this.events.onClose?.({ code, message });
  }

  private flush(): void {
    if (this.state === 'SYN-SENT' || this.state === 'CLOSED') return;
    while (this.credit > 0 && this.queue.length > 0) {
      const head = this.queue[0]!;
      const n = Math.min(SEGMENT, this.credit, head.length);
      this.seg(T_DATA, 0, head.subarray(0, n));
      this.credit -= n;
      this.queued -= n;
      if (n === head.length) this.queue.shift(); else this.queue[0] = head.subarray(n);
    }
    if (this.finQueued && !this.finSent && this.queue.length === 0) {
      this.finSent = true;
      this.seg(T_FIN, 0);
      this.maybeClosed();
    }
  }

  private maybeClosed(): void {
    if (this.finSent && this.finReceived && this.state !== 'CLOSED') {
      this.forget();
      this.events.onClose?.();
    }
  }

  private forget(): void {
    this.state = 'CLOSED';
    this.stack.conns.delete(this.key);
  }

  private seg(type: number, arg: number, data?: Uint8Array): void {
    this.stack.send(this.local.address, this.remote.address, type, this.local.port, this.remote.port, arg, data);
  }
}
