// Rootless: two tunnels with their own userspace TCP/IP stacks on UDP sockets on 127.0.0.1 (no
// root, no TUN, no peer of your own). bob serves node:http on his tunnel address; alice
// fetches from it through the tunnel. With a real peer, pass netstack() your wg-quick file's
// path instead (`await netstack('./wg0.conf')`).
//
//   node examples/netstack-fetch.mjs
import http from 'node:http';
import { encodeBase64, generatePrivateKey, publicKey, systemRng } from 'wireweave/core';
import { defaultCrypto } from 'wireweave/crypto';
import { netstack } from 'wireweave/netstack';

const aliceKey = generatePrivateKey(systemRng);
const bobKey = generatePrivateKey(systemRng);
const pub = (key) => encodeBase64(publicKey(defaultCrypto, key));

const bob = await netstack(`[Interface]
PrivateKey = ${encodeBase64(bobKey)}
Address = 10.0.0.2/24

[Peer]
PublicKey = ${pub(aliceKey)}
AllowedIPs = 10.0.0.1/32
`);
const alice = await netstack(`[Interface]
PrivateKey = ${encodeBase64(aliceKey)}
Address = 10.0.0.1/24

[Peer]
PublicKey = ${pub(bobKey)}
AllowedIPs = 10.0.0.2/32
Endpoint = 127.0.0.1:${bob.port}
`);

// bob: an ordinary node:http server whose connections come from the tunnel.
const web = http.createServer((req, res) => res.end(`hello ${req.socket.remoteAddress}, this is bob\n`));
bob.listen(80).on('connection', (socket) => web.emit('connection', socket));

// alice: fetch, connect, udp, resolve and ping all go through the tunnel.
const res = await alice.fetch('http://10.0.0.2/');
console.log(`alice: GET http://10.0.0.2/ → ${res.status}: ${(await res.text()).trim()}`);

// Fails closed: an address outside every peer's AllowedIPs is never dialled from the host.
await alice.fetch('http://192.0.2.80/').catch((err) => console.log(`alice: GET http://192.0.2.80/ → ${err.code}`));

await alice.close();
await bob.close();
web.close();
