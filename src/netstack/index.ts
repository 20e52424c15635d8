/**
 * `wireweave/netstack`: a rootless tunnel. A WireGuard device whose inside is a userspace
 * TCP/IP stack, on an ordinary UDP socket: no root, no TUN; the application reaches the tunnel
 * through this API's sockets, `fetch`, DNS, proxies and port forwards.
 */

/** Brings a rootless tunnel up from a wg-quick config (a path, its text or a parsed config). */
export { netstack } from './api.ts';
/** A running rootless tunnel: `connect`, `listen`, `udp`, `fetch`, `resolve`, `ping`, `close`. */
export { Netstack } from './api.ts';
/** Reads a wg-quick config given as a parsed object, its text or a file path. */
export { loadConfig } from './api.ts';
/** Options of netstack(), connect() and ping(); ping's result; a custom TCP/IP stack factory. */
export type { ConnectOptions, NetstackOptions, PingOptions, PingResult, StackFactory } from './api.ts';
/** A TCP connection through the tunnel: a Duplex used like a net.Socket. */
export { TunnelSocket } from './socket.ts';
/** Options of a listening socket's connections (`listen(port, address, options)`). */
export type { TunnelSocketOptions } from './socket.ts';
/** A listening TCP socket in the tunnel; emits 'connection' with TunnelSockets like net.Server. */
export { TunnelServer } from './server.ts';
/** A UDP socket in the tunnel, used like dgram.Socket. */
export { TunnelUdpSocket } from './udp.ts';
/** The sender of a datagram received on a TunnelUdpSocket. */
export type { RemoteInfo } from './udp.ts';
/** fetch() options through the tunnel: RequestInit plus TLS options. */
export type { TunnelFetchInit } from './fetch.ts';
/** Options of resolve() (address family). */
export type { ResolveOptions } from './resolver.ts';

/** A SOCKS5 proxy (CONNECT and UDP ASSOCIATE) on a host port, dialling through the tunnel. */
export { startSocks5 } from './socks5.ts';
/** Options of startSocks5 (username/password authentication, handshake timeout, log). */
export type { Socks5Options } from './socks5.ts';
/** An HTTP proxy (CONNECT and absolute-URI requests) on a host port, through the tunnel. */
export { startHttpProxy } from './http-proxy.ts';
/** Options of startHttpProxy (authentication, header timeout, log). */
export type { HttpProxyOptions } from './http-proxy.ts';
/** A host TCP port forwarded to an address in the tunnel (like ssh -L). */
export { forwardTcp } from './forward.ts';
/** A tunnel TCP port forwarded to an address on the host side (like ssh -R). */
export { reverseTcp } from './forward.ts';
/** A host UDP port forwarded to an address in the tunnel. */
export { forwardUdp } from './forward.ts';
/** Parses and formats a forward as the CLI writes it: `[BIND:]PORT:HOST:HOSTPORT`. */
export { formatForwardSpec, parseForwardSpec } from './forward.ts';
/** A forward's description, a running forward (close it), UDP forward options. */
export type { Forward, ForwardSpec, UdpForwardOptions } from './forward.ts';
/** What a custom StackFactory returns and gets: the TCP/IP stack's interface, options and I/O. */
export type {
  EchoReply, Endpoint4or6, StackConfig, StackCounters, StackIO, TcpConnection, TcpEvents, TcpIpStackApi, TcpErrorCode, TcpListener, TcpState,
  UdpSocket,
} from './stack/types.ts';
/** The Tun between a Netstack's device and its TCP/IP stack (Netstack.tun). */
export type { NetstackTun, NetstackTunCounters } from './tun.ts';
/** What the proxies and forwards need from a tunnel (a Netstack has it); their log callback. */
export type { LogLine, TunnelNet } from './relay.ts';
