/**
 * Two rootless wireweave netstacks (alice 10.0.0.1, bob 10.0.0.2) joined by a MemoryNetwork, with
 * fresh keys, for the netstack tests. `stack` chooses the TCP/IP stack: the real one (default
 * once it exists) or the FakeStack stand-in.
 */
import { encodeBase64, generatePrivateKey } from '../../src/core/keys.ts';
import { systemRng } from '../../src/core/rng.ts';
import { nodeCrypto } from '../../src/crypto/node.ts';
import { MemoryBind, MemoryNetwork } from '../../src/device/bind-memory.ts';
import { netstack } from '../../src/netstack/api.ts';
import type { Netstack, NetstackOptions, StackFactory } from '../../src/netstack/api.ts';
import type { TcpConnection } from '../../src/netstack/stack/types.ts';
import { FakeStack } from './fake-stack.ts';

export interface Pair {
  network: MemoryNetwork;
  alice: Netstack;
  bob: Netstack;
  aliceBind: MemoryBind;
  bobBind: MemoryBind;
  fakes: FakeStack[];
  close(): Promise<void>;
}

export function keyPair(): { priv: string; pub: string } {
  const priv = generatePrivateKey(systemRng);
  return { priv: encodeBase64(priv), pub: encodeBase64(nodeCrypto.x25519PrivateKey(priv).publicKey) };
}

export interface PairOptions {
  fake?: boolean;
  /** Extra lines for alice's [Interface] (e.g. DNS). */
  aliceInterface?: string;
  /** bob's allowed IPs as alice sees them (default 10.0.0.2/32, fd00::2/128). */
  bobAllowed?: string;
  options?: NetstackOptions;
}

export async function makePair(opts: PairOptions = {}): Promise<Pair> {
  const network = new MemoryNetwork();
  const a = keyPair(), b = keyPair();
  const aliceBind = new MemoryBind(network, '192.0.2.1');
  const bobBind = new MemoryBind(network, '192.0.2.2');
  const fakes: FakeStack[] = [];
  const createStack: StackFactory | undefined = opts.fake
    ? (config, io) => { const s = new FakeStack(config, io); fakes.push(s); return s; }
    : undefined;
  const alice = await netstack(`[Interface]
PrivateKey = ${a.priv}
Address = 10.0.0.1/24, fd00::1/64
${opts.aliceInterface ?? ''}

[Peer]
PublicKey = ${b.pub}
AllowedIPs = ${opts.bobAllowed ?? '10.0.0.2/32, fd00::2/128'}
Endpoint = 192.0.2.2:51820
`, { ...opts.options, bind: aliceBind, createStack, name: 'alice' });
  const bob = await netstack(`[Interface]
PrivateKey = ${b.priv}
ListenPort = 51820
Address = 10.0.0.2/24, fd00::2/64

[Peer]
PublicKey = ${a.pub}
AllowedIPs = 10.0.0.1/32, fd00::1/128
`, { ...opts.options, bind: bobBind, createStack, name: 'bob' });
  return {
    network, alice, bob, aliceBind, bobBind, fakes,
    // Together: each drains its connections to the other, which must be up to acknowledge them.
    close: async () => {
      // An impaired link is healed first: were the last ACK of a close lost, its peer would
      // retransmit into a tunnel already gone and fail its close, as over any TCP. An ACK lost
      // before the heal is the same: its sender retransmits at its next timeout, and the end in
      // TIME-WAIT must still be up to answer. So both wait for that before either goes down.
      network.filter = () => true;
      const deadline = performance.now() + 10_000;
      while ((awaitingAck(alice) || awaitingAck(bob)) && performance.now() < deadline) {
        await new Promise((r) => setTimeout(r, 10));
      }
      await Promise.all([alice.close(), bob.close()]);
    },
  };
}

/** A connection of `net` that has sent an end whose acknowledgment has not come (yet). */
function awaitingAck(net: Netstack): boolean {
  // The tunnel keeps these private: only this harness needs to look before a close.
  const inner = net as unknown as { sockets: Set<{ conn: TcpConnection | null }>; lingering: Set<TcpConnection> };
  const waiting = (c: TcpConnection | null) => c !== null && (c.state === 'FIN-WAIT-1' || c.state === 'CLOSING' || c.state === 'LAST-ACK');
  for (const s of inner.sockets) if (waiting(s.conn)) return true;
  for (const c of inner.lingering) if (waiting(c)) return true;
  return false;
}
