/**
 * A minimal real-time driver for a core Endpoint on a loopback UDP socket, for tests that talk
 * to real peers (wireguard-go). The device layer has the production version of this.
 */
import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { Endpoint } from '../../src/core/endpoint.ts';
import type { EndpointEvent, EndpointOptions } from '../../src/core/endpoint.ts';
import type { PeerId } from '../../src/core/peer.ts';
import { nodeCrypto } from '../../src/crypto/node.ts';
import { parseIPv4 } from './ip.ts';

export interface UdpAddress { address: string; port: number }

export class UdpEndpoint {
  readonly socket = dgram.createSocket('udp4');
  readonly endpoint: Endpoint<UdpAddress>;
  readonly peerAddress = new Map<PeerId, UdpAddress>();
  readonly delivered: { peer: PeerId; data: Uint8Array }[] = [];
  readonly events: EndpointEvent[] = [];
  /** Called for each delivered packet (after it is recorded). */
  onDeliver: (peer: PeerId, data: Uint8Array) => void = () => {};
  private timer: NodeJS.Timeout | undefined;
  private readonly t0 = performance.now();
  private readonly epoch = Date.now();

  constructor(options: Partial<EndpointOptions<UdpAddress>> & { privateKey: Uint8Array }) {
    this.endpoint = new Endpoint<UdpAddress>({
      crypto: nodeCrypto,
      wallClock: (now) => this.epoch + now,
      io: {
        sendToPeer: (peer, datagram) => {
          const to = this.peerAddress.get(peer);
          if (to) this.socket.send(Buffer.from(datagram), to.port, to.address);
        },
        sendToSource: (source, datagram) => this.socket.send(Buffer.from(datagram), source.port, source.address),
        deliver: (peer, data) => {
          const copy = data.slice();
          this.delivered.push({ peer, data: copy });
          this.onDeliver(peer, copy);
        },
        authenticated: (peer, source) => this.peerAddress.set(peer, source),
        sourceTag: (source) => {
          const tag = new Uint8Array(6);
          tag.set(parseIPv4(source.address));
          tag[4] = source.port >> 8;
          tag[5] = source.port & 0xff;
          return tag;
        },
        event: (e) => this.events.push(e),
      },
      ...options,
    });
    this.socket.on('message', (msg, rinfo) => {
      this.endpoint.recv(this.now(), new Uint8Array(msg.buffer, msg.byteOffset, msg.length), { address: rinfo.address, port: rinfo.port });
      this.schedule();
    });
  }

  now(): number {
    return performance.now() - this.t0;
  }

  async bind(): Promise<number> {
    await new Promise<void>((resolve) => this.socket.bind(0, '127.0.0.1', resolve));
    return this.socket.address().port;
  }

  addPeer(publicKey: Uint8Array, address: UdpAddress | null, extra: { presharedKey?: Uint8Array } = {}): PeerId {
    const id = this.endpoint.addPeer({ publicKey, ...extra }, this.now());
    if (address) this.peerAddress.set(id, address);
    this.schedule();
    return id;
  }

  send(peer: PeerId, packet: Uint8Array): void {
    this.endpoint.send(this.now(), peer, packet);
    this.schedule();
  }

  /** Resolves with the first delivered packet matching `predicate`, or rejects after `ms`. */
  waitFor(predicate: (data: Uint8Array) => boolean, ms: number, what: string): Promise<Uint8Array> {
    const found = this.delivered.find((d) => predicate(d.data));
    if (found) return Promise.resolve(found.data);
    return new Promise((resolve, reject) => {
      const prev = this.onDeliver;
      const t = setTimeout(() => { this.onDeliver = prev; reject(new Error(`timed out after ${ms} ms waiting for ${what}`)); }, ms);
      this.onDeliver = (peer, data) => {
        prev(peer, data);
        if (predicate(data)) { clearTimeout(t); this.onDeliver = prev; resolve(data); }
      };
    });
  }

  private schedule(): void {
    clearTimeout(this.timer);
    const deadline = this.endpoint.nextDeadline();
    if (deadline === Infinity) return;
    this.timer = setTimeout(() => { this.endpoint.tick(this.now()); this.schedule(); }, Math.max(0, deadline - this.now()));
  }

  close(): void {
    clearTimeout(this.timer);
    this.socket.close();
  }
}
