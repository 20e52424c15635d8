/**
 * The flooder of test/device/flood.interop.test.ts: sends UDP to a WireGuard port as fast as
 * node:dgram goes, from several sockets, a mix of
 *   (a) garbage: random bytes of random length, and fake transport messages (type 4, random index);
 *   (b) handshake initiations with a valid mac1 for the target's public key and random contents,
 *       half of them with no mac2 (zeros) and half with a random one;
 *   (c) replays of one captured genuine initiation (hex on the command line).
 * It counts what it sent and the cookie replies (type 3) that came back, and prints one JSON
 * line when done (after `seconds`, or on SIGTERM/SIGINT). SIGUSR1 pauses and resumes it.
 *
 *   node --import tsx test/support/flood-sender.ts HOST PORT PUBKEY_B64 REPLAY_HEX SECONDS [SOCKETS [LOCAL_ADDRS]]
 *
 * With LOCAL_ADDRS (comma-separated), SOCKETS sockets are bound to each of those addresses, so
 * the flood comes from many sources.
 *
 * FLOOD_PPS=N caps the rate at N datagrams a second (bench/flood-cost.ts measures per datagram).
 *
 * Everything the flooder knows is public (the target's public key, a datagram seen on the wire).
 */
import dgram from 'node:dgram';
import crypto from 'node:crypto';
import { nodeCrypto } from '../../src/crypto/node.ts';

export interface FloodReport {
  seconds: number;
  sent: { garbage: number; mac1Initiations: number; mac1RandomMac2: number; replays: number };
  sendErrors: number;
  cookieReplies: number;
  otherReplies: number;
}

const [host, portArg, pubB64, replayHex, secondsArg, socketsArg, localArg] = process.argv.slice(2);
if (!host || !portArg || !pubB64 || replayHex === undefined || !secondsArg) {
  process.stderr.write('usage: flood-sender.ts HOST PORT PUBKEY_B64 REPLAY_HEX SECONDS [SOCKETS]\n');
  process.exit(2);
}
const port = Number(portArg);
const seconds = Number(secondsArg);
const nSockets = Number(socketsArg ?? 2);

// (b): a pool of distinct initiations with random contents and a valid mac1.
const mac1Key = nodeCrypto.hash([new TextEncoder().encode('mac1----'), Buffer.from(pubB64, 'base64')]);
const POOL = 2048;
const inits: Buffer[] = [];
for (let i = 0; i < POOL; i++) {
  const m = crypto.randomBytes(148);
  m[0] = 1; m[1] = 0; m[2] = 0; m[3] = 0;
  m.set(nodeCrypto.mac(mac1Key, m.subarray(0, 116)), 116);
  if (i % 2 === 0) m.fill(0, 132); // no mac2: no cookie
  inits.push(m);
}
// (a): garbage, half of it shaped like transport messages so it reaches the index lookup.
const garbage: Buffer[] = [];
for (let i = 0; i < POOL; i++) {
  const m = crypto.randomBytes(32 + crypto.randomInt(1400));
  if (i % 2 === 0) { m[0] = 4; m[1] = 0; m[2] = 0; m[3] = 0; }
  garbage.push(m);
}
const replay = Buffer.from(replayHex, 'hex');

const report: FloodReport = { seconds: 0, sent: { garbage: 0, mac1Initiations: 0, mac1RandomMac2: 0, replays: 0 }, sendErrors: 0, cookieReplies: 0, otherReplies: 0 };
const t0 = performance.now();
let stopped = false;
// SIGUSR1 pauses and resumes the flood (for interleaved measurements); `seconds` counts only
// the time it was flooding.
let paused = false;
let activeMs = 0;
let activeSince = t0;
const resumers: (() => void)[] = [];
let k = 0;
let nInit = 0;
const sockets: dgram.Socket[] = [];

function next(): Buffer {
  const i = k++;
  const which = i % 3;
  if (which === 0) { report.sent.garbage++; return garbage[i % POOL]!; }
  if (which === 1 || replay.length === 0) {
    const j = nInit++; // even: no mac2, odd: a random one (POOL is even)
    if (j % 2 === 0) report.sent.mac1Initiations++;
    else report.sent.mac1RandomMac2++;
    return inits[j % POOL]!;
  }
  report.sent.replays++;
  return replay;
}

/** FLOOD_PPS: a cap on datagrams a second over all sockets (bench/flood-cost.ts); unset: none. */
const PPS = Number(process.env.FLOOD_PPS ?? 0);
let sentTotal = 0;
const underCap = (): boolean => PPS <= 0 || sentTotal < (PPS * (performance.now() - t0)) / 1000;

function pump(s: dgram.Socket): void {
  let inFlight = 0;
  let waiting = false;
  const go = (): void => {
    while (!stopped && !paused && inFlight < 32) {
      if (!underCap()) {
        if (!waiting) { waiting = true; setTimeout(() => { waiting = false; go(); }, 1); }
        return;
      }
      sentTotal++;
      inFlight++;
      s.send(next(), port, host, (err) => {
        inFlight--;
        if (err) report.sendErrors++;
        if (inFlight === 0 && !paused) setImmediate(go); // yield so replies are read
      });
    }
  };
  resumers.push(go);
  go();
}

function finish(): void {
  if (stopped) return;
  stopped = true;
  report.seconds = (activeMs + (paused ? 0 : performance.now() - activeSince)) / 1000;
  // Let replies in flight arrive, then report.
  setTimeout(() => {
    process.stdout.write(JSON.stringify(report) + '\n');
    for (const s of sockets) s.close();
    process.exit(0);
  }, 300);
}

const locals = localArg ? localArg.split(',') : [undefined];
for (let i = 0; i < nSockets * locals.length; i++) {
  const local = locals[i % locals.length];
  const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  s.on('message', (m) => {
    if (m.length === 64 && m[0] === 3) report.cookieReplies++;
    else report.otherReplies++;
  });
  s.on('error', () => { report.sendErrors++; });
  s.bind({ port: 0, address: local }, () => pump(s));
  sockets.push(s);
}
process.stdout.write('flooding\n');
setTimeout(finish, seconds * 1000);
process.on('SIGTERM', finish);
process.on('SIGUSR1', () => {
  paused = !paused;
  if (paused) activeMs += performance.now() - activeSince;
  else {
    activeSince = performance.now();
    for (const go of resumers) setImmediate(go);
  }
  process.stdout.write(paused ? 'paused\n' : 'resumed\n');
});
process.on('SIGINT', finish);
