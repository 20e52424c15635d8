/**
 * `wireweave/device`: a WireGuard interface (the core Endpoint joined to a TUN, a UDP bind and
 * a clock, with cryptokey routing and roaming), the edges it is built from, and their in-memory
 * twins, so code built on a Device is tested the way wireweave tests its own.
 */

/** A WireGuard interface: configure it with UAPI text (`ipcSet`) or a SetRequest, then `up()`. */
export { Device } from './device.ts';
/** Device options (its edges, crypto, logger), counters and logger interface. */
export type { DeviceCounters, DeviceLogger, DeviceOptions } from './device.ts';
/** A logger that discards everything (the default). */
export { silentLogger } from './device.ts';

/** The TUN edge: where IP packets enter and leave the device. */
export type { Tun } from './tun.ts';
/** The UDP edge: the device's socket(s), and the remote addresses it hands out. */
export type { Bind, BindEndpoint, BindReceiver } from './bind.ts';
/** The clock edge: monotonic time, wall time for handshake timestamps, timers. */
export type { Clock } from './clock.ts';
/** The real clock (performance.now, unref'd timers). */
export { systemClock } from './clock.ts';

/** The in-memory TUN: `inject` packets into the tunnel, read what the device `written` out. */
export { MemoryTun } from './tun-memory.ts';
/** Options of MemoryTun (name, MTU, poisoning of handed-out views, queue limit). */
export type { MemoryTunOptions } from './tun-memory.ts';
/** An in-memory UDP network and the binds on it: datagrams by address, no sockets. */
export { MemoryBind, MemoryNetwork } from './bind-memory.ts';
/** A clock that moves only when told (`advance(ms)` fires due timers in order). */
export { ManualClock } from './clock.ts';

/** The initiation edge: where a device has handshake initiations computed. */
export type { InitiationOffload } from './initiation-offload.ts';
/** Its in-memory twin: holds jobs until `run()` computes them. */
export { MemoryInitiationOffload } from './initiation-offload.ts';
/** Initiations on a worker thread (started on a burst of them, stopped when idle), and its options. */
export { ThreadInitiationOffload } from './initiation-thread.ts';
export type { InitiationThreadLogger, InitiationThreadOptions } from './initiation-thread.ts';

/** The UDP bind on node:dgram (IPv4 and IPv6 on one port), for any platform. */
export { NodeUdpBind } from './bind-node.ts';
/** Creates a Linux TUN interface (root or CAP_NET_ADMIN). */
export { openLinuxTun } from './linux/tun.ts';
/** The Linux TUN returned by openLinuxTun, and its options. */
export type { LinuxTun, LinuxTunOptions } from './linux/tun.ts';
/** Counters of a LinuxTun and of a NodeUdpBind (packets, batches, drops). */
export type { LinuxTunStats } from './linux/tun.ts';
export type { NodeBindStats } from './bind-node.ts';

/** The configuration model: a parsed `set=1` operation and the state `get=1` reports. */
export type { DeviceState, DeviceStateStream, PeerChange, PeerState, Prefix, SetRequest } from './config.ts';
/** A peer's endpoint as configured (address and port); what a Device serves its UAPI to. */
export type { EndpointAddress, UapiTarget } from './config.ts';
/** A configuration change the device refused; `errno` is what the UAPI reports. */
export { UapiError } from './config.ts';
/** Parses a wg-quick configuration file's text; formats one back. */
export { formatWgQuickConfig, parseWgQuickConfig } from './wgquick.ts';
/** The SetRequest (`wg setconf`) for a parsed wg-quick configuration, endpoints resolved. */
export { toSetRequest } from './wgquick.ts';
/** A wg-quick file the parser rejects (`file:line: problem`, never a key). */
export { WgQuickConfigError } from './wgquick.ts';
/** A parsed wg-quick configuration and its parts. */
export type {
  InterfaceAddress, ParseWgQuickOptions, ToSetRequestOptions, WgQuickConfig, WgQuickEndpoint, WgQuickInterface, WgQuickPeer,
  WgQuickTable,
} from './wgquick.ts';
/** The [Mesh] section of a wg-quick configuration (hubs, network, relay policy). */
export type { MeshRelayPolicy, WgQuickMesh } from './wgquick-mesh.ts';
