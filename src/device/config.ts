/**
 * The device's configuration model, shared by the UAPI (uapi.ts), the typed library API and
 * wg-quick files. A `SetRequest` is a fully parsed and validated `set=1` operation: the device
 * applies it all or nothing.
 */
import { WireweaveError } from '../core/errors.ts';


/** An IP prefix such as 10.0.0.0/24 or fd00::/64; `bytes` has 4 or 16 bytes, host bits zeroed. */
export interface Prefix {
  readonly family: 4 | 6;
  readonly bytes: Uint8Array;
  readonly bits: number;
}

export interface EndpointAddress {
  readonly address: string;
  readonly port: number;
}

export interface PeerChange {
  publicKey: Uint8Array;
  /** `remove=true`: delete the peer (other keys for it are ignored, as in wireguard-go). */
  remove: boolean;
  /** `update_only=true`: only change an existing peer, never create one. */
  updateOnly: boolean;
  /** undefined = unchanged; null = clear (all-zero key). */
  presharedKey?: Uint8Array | null;
  endpoint?: EndpointAddress;
  /** Seconds; undefined = unchanged. */
  persistentKeepalive?: number;
  replaceAllowedIps: boolean;
  /** Applied in order after a replace: additions and `-prefix` removals. */
  allowedIps: { op: 'add' | 'remove'; prefix: Prefix }[];
}

export interface SetRequest {
  /** undefined = unchanged; null = clear. */
  privateKey?: Uint8Array | null;
  listenPort?: number;
  fwmark?: number;
  replacePeers: boolean;
  peers: PeerChange[];
}

export interface PeerState {
  publicKey: Uint8Array;
  presharedKey: Uint8Array | null;
  endpoint: string | null;
  /** Wall-clock time of the last handshake, 0 if none. */
  lastHandshakeTimeSec: number;
  lastHandshakeTimeNsec: number;
  rxBytes: number;
  txBytes: number;
  persistentKeepalive: number;
  allowedIps: Prefix[];
  protocolVersion: number;
}

export interface DeviceState {
  privateKey: Uint8Array | null;
  listenPort: number;
  fwmark: number;
  peers: PeerState[];
}

/**
 * A DeviceState whose peers are made one at a time while they are read, each valid only until
 * the next: `get=1` of 10,000 peers then leaves no array of 10,000 objects to the collector.
 */
export interface DeviceStateStream extends Omit<DeviceState, 'peers'> {
  peerCount: number;
  peers: Iterable<PeerState>;
}

/** What the UAPI needs from a device. */
export interface UapiTarget {
  /** The configuration and peer statistics for `get=1`. */
  getState(): DeviceState;
  /** The same, streamed (preferred by the UAPI when present; see DeviceStateStream). */
  streamState?(): DeviceStateStream;
  /** Applies a validated request all or nothing; throws a UapiError (with errno) when it cannot. */
  applySet(request: SetRequest): Promise<void>;
}

/** errno values wireguard-go answers with (sent negated as `errno=-N`). */
export const Errno = {
  EPERM: 1,
  EIO: 5,
  EBADMSG: 74,
  EINVAL: 22,
  EADDRINUSE: 98,
  EPROTO: 71,
  ENOENT: 2,
} as const;

export class UapiError extends WireweaveError {
  readonly errno: number;
  declare readonly code: 'ERR_UAPI';
  constructor(errno: number, message: string) {
    super('ERR_UAPI', message);
    this.name = 'UapiError';
    this.errno = errno;
  }
}
