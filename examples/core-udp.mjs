// The sans-I/O core on two real UDP sockets on 127.0.0.1: alice and bob handshake, then alice
// sends bob a packet through the tunnel. The core never touches a socket or a timer: this
// program feeds it datagrams and the time, and it answers through the `io` callbacks.
//
//   node examples/core-udp.mjs
import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { Endpoint, generatePrivateKey, publicKey, systemRng } from 'wireweave/core';
import { defaultCrypto } from 'wireweave/crypto';

const now = () => performance.now();
const epochAtStart = Date.now() - now();

/** One side: a UDP socket and an Endpoint driven by it and by one timer. */
async function side(name, privateKey, onPacket) {
  const socket = dgram.createSocket('udp4');
  const addressOf = new Map(); // peer id → { address, port }, learnt or configured
  let timer;
  /** @type {Endpoint<{ address: string, port: number }>} the source of a datagram: its address */
  const endpoint = new Endpoint({
    crypto: defaultCrypto,
    privateKey,
    wallClock: (t) => epochAtStart + t, // for the handshake's TAI64N timestamps
    io: {
      sendToPeer: (peer, datagram) => {
        const to = addressOf.get(peer);
        if (to) socket.send(datagram, to.port, to.address); // sent synchronously, so no copy
      },
      sendToSource: (source, datagram) => socket.send(datagram, source.port, source.address),
      deliver: (peer, packet) => onPacket(packet.slice()), // a view valid only during the call
      authenticated: (peer, source) => addressOf.set(peer, source), // roaming
      sourceTag: (source) => new TextEncoder().encode(`${source.address}:${source.port}`), // for cookies
      event: (e) => console.log(`${name}: ${e.type}`),
    },
  });
  // The one timer: call tick() at nextDeadline().
  const schedule = () => {
    clearTimeout(timer);
    const at = endpoint.nextDeadline();
    if (at !== Infinity) timer = setTimeout(() => { endpoint.tick(now()); schedule(); }, Math.max(0, at - now()));
  };
  socket.on('message', (m, rinfo) => {
    endpoint.recv(now(), new Uint8Array(m.buffer, m.byteOffset, m.length), { address: rinfo.address, port: rinfo.port });
    schedule();
  });
  await new Promise((resolve) => socket.bind(0, '127.0.0.1', () => resolve(undefined)));
  return {
    endpoint, addressOf, schedule, port: socket.address().port,
    close: () => { clearTimeout(timer); socket.close(); },
  };
}

const aliceKey = generatePrivateKey(systemRng);
const bobKey = generatePrivateKey(systemRng);
let received;
const arrived = new Promise((resolve) => { received = resolve; });

const alice = await side('alice', aliceKey, () => {});
const bob = await side('bob', bobKey, (packet) => received(packet));

// Each knows the other's public key; alice also knows where bob is.
const bobAtAlice = alice.endpoint.addPeer({ publicKey: publicKey(defaultCrypto, bobKey) }, now());
bob.endpoint.addPeer({ publicKey: publicKey(defaultCrypto, aliceKey) }, now());
alice.addressOf.set(bobAtAlice, { address: '127.0.0.1', port: bob.port });

// The first packet is queued while the handshake runs, then sent encrypted.
const result = alice.endpoint.send(now(), bobAtAlice, new TextEncoder().encode('hello through the tunnel'));
alice.schedule();
console.log(`alice: send → ${result}`);

const packet = await arrived;
// Plaintext is padded to a multiple of 16 bytes; an IP packet says its own length.
console.log(`bob: received "${new TextDecoder().decode(packet).replace(/\0+$/, '')}"`);
console.log(`bob: ${bob.endpoint.counters.dataPacketsReceived} data packet(s), ${bob.endpoint.counters.handshakesCompleted} handshake(s)`);
alice.close();
bob.close();
