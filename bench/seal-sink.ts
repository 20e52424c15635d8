/**
 * The far end of bench/seal-rate.ts: a core Endpoint (test/support/udp-endpoint.ts) on B's
 * underlay address that answers the daemon's handshakes and nothing else. Transport messages
 * never reach it: an nftables rule in B counts and drops them before the socket, so the sink
 * costs no decryption and the daemon's send rate is the only limit being measured.
 *
 *   node --import tsx bench/seal-sink.ts HOST PORT KEY_FILE PEER_PUBLIC_KEY_B64
 *
 * KEY_FILE holds the sink's private key (base64; a 0600 file, removed once read: secrets stay
 * off command lines). Prints "listening PORT", then one "initiation N" line per handshake
 * initiation received (and answered); on SIGTERM/SIGINT a JSON line with its counters, then exits.
 */
import fs from 'node:fs';
import { decodeBase64 } from '../src/core/keys.ts';
import { UdpEndpoint } from '../test/support/udp-endpoint.ts';

const [host, portArg, keyFile, peerB64] = process.argv.slice(2);
if (!host || !portArg || !keyFile || !peerB64) {
  process.stderr.write('usage: seal-sink.ts HOST PORT KEY_FILE PEER_PUBLIC_KEY_B64\n');
  process.exit(2);
}
const privateKey = decodeBase64(fs.readFileSync(keyFile, 'utf8').trim());
fs.rmSync(keyFile, { force: true });

const sink = new UdpEndpoint({ privateKey });
// The responder's session is confirmed by the first transport message, which the nft rule
// drops: so count the initiations that reach us (each one is answered) instead.
let initiations = 0;
let other = 0;
sink.socket.on('message', (m) => {
  if (m.length > 0 && m[0] === 1) process.stdout.write(`initiation ${++initiations}\n`);
  else other++;
});
sink.addPeer(decodeBase64(peerB64), null);

sink.socket.bind(Number(portArg), host, () => {
  process.stdout.write(`listening ${sink.socket.address().port}\n`);
});

function finish(): void {
  const c = sink.endpoint.counters;
  process.stdout.write(`${JSON.stringify({ initiations, otherDatagrams: other, handshakeResponses: c.handshakeResponsesSent, dropped: c.dropped })}\n`);
  sink.close();
  process.exit(0);
}
process.on('SIGTERM', finish);
process.on('SIGINT', finish);
