/**
 * The contract of the sans-I/O userspace TCP/IP stack (issue 5).
 *
 * Like the protocol core, the stack never reads a clock, never touches a socket and never throws
 * out of packet processing: IP packets go in through `TcpIpStack.input(packet, now)`, IP packets come
 * out through `StackIO.output`, time is a parameter, and `nextDeadline()`/`tick(now)` drive timers.
 * It imports nothing from `node:*` (lint enforces it), so it runs wherever the core runs.
 *
 * The Node-facing layer (src/netstack/api.ts: Duplex sockets, servers, fetch, DNS; proxy.ts; forward.ts) wraps
 * these objects and owns the real clock and timers. The device connects to the stack through a
 * `Tun` twin (src/netstack/tun.ts): packets the device decrypts go to `input`, `output` packets go
 * back into the device as if the OS had routed them into the tunnel.
 */
import type { Rng } from '../../core/rng.ts';

/** An IPv4 or IPv6 address in its usual text form ("10.0.0.2", "fd00::2"). */
export type IpAddress = string;

export interface StackConfig {
  /** Our addresses inside the tunnel (the wg-quick `Address` lines without prefix length). */
  readonly addresses: readonly IpAddress[];
  /** Tunnel MTU; TCP MSS is derived from it (MTU − 40 for IPv4, − 60 for IPv6). Default 1420. */
  readonly mtu?: number;
  /** Randomness for ISNs, ephemeral ports and ICMP ids; default core/rng systemRng. */
  readonly rng?: Rng;
  /**
   * Bytes each TCP connection may buffer for sending and for receiving at most (default 4 MiB
   * each). Buffers start at the `…Initial` sizes (default 64 KiB) and grow toward these as the
   * application reads and the congestion window opens (receive-window autotuning).
   */
  readonly tcpSendBuffer?: number;
  readonly tcpReceiveBuffer?: number;
  readonly tcpSendBufferInitial?: number;
  readonly tcpReceiveBufferInitial?: number;
  /**
   * The stack's TCP memory budget in bytes (default 128 MiB), counting every connection's
   * received-unread, out-of-order, promised-window and unacknowledged send bytes. From
   * `tcpMemoryPressure` (default 3/4 of it) until back under `tcpMemoryLow` (default 1/2)
   * buffers stop growing and clamp to 16 KiB; at the limit nothing grows and new connections
   * are refused (RST for a SYN, ENOBUFS for connect()).
   */
  readonly tcpMemoryLimit?: number;
  readonly tcpMemoryPressure?: number;
  readonly tcpMemoryLow?: number;
  /** Half-open connections kept per listener before SYNs are dropped (default 128). */
  readonly synBacklog?: number;
  /** Maximum simultaneous TCP connections (default 4096); SYNs beyond it get RST. */
  readonly maxConnections?: number;
  /**
   * Tuning, mostly for tests (milliseconds; defaults in config.ts): maximum segment lifetime
   * (TIME-WAIT is 2 × MSL, default 30 s), how long unacknowledged data is retransmitted before
   * ETIMEDOUT (default 180 s), SYN and SYN-ACK retransmissions, RTO bounds, delayed-ACK delay,
   * keepalive probe interval and count, FIN-WAIT-2 timeout after close(), RFC 7323 options, SACK,
   * fragment reassembly limits and the ephemeral port range.
   */
  readonly tcpMsl?: number;
  readonly tcpUserTimeout?: number;
  readonly tcpSynRetries?: number;
  readonly tcpSynAckRetries?: number;
  readonly tcpInitialRto?: number;
  readonly tcpMinRto?: number;
  readonly tcpMaxRto?: number;
  readonly tcpDelayedAck?: number;
  readonly tcpKeepaliveInterval?: number;
  readonly tcpKeepaliveProbes?: number;
  readonly tcpFinWait2Timeout?: number;
  readonly tcpTimestamps?: boolean;
  readonly tcpWindowScaling?: boolean;
  readonly tcpSack?: boolean;
  readonly reassemblyTimeout?: number;
  readonly reassemblyMaxBytes?: number;
  readonly reassemblyMaxDatagrams?: number;
  readonly ephemeralPortMin?: number;
  readonly ephemeralPortMax?: number;
}

export interface StackIO {
  /**
   * An IP packet the stack sends into the tunnel. The view is valid only during the call: the
   * receiver copies it if it keeps it.
   */
  output(packet: Uint8Array): void;
}

/** Counters: everything dropped is counted under a reason, never thrown. */
export type StackCounters = Record<string, number>;

export interface Endpoint4or6 {
  readonly address: IpAddress;
  readonly port: number;
}

export type TcpState =
  | 'CLOSED' | 'LISTEN' | 'SYN-SENT' | 'SYN-RECEIVED' | 'ESTABLISHED' | 'FIN-WAIT-1' | 'FIN-WAIT-2'
  | 'CLOSE-WAIT' | 'CLOSING' | 'LAST-ACK' | 'TIME-WAIT';

/** Why a connection ended abnormally; stable codes like Node's (`err.code`). */
export type TcpErrorCode = 'ECONNREFUSED' | 'ECONNRESET' | 'ETIMEDOUT' | 'EHOSTUNREACH' | 'ECONNABORTED' | 'ENOBUFS';

export interface TcpEvents {
  /** The three-way handshake completed (active or passive open). */
  onConnect?(): void;
  /**
   * In-order data. The bytes count against the receive window until `release(n)` is called,
   * which is how the application applies backpressure (a Duplex calls it from `_read`).
   * The chunk is the receiver's to keep.
   */
  onData?(chunk: Uint8Array): void;
  /** The peer sent FIN and all data before it was delivered. */
  onEnd?(): void;
  /** Send buffer space became available again after `write` accepted less than asked. */
  onDrain?(): void;
  /** The connection is gone (after a clean close, reset or timeout); `error` is set if abnormal. */
  onClose?(error?: { code: TcpErrorCode; message: string }): void;
}

export interface TcpConnection {
  readonly state: TcpState;
  readonly local: Endpoint4or6;
  readonly remote: Endpoint4or6;
  /** Event handlers; set them right after connect()/onConnection. */
  events: TcpEvents;
  /** Queue data for sending; returns the number of bytes accepted (bounded by the send buffer). */
  write(data: Uint8Array, now: number): number;
  /** Bytes queued and not yet acknowledged. */
  readonly bufferedAmount: number;
  /** The application consumed `n` bytes delivered by onData: reopen the receive window. */
  release(n: number, now: number): void;
  /** Half-close: send FIN after queued data. Reading continues until onEnd. */
  shutdown(now: number): void;
  /** Full close (FIN, linger for unacknowledged data) — like socket.end() + destroy after. */
  close(now: number): void;
  /** Send RST and forget the connection at once. */
  abort(now: number): void;
  /** Enable TCP keepalive probes after `idleMs` of silence (0 disables). */
  setKeepAlive(idleMs: number, now: number): void;
}

export interface TcpListener {
  readonly local: Endpoint4or6;
  /** A new fully established connection. */
  onConnection?: (conn: TcpConnection) => void;
  /** Stops listening. */
  close(): void;
}

export interface UdpSocket {
  readonly local: Endpoint4or6;
  /** A datagram for this socket; `data` is the receiver's to keep. */
  onMessage?: (data: Uint8Array, from: Endpoint4or6) => void;
  /** Send one datagram. Returns false if it was dropped (too large, no route, closed). */
  send(data: Uint8Array, to: Endpoint4or6, now: number): boolean;
  /** Frees the port. */
  close(): void;
}

export interface EchoReply {
  readonly from: IpAddress;
  readonly id: number;
  readonly sequence: number;
  readonly payload: Uint8Array;
}

/** The stack itself (implemented by stack.ts). */
export interface TcpIpStackApi {
  readonly counters: StackCounters;
  /**
   * An IP packet that came out of the tunnel. Never throws; bad packets are dropped and counted.
   * The packet is valid only during the call (the netstack TUN reuses its buffer): anything
   * kept, data included, is copied.
   */
  input(packet: Uint8Array, now: number): void;
  /**
   * The `input` calls until `endInputBurst` are one burst (one drain of the tunnel's queue). In
   * a burst, the ACKs that in-order data asks for (every second segment) are held, and each
   * connection sends one at its end covering all of it (at most 64 KiB), as Linux does for a
   * GRO batch. Without these calls, every second segment is acknowledged at once.
   */
  beginInputBurst?(): void;
  /** Ends the burst: sends the held ACKs. Never throws. */
  endInputBurst?(now: number): void;
  /** Run timers due at `now` (retransmission, delayed ACK, TIME-WAIT, keepalive, reassembly). */
  tick(now: number): void;
  /** Earliest time `tick` has work to do, or Infinity. */
  nextDeadline(): number;
  /** Active open. `local.address` defaults to our first address of the remote's family. */
  tcpConnect(remote: Endpoint4or6, now: number, local?: Partial<Endpoint4or6>): TcpConnection;
  /** Passive open on `port` (all our addresses unless `address` is given). Throws ConfigError if taken. */
  tcpListen(port: number, address?: IpAddress, backlog?: number): TcpListener;
  /** Bind a UDP socket (port 0 = ephemeral). Throws ConfigError if taken. */
  udpBind(port?: number, address?: IpAddress): UdpSocket;
  /** Send an ICMP/ICMPv6 echo request; replies arrive at `onEchoReply`. Returns false if not sent. */
  ping(to: IpAddress, id: number, sequence: number, payload: Uint8Array, now: number): boolean;
  /** Called with each echo reply that answers a `ping`. */
  onEchoReply?: (reply: EchoReply) => void;
}
