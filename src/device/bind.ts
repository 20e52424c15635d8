/**
 * The UDP edge. A Bind owns the device's UDP socket(s): IPv4 and IPv6 on one port.
 * Datagrams that are not WireGuard messages are handed to `onForeign` so other protocols
 * (STUN, discovery, relays) can share the port.
 */
import type { TransportReservation } from '../core/endpoint.ts';

/**
 * A remote UDP address, optionally with the local address it talks to. Instances come from
 * `endpointFor` or the bind's receiver and are canonical per (address, port, localAddress), so
 * the device compares them by identity.
 */
export interface BindEndpoint {
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
  /** "1.2.3.4:51820" or "[::1]:51820", as `wg` prints it (the remote only). */
  readonly text: string;
  /** IP bytes ‖ port (big-endian), for cookies (the remote only). */
  readonly tag: Uint8Array;
  /**
   * The local IP a datagram from this remote arrived on (same family), when the bind can tell
   * (IP_PKTINFO). Sends to this endpoint leave from that address ("sticky source", as
   * wireguard-go), so a multi-homed host answers from the address the peer talked to.
   */
  readonly localAddress?: string;
}

export interface BindReceiver {
  (datagram: Uint8Array, from: BindEndpoint): void;
}

export interface Bind {
  /** Opens on `port` (0 = any); resolves with the port actually bound. */
  open(port: number, receiver: BindReceiver): Promise<number>;
  readonly port: number;
  /** Sends one datagram; never throws (failures are counted). */
  send(datagram: Uint8Array, to: BindEndpoint): void;
  /**
   * Optional: the view `send(datagram, to)` would copy a `length`-byte datagram into, or null.
   * A datagram written there and sent as that very view is not copied. Valid until the next
   * send or sendBuffer call; never throws.
   */
  sendBuffer?(length: number, to: BindEndpoint): Uint8Array | null;
  /** The canonical endpoint object for an address without a local address (IPv4-mapped IPv6 folded to IPv4). */
  endpointFor(address: string, port: number): BindEndpoint;
  /**
   * The same remote without its local address, for binds that have sticky sources: the device
   * calls it when a handshake is retried, in case the local address went away (wireguard-go
   * clears the source then too).
   */
  clearSource?(endpoint: BindEndpoint): BindEndpoint;
  /**
   * True while the bind seals transport messages itself, on threads of its own (the Linux bind
   * with sealWorkers): the device then takes counters and key from the endpoint
   * (reserveTransport) and hands the plaintext to sendTransport.
   */
  readonly sealsTransport?: boolean;
  /**
   * Pads `packet` with zeros to `padded` bytes, seals it as the reservation says (type 4, its
   * index and counter) and sends it to `to`, after everything sent before; never throws.
   */
  sendTransport?(packet: Uint8Array, padded: number, r: Readonly<TransportReservation>, to: BindEndpoint): void;
  /** SO_MARK for outgoing packets where supported (0 clears). */
  setMark(mark: number): void;
  /** Closes the sockets; resolves when they are closed. */
  close(): Promise<void>;
}
