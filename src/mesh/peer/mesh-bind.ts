/**
 * The device's UDP bind, wrapped for the mesh (docs/mesh.md §3). To the device a relayed peer is
 * one more endpoint: `127.3.3.40:N` (N the peer's relay slot; no socket uses that address, and
 * `wg show` prints it as any endpoint). Datagrams to such an endpoint go to the hub as a
 * `SendPacket`; what the hub relays is handed to the device as if it came from it, so the core's
 * roaming moves a peer between relay and direct like any endpoint change. Path probes arriving
 * on the socket are taken out before the device sees them; everything else passes unchanged.
 */
import type { Bind, BindEndpoint, BindReceiver } from '../../device/bind.ts';
import { isProbe } from '../protocol/probe.ts';

/** The address relay endpoints are written with (as Tailscale writes DERP regions). */
export const RELAY_ADDRESS = '127.3.3.40';
export const MAX_RELAY_SLOT = 65535;

function isRelayEndpoint(e: { address: string }): boolean {
  return e.address === RELAY_ADDRESS;
}

export interface MeshBindHooks {
  /** A WireGuard datagram for relay slot `slot`; false when it could not be sent (counted). */
  relay(slot: number, datagram: Uint8Array): boolean;
  /** A path probe that arrived on the UDP socket. */
  probe(datagram: Uint8Array, from: BindEndpoint): void;
}

export interface MeshBindCounters {
  relayedOut: number;
  relayedIn: number;
  relayDropped: number;
  probesIn: number;
}

export class MeshBind implements Bind {
  readonly inner: Bind;
  readonly counters: MeshBindCounters = { relayedOut: 0, relayedIn: 0, relayDropped: 0, probesIn: 0 };
  private receiver: BindReceiver | null = null;
  private hooks: MeshBindHooks | null = null;

  constructor(inner: Bind) {
    this.inner = inner;
  }

  /** The mesh node, once it runs; until then relayed sends are dropped (counted). */
  setHooks(hooks: MeshBindHooks | null): void {
    this.hooks = hooks;
  }

  get port(): number {
    return this.inner.port;
  }

  open(port: number, receiver: BindReceiver): Promise<number> {
    this.receiver = receiver;
    return this.inner.open(port, (d, from) => {
      if (isProbe(d)) {
        this.counters.probesIn++;
        this.hooks?.probe(d, from);
        return;
      }
      receiver(d, from);
    });
  }

  send(datagram: Uint8Array, to: BindEndpoint): void {
    if (!isRelayEndpoint(to)) {
      this.inner.send(datagram, to);
      return;
    }
    if (this.hooks?.relay(to.port, datagram)) this.counters.relayedOut++;
    else this.counters.relayDropped++;
  }

  /** A datagram straight to the UDP socket (probes), whatever the endpoint's kind. */
  sendDirect(datagram: Uint8Array, to: BindEndpoint): void {
    if (!isRelayEndpoint(to)) this.inner.send(datagram, to);
  }

  /** Hands a relayed datagram to the device as coming from relay slot `slot`. */
  deliverRelayed(slot: number, datagram: Uint8Array): void {
    if (!this.receiver) return;
    this.counters.relayedIn++;
    this.receiver(datagram, this.inner.endpointFor(RELAY_ADDRESS, slot));
  }

  endpointFor(address: string, port: number): BindEndpoint {
    return this.inner.endpointFor(address, port);
  }

  clearSource(endpoint: BindEndpoint): BindEndpoint {
    return this.inner.clearSource ? this.inner.clearSource(endpoint) : endpoint;
  }

  setMark(mark: number): void {
    this.inner.setMark(mark);
  }

  close(): Promise<void> {
    this.receiver = null;
    return this.inner.close();
  }
}
