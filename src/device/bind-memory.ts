/**
 * The in-memory twin of the UDP bind: binds on a `MemoryNetwork` exchange datagrams by
 * address without sockets. Tests can drop, hold or inspect traffic on the network.
 */
import type { Bind, BindEndpoint, BindReceiver } from './bind.ts';
import { EndpointCache } from './endpoint-address.ts';
import { WireweaveError } from '../core/errors.ts';

export class MemoryNetwork {
  private readonly listeners = new Map<string, { bind: MemoryBind; receiver: BindReceiver }>();
  private nextPort = 40000;
  /** Return false to drop a datagram. */
  filter: (datagram: Uint8Array, from: BindEndpoint, to: BindEndpoint) => boolean = () => true;
  delivered = 0;
  dropped = 0;

  /** Binds `address:port` (0: a free port) to a MemoryBind; returns the port. EADDRINUSE if taken. */
  attach(address: string, port: number, bind: MemoryBind, receiver: BindReceiver): number {
    if (port === 0) while (this.listeners.has(`${address}|${(port = this.nextPort++)}`));
    const key = `${address}|${port}`;
    if (this.listeners.has(key)) throw new WireweaveError('EADDRINUSE', `address in use: ${address}:${port}`);
    this.listeners.set(key, { bind, receiver });
    return port;
  }

  /** Frees `address:port`. */
  detach(address: string, port: number): void {
    this.listeners.delete(`${address}|${port}`);
  }

  /** Hands a datagram to the bind at `to`, if any (else it is lost, as on a network). */
  deliver(datagram: Uint8Array, from: BindEndpoint, to: BindEndpoint): void {
    const l = this.listeners.get(`${to.address}|${to.port}`);
    if (!l || !this.filter(datagram, from, to)) { this.dropped++; return; }
    this.delivered++;
    const copy = datagram.slice();
    // Asynchronous like a real network, so no call re-enters the sender.
    queueMicrotask(() => l.receiver(copy, l.bind.endpointFor(from.address, from.port)));
  }
}

export class MemoryBind implements Bind {
  port = 0;
  /** Our address on the memory network; change it to simulate roaming. */
  address: string;
  readonly network: MemoryNetwork;
  readonly sent: { to: BindEndpoint; length: number }[] = [];
  private receiver: BindReceiver | null = null;
  private readonly endpoints = new EndpointCache();

  constructor(network: MemoryNetwork, address: string) {
    this.network = network;
    this.address = address;
  }

  async open(port: number, receiver: BindReceiver): Promise<number> {
    await this.close();
    this.receiver = receiver;
    this.port = this.network.attach(this.address, port, this, receiver);
    return this.port;
  }

  /** Moves this bind to another address (roaming), keeping the port. */
  moveTo(address: string): void {
    if (!this.receiver) { this.address = address; return; }
    this.network.detach(this.address, this.port);
    this.address = address;
    this.network.attach(address, this.port, this, this.receiver);
  }

  send(datagram: Uint8Array, to: BindEndpoint): void {
    this.sent.push({ to, length: datagram.length });
    this.network.deliver(datagram, this.endpointFor(this.address, this.port), to);
  }

  endpointFor(address: string, port: number): BindEndpoint {
    return this.endpoints.get(address, port);
  }

  setMark(_mark: number): void {}

  /** Frees the address and port. */
  async close(): Promise<void> {
    if (this.receiver) this.network.detach(this.address, this.port);
    this.receiver = null;
  }
}
