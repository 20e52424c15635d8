/**
 * The UDP edge. A Bind owns the device's UDP socket(s): IPv4 and IPv6 on one port.
 * Datagrams that are not WireGuard messages are handed to `onForeign` so other protocols
 * (STUN, discovery, relays) can share the port.
 */

/** A remote UDP address. Instances come from `endpointFor` and may be cached and compared by identity. */
export interface BindEndpoint {
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
  /** "1.2.3.4:51820" or "[::1]:51820", as `wg` prints it. */
  readonly text: string;
  /** IP bytes ‖ port (big-endian), for cookies. */
  readonly tag: Uint8Array;
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
  /** The canonical endpoint object for an address (IPv4-mapped IPv6 folded to IPv4). */
  endpointFor(address: string, port: number): BindEndpoint;
  /** SO_MARK for outgoing packets where supported (0 clears). */
  setMark(mark: number): void;
  close(): Promise<void>;
}
