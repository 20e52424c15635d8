/**
 * `wireweave demo`: two WireGuard endpoints, alice and bob, in this process, each with its own
 * real UDP socket on 127.0.0.1. No root, no TUN device, no configuration: keys are generated
 * afresh, and alice sends numbered ping-like packets that bob answers, while a transcript says
 * what the protocol does (handshake, roaming, rekeys, keepalives).
 *
 * The protocol clock (the `now` given to the endpoints) runs `--speed` times faster than real
 * time, so the timers that matter (a rekey every 120 s, a keepalive after 10 s of silence) fire
 * within a few real seconds. The endpoint timers are armed on the same scaled clock, and the
 * endpoints' wall clock (for handshake timestamps) is the start time plus the protocol time.
 *
 * The drivers are written the way a real one is: on a datagram, `recv`; on `sendToPeer`, a UDP
 * send to the peer's current address (alice is told bob's; bob learns alice's from her first
 * authenticated packet); one timer per endpoint, re-armed from `nextDeadline()` after every call.
 */
import { createSocket } from 'node:dgram';
import type { Socket } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import type { Writable } from 'node:stream';
import type { CliIo } from './main.ts';
import { finish, sum16, verifies } from '../core/checksum.ts';
import { KEEPALIVE_TIMEOUT, REKEY_AFTER_TIME, REKEY_TIMEOUT } from '../core/constants.ts';
import type { CryptoProvider } from '../core/crypto.ts';
import { Endpoint, DROP_REASONS } from '../core/endpoint.ts';
import type { EndpointEvent } from '../core/endpoint.ts';
import { encodeBase64, generatePresharedKey, generatePrivateKey } from '../core/keys.ts';
import { Initiation, MESSAGE_COOKIE_REPLY, MESSAGE_RESPONSE, MESSAGE_TRANSPORT, TAG_SIZE, Transport } from '../core/messages.ts';
import type { PeerId } from '../core/peer.ts';
import type { Rng } from '../core/rng.ts';
import { systemRng } from '../core/rng.ts';
import { defaultCrypto } from '../crypto/index.ts';
import type { StackFactory } from '../netstack/api.ts';
import { runNetstackDemo } from './demo-netstack.ts';

const DEMO_USAGE = `Usage: wireweave demo [--seconds N] [--speed N] [--rate N] [--quiet] [--no-netstack]

Runs two WireGuard endpoints, alice and bob, inside this process. Each has its own UDP socket on
127.0.0.1 (loopback only; no root, no TUN device, nothing to configure). alice sends numbered
ping-like packets that bob answers; a transcript shows the handshake, rekeys and keepalives.

The protocol clock runs faster than real time, so a few real seconds cover many minutes of
protocol time and the timers (a new session every 2 minutes, keepalives after 10 s) fire.

Options:
  --seconds N   how long to run, in real seconds (default 12)
  --speed N     how many times faster the protocol clock runs (default 60: 12 s = 12 min;
                at most 200, or a handshake round trip would last seconds of protocol time)
  --rate N      packets per real second alice sends (default 1000, at most 20000); bob
                answers each
  --quiet       print only the summary
  --no-netstack skip the second part: the two peers as rootless netstacks (a userspace
                TCP/IP stack in each tunnel), bob serving HTTP, alice fetching from it
  -h, --help    show this help

Exit status: 0 when every packet arrived intact (and the netstack part worked), 1 when any
was lost or corrupted, the handshake never completed or the netstack part failed.
`;

/** For tests and embedders: keys to use instead of fresh ones, other randomness or crypto. */
export interface DemoOptions {
  keys?: { alice: Uint8Array; bob: Uint8Array; preshared: Uint8Array };
  rng?: Rng;
  crypto?: CryptoProvider;
  /** The TCP/IP stack for the netstack part (tests). */
  createStack?: StackFactory;
}

interface Settings {
  seconds: number;
  speed: number;
  rate: number;
  quiet: boolean;
  netstack: boolean;
}

const LIMITS = { seconds: [1, 3600], speed: [1, 200], rate: [1, 20000] } as const;

/** Parses the arguments; never echoes one (a user may have pasted a key). */
function parseArgs(args: readonly string[]): Settings | { help: true } | { error: string } {
  const settings: Settings = { seconds: 12, speed: 60, rate: 1000, quiet: false, netstack: true };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '-h' || arg === '--help') return { help: true };
    if (arg === '-q' || arg === '--quiet') {
      settings.quiet = true;
      continue;
    }
    if (arg === '--no-netstack') {
      settings.netstack = false;
      continue;
    }
    const m = /^--(seconds|speed|rate)(?:=(.*))?$/.exec(arg);
    if (!m) {
      const name = /^-{1,2}[A-Za-z][A-Za-z0-9-]{0,31}$/.test(arg) ? ` '${arg}'` : '';
      return { error: `unknown argument${name}; run 'wireweave demo --help' for the options` };
    }
    const name = m[1] as keyof typeof LIMITS;
    const text = m[2] ?? args[++i];
    const [min, max] = LIMITS[name];
    const value = Number(text);
    if (text === undefined || !/^\d+(\.\d+)?$/.test(text) || !(value >= min && value <= max)) {
      return { error: `--${name} needs a number from ${min} to ${max}` };
    }
    settings[name] = value;
  }
  return settings;
}

export async function runDemo(args: string[], io: CliIo, options: DemoOptions = {}): Promise<number> {
  const parsed = parseArgs(args);
  if ('help' in parsed) {
    await write(io.stdout, DEMO_USAGE);
    return 0;
  }
  if ('error' in parsed) {
    await write(io.stderr, `wireweave: demo: ${parsed.error}\n`);
    return 1;
  }
  const sockets: Socket[] = [];
  let demo: Demo | null = null;
  try {
    sockets.push(await bindLoopback(), await bindLoopback());
    demo = new Demo(parsed, io.stdout, sockets[0]!, sockets[1]!, options);
    await demo.run();
  } catch (err) {
    demo?.shutdown();
    await Promise.all(sockets.map(closeSocket));
    await write(io.stderr, `wireweave: demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  await Promise.all(sockets.map(closeSocket));
  let code = demo.summary();
  if (parsed.netstack) {
    const keys = options.keys && { alice: options.keys.alice, bob: options.keys.bob };
    const ok = await runNetstackDemo(io.stdout, { quiet: parsed.quiet, keys, createStack: options.createStack });
    if (!ok) code = 1;
  }
  await write(io.stdout, '');
  return code;
}

// ---------------------------------------------------------------------------------------------
// The scaled clock

class ProtocolClock {
  readonly speed: number;
  readonly epochStart = Date.now();
  private readonly realStart = performance.now();

  constructor(speed: number) {
    this.speed = speed;
  }

  /** Protocol time in ms since the start: real elapsed time × speed. */
  now(): number {
    return (performance.now() - this.realStart) * this.speed;
  }

  realMs(): number {
    return performance.now() - this.realStart;
  }

  /** The endpoints' wall clock: consistent with `now`, so timestamps advance at the same pace. */
  wall(now: number): number {
    return this.epochStart + now;
  }
}

// ---------------------------------------------------------------------------------------------
// Test traffic: IPv4 ICMP echo request/reply lookalikes with a 32-bit sequence number and a
// payload derived from it, so the receiver can check every byte.

const ALICE_IP = [10, 0, 0, 1] as const;
const BOB_IP = [10, 0, 0, 2] as const;
const ICMP_ECHO_REQUEST = 8;
const ICMP_ECHO_REPLY = 0;
const SMALL = 84;
const LARGE = 1420;
const TUNNEL_MTU = 1420;

function sizeFor(seq: number): number {
  return seq % 2 === 0 ? SMALL : LARGE;
}

function putU16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 0xff;
  b[o + 1] = v & 0xff;
}

function getU16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}

function payloadByte(seq: number, i: number): number {
  return ((seq % 251) * 7 + i) & 0xff;
}

function buildPing(seq: number, type: number, src: readonly number[], dst: readonly number[]): Uint8Array {
  const size = sizeFor(seq);
  const p = new Uint8Array(size);
  p[0] = 0x45; // IPv4, 20-byte header
  putU16(p, 2, size);
  putU16(p, 4, seq & 0xffff);
  putU16(p, 6, 0x4000); // don't fragment
  p[8] = 64; // TTL
  p[9] = 1; // ICMP
  p.set(src, 12);
  p.set(dst, 16);
  putU16(p, 10, finish(sum16(p, 0, 20)));
  p[20] = type;
  putU16(p, 24, 0x5757); // identifier
  putU16(p, 26, seq & 0xffff);
  new DataView(p.buffer).setUint32(28, seq);
  for (let i = 32; i < size; i++) p[i] = payloadByte(seq, i);
  putU16(p, 22, finish(sum16(p, 20, size)));
  return p;
}

/** The sequence number of an intact packet, or what is wrong with it. */
function checkPing(p: Uint8Array, type: number, src: readonly number[], dst: readonly number[]): number | string {
  if (p.length < 32 || p[0] !== 0x45) return 'not an IPv4 packet';
  const total = getU16(p, 2);
  if (total < 32 || total > p.length) return 'IP length does not fit the packet';
  if (!verifies(sum16(p, 0, 20))) return 'bad IP header checksum';
  if (p[9] !== 1 || p[20] !== type) return 'not the expected ICMP message';
  for (let i = 0; i < 4; i++) if (p[12 + i] !== src[i] || p[16 + i] !== dst[i]) return 'wrong addresses';
  for (let i = total; i < p.length; i++) if (p[i] !== 0) return 'padding is not zero';
  if (!verifies(sum16(p, 20, total))) return 'bad ICMP checksum';
  const seq = new DataView(p.buffer, p.byteOffset, p.byteLength).getUint32(28);
  if (total !== sizeFor(seq) || getU16(p, 26) !== (seq & 0xffff)) return 'size or header does not match the sequence number';
  for (let i = 32; i < total; i++) if (p[i] !== payloadByte(seq, i)) return 'payload differs';
  return seq;
}

/** One direction of traffic, counted by the sender and checked by the receiver. */
class Flow {
  readonly label: string;
  sent = 0;
  sentBytes = 0;
  /** send() refused the packet. */
  refused = 0;
  received = 0;
  receivedBytes = 0;
  corrupted = 0;
  outOfOrder = 0;
  duplicates = 0;
  /** Times a packet arrived with earlier ones still missing. */
  gaps = 0;
  /** One past the highest sequence number received. */
  next = 0;
  private readonly seen = new Set<number>();

  constructor(label: string) {
    this.label = label;
  }

  /** Records a checked packet; returns a complaint to print, if any. */
  arrived(seq: number | string, bytes: number): string | null {
    if (typeof seq === 'string') {
      this.corrupted++;
      return this.corrupted <= 5 ? `${this.label}: corrupted packet (${seq})` : null;
    }
    if (this.seen.has(seq)) {
      this.duplicates++;
      return this.duplicates <= 5 ? `${this.label}: packet #${seq} arrived twice` : null;
    }
    this.seen.add(seq);
    this.received++;
    this.receivedBytes += bytes;
    if (seq < this.next) {
      this.outOfOrder++;
      return this.outOfOrder <= 5 ? `${this.label}: packet #${seq} arrived after #${this.next - 1}` : null;
    }
    const skipped = seq - this.next;
    const first = this.next;
    this.next = seq + 1;
    if (skipped === 0) return null;
    this.gaps++;
    if (this.gaps > 5) return null;
    return skipped === 1
      ? `${this.label}: packet #${first} is missing (#${seq} came first)`
      : `${this.label}: packets #${first} to #${seq - 1} are missing (#${seq} came first)`;
  }

  /** Packets overtaken by a later one that have not (yet) arrived. */
  get missing(): number {
    return this.next - this.received;
  }

  get lost(): number {
    return this.sent - this.received;
  }
}

// ---------------------------------------------------------------------------------------------
// UDP

interface UdpAddress {
  readonly address: string;
  readonly port: number;
}

const sameAddress = (a: UdpAddress | null, b: UdpAddress): boolean =>
  a !== null && a.address === b.address && a.port === b.port;

const formatAddress = (a: UdpAddress): string => `${a.address}:${a.port}`;

/** IP address bytes ‖ port (big-endian), for cookies. */
function sourceTag(source: UdpAddress): Uint8Array {
  const parts = source.address.split('.').map(Number);
  const ip = parts.length === 4 && parts.every((n) => Number.isInteger(n) && n >= 0 && n <= 255)
    ? parts : [...new TextEncoder().encode(source.address)];
  const tag = new Uint8Array(ip.length + 2);
  tag.set(ip);
  putU16(tag, ip.length, source.port);
  return tag;
}

function bindLoopback(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket({ type: 'udp4' });
    socket.once('error', reject);
    socket.bind({ address: '127.0.0.1', port: 0 }, () => {
      socket.off('error', reject);
      try {
        // Room for a burst while the event loop is busy; the OS may grant less.
        socket.setRecvBufferSize(4 << 20);
      } catch {
        // keep the default
      }
      resolve(socket);
    });
  });
}

function closeSocket(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    try {
      socket.close(() => resolve());
    } catch {
      resolve(); // already closed
    }
  });
}

function write(stream: Writable, text: string): Promise<void> {
  return new Promise((resolve) => {
    stream.write(text, () => resolve());
  });
}

// ---------------------------------------------------------------------------------------------
// The demo

type Name = 'alice' | 'bob';

/** One endpoint with its socket, its timer and what it is doing (to explain keepalives). */
interface Station {
  readonly name: Name;
  readonly peerName: Name;
  readonly socket: Socket;
  readonly address: UdpAddress;
  readonly endpoint: Endpoint<UdpAddress>;
  peer: PeerId;
  peerAddress: UdpAddress | null;
  timer: NodeJS.Timeout | null;
  armedFor: number;
  doing: 'idle' | 'recvResponse' | 'tick' | 'other';
  datagramsSent: number;
  udpBytesSent: number;
  sendErrors: number;
  noAddress: number;
  /** Echo requests bob has received and will answer once `recv` returns. */
  readonly replies: number[];
}

/** A handshake from its first initiation until the responder confirms the session. */
interface Episode {
  readonly number: number;
  readonly initiator: Name;
  readonly startReal: number;
  readonly detailed: boolean;
  readonly queuedBefore: number;
}

/** Quiet phases: alice pauses 15 s of every minute of protocol time, long enough for a keepalive. */
const CYCLE = 60_000;
const ACTIVE = 45_000;
const isActive = (now: number): boolean => now % CYCLE < ACTIVE;

const TRAFFIC_INTERVAL_MS = 5;

class Demo {
  private readonly settings: Settings;
  private readonly out: Writable;
  /** Restarted when the traffic starts, so that the transcript begins at t+0. */
  private clock: ProtocolClock;
  private readonly alice: Station;
  private readonly bob: Station;
  private readonly publicKeys: Record<Name, string>;
  private readonly aliceToBob = new Flow('alice → bob');
  private readonly bobToAlice = new Flow('bob → alice');

  private closed = false;
  /** The `now` of the endpoint call under way: what happens during it is stamped with that time. */
  private callNow: number | null = null;
  private trafficTimer: NodeJS.Timeout | null = null;
  private stopped: (() => void) | null = null;
  private seq = 0;
  private credit = 1;
  private lastTrafficReal = 0;
  private sendingRealMs = 0;
  private wasActive = true;
  private pausesShown = 0;
  private queuedTotal = 0;
  private readonly reportEvery: number;
  private nextReportAt: number;
  private readonly timeWidth: number;

  private episodes = 0;
  private episode: Episode | null = null;
  private retries = 0;
  private handshakeFailures = 0;
  private readonly keepalivesShown = new Set<string>();

  constructor(settings: Settings, out: Writable, aliceSocket: Socket, bobSocket: Socket, options: DemoOptions) {
    this.settings = settings;
    this.out = out;
    this.clock = new ProtocolClock(settings.speed);
    const crypto = options.crypto ?? defaultCrypto;
    const rng = options.rng ?? systemRng;
    const keys = options.keys ?? {
      alice: generatePrivateKey(rng),
      bob: generatePrivateKey(rng),
      preshared: generatePresharedKey(rng),
    };
    const totalVirtual = settings.seconds * settings.speed * 1000;
    this.reportEvery = reportInterval(totalVirtual);
    this.nextReportAt = this.reportEvery;
    this.timeWidth = Math.max(5, (totalVirtual / 1000).toFixed(1).length);

    const make = (name: Name, socket: Socket, privateKey: Uint8Array): Station => {
      const address = socket.address();
      const station: Station = {
        name, peerName: name === 'alice' ? 'bob' : 'alice', socket,
        address: { address: address.address, port: address.port },
        endpoint: new Endpoint<UdpAddress>({
          crypto, rng, privateKey, mtu: TUNNEL_MTU,
          wallClock: (now) => this.clock.wall(now),
          io: {
            sendToPeer: (_peer, datagram) => this.sendToPeer(station, datagram),
            sendToSource: (source, datagram) => this.udpSend(station, datagram, source),
            deliver: (_peer, packet) => this.deliver(station, packet),
            authenticated: (_peer, source) => this.authenticated(station, source),
            sourceTag,
            event: (event) => this.onEvent(station, event),
          },
        }),
        peer: 0, peerAddress: null, timer: null, armedFor: NaN, doing: 'idle',
        datagramsSent: 0, udpBytesSent: 0, sendErrors: 0, noAddress: 0, replies: [],
      };
      return station;
    };
    this.alice = make('alice', aliceSocket, keys.alice);
    this.bob = make('bob', bobSocket, keys.bob);
    this.publicKeys = {
      alice: encodeBase64(this.alice.endpoint.publicKey!),
      bob: encodeBase64(this.bob.endpoint.publicKey!),
    };
    // Each knows the other's public key and the preshared key; only alice knows where bob is.
    this.alice.peer = this.alice.endpoint.addPeer({ publicKey: this.bob.endpoint.publicKey!, presharedKey: keys.preshared }, 0);
    this.bob.peer = this.bob.endpoint.addPeer({ publicKey: this.alice.endpoint.publicKey!, presharedKey: keys.preshared }, 0);
    this.alice.peerAddress = this.bob.address;
    for (const station of [this.alice, this.bob]) {
      station.socket.on('message', (msg, rinfo) => this.onDatagram(station, msg, { address: rinfo.address, port: rinfo.port }));
      station.socket.on('error', (err) => this.line(`${station.name}: socket error: ${err.message}`, true));
    }
  }

  /** Runs the traffic for the configured time, then waits for packets in flight. */
  async run(): Promise<void> {
    this.header();
    this.clock = new ProtocolClock(this.settings.speed);
    const stopped = new Promise<void>((resolve) => (this.stopped = resolve));
    this.trafficTimer = setInterval(() => this.trafficTick(), TRAFFIC_INTERVAL_MS);
    this.trafficTick();
    await stopped;
    const deadline = this.clock.realMs() + 2000;
    while (this.clock.realMs() < deadline && !this.settled()) await sleep(5);
    this.shutdown();
  }

  /** Stops every timer and ignores the sockets from now on (they are closed by the caller). */
  shutdown(): void {
    this.closed = true;
    if (this.trafficTimer) clearInterval(this.trafficTimer);
    this.trafficTimer = null;
    for (const station of [this.alice, this.bob]) {
      if (station.timer) clearTimeout(station.timer);
      station.timer = null;
    }
  }

  private settled(): boolean {
    return this.aliceToBob.received + this.aliceToBob.corrupted >= this.aliceToBob.sent &&
      this.bobToAlice.received + this.bobToAlice.corrupted >= this.bobToAlice.sent &&
      this.alice.endpoint.inspectPeer(this.alice.peer).queued === 0;
  }

  // ------------------------------------------------------------------ transcript

  private line(text: string, always = false): void {
    if (this.settings.quiet && !always) return;
    const t = ((this.callNow ?? this.clock.now()) / 1000).toFixed(1).padStart(this.timeWidth);
    this.out.write(`[t+${t}s] ${text}\n`);
  }

  private header(): void {
    if (this.settings.quiet) return;
    const s = this.settings;
    const virtual = formatDuration(s.seconds * s.speed * 1000);
    this.out.write(
      'wireweave demo: two WireGuard endpoints in this process, talking over UDP on 127.0.0.1\n' +
      `  alice  public key ${this.publicKeys.alice}  udp ${formatAddress(this.alice.address)}\n` +
      `  bob    public key ${this.publicKeys.bob}  udp ${formatAddress(this.bob.address)}\n` +
      "  They also share a preshared key (not shown). alice is told bob's address; bob learns\n" +
      "  alice's from her first authenticated packet.\n" +
      `  Traffic: alice sends ${fmt(s.rate)} ping-like packets per real second (${SMALL} B and ${LARGE} B,\n` +
      '  numbered), bob answers each, and both check every byte and the order. alice pauses\n' +
      '  for 15 s every minute.\n' +
      `  Times below are protocol time: its clock runs ${fmt(s.speed)}× faster than real time, so this\n` +
      `  ${fmt(s.seconds)} s run covers ${virtual} and the timers (rekey, keepalive) fire as in a real tunnel.\n\n`,
    );
  }

  private onEvent(station: Station, event: EndpointEvent): void {
    const me = station.name, other = station.peerName;
    switch (event.type) {
      case 'handshakeInitiated': {
        if (event.retry) {
          this.retries++;
          this.line(`${pair(me, other)} handshake initiation again: no response within 5 s`);
          return;
        }
        const current = station.endpoint.inspectPeer(station.peer).current;
        let why: string;
        if (!current) why = `no session yet, so ${me}'s first packet waits`;
        else if ((this.callNow ?? this.clock.now()) - current.created >= REKEY_AFTER_TIME) {
          why = `rekey: the session is ${REKEY_AFTER_TIME / 1000} s old`;
        } else if (station.doing === 'tick') {
          why = `${other} has not answered ${me}'s data for ${(KEEPALIVE_TIMEOUT + REKEY_TIMEOUT) / 1000} s`;
        } else why = 'a fresh session';
        if (!this.episode) {
          const number = ++this.episodes;
          this.episode = { number, initiator: me, startReal: this.clock.realMs(), detailed: number <= 2, queuedBefore: this.queuedTotal };
          if (this.episode.detailed) this.line(`${pair(me, other)} handshake initiation (${Initiation.size} B): ${why}`);
        } else if (this.episode.initiator === me) {
          this.line(`${pair(me, other)} handshake initiation again: no response within 5 s`);
        } else {
          this.line(`${pair(me, other)} handshake initiation (${Initiation.size} B) while ${other}'s is under way: ${why}`);
        }
        return;
      }
      case 'handshakeCompleted': {
        const ep = this.episode;
        const s = station.endpoint.inspectPeer(station.peer).current;
        const index = s ? hex32(s.localIndex) : '?';
        if (event.initiator) {
          if (ep?.detailed !== false) {
            this.line(ep?.number === 1
              ? `${solo(me)} handshake complete: session ${index} is up, the waiting packets go out`
              : `${solo(me)} handshake complete: new session ${index}, the old one kept for late packets`);
          }
          return;
        }
        // The responder's side completes when the first packet on the new session arrives.
        const ms = ep ? this.clock.realMs() - ep.startReal : NaN;
        const waited = ep ? this.queuedTotal - ep.queuedBefore : 0;
        if (!ep || ep.detailed) {
          this.line(`${solo(me)} handshake complete: ${other}'s first packet on session ${index} confirms it`);
          if (ep?.number === 1) {
            this.line(`tunnel up: ${ms.toFixed(1)} ms of real time (warm-up included); ${plural(waited, 'packet')} waited for it`);
          } else if (ep) {
            this.line(`rekey #${ep.number - 1} done in ${ms.toFixed(1)} ms of real time; ${waitedText(waited)}`);
          }
        } else {
          this.line(`rekey #${ep.number - 1}: new session in ${ms.toFixed(1)} ms of real time; ${waitedText(waited)}`);
        }
        this.episode = null;
        return;
      }
      case 'handshakeFailed':
        this.handshakeFailures++;
        this.line(`${solo(me)} handshake failed: no answer for 90 s, waiting packets dropped`, true);
        this.episode = null;
        return;
      case 'sessionExpired':
        this.line(`${solo(me)} session ${hex32(event.localIndex)} expired (180 s old) without a new one`);
        return;
      case 'keysZeroed':
        this.line(`${solo(me)} erased all keys for ${other}: no handshake for 9 minutes`);
        return;
      case 'cookieReplySent':
        this.line(`${solo(me)} under load: answered a handshake with a cookie reply`);
        return;
      case 'underLoad':
        this.line(`${solo(me)} ${event.active ? 'is under load: handshakes need a cookie' : 'is no longer under load'}`);
        return;
    }
  }

  private authenticated(station: Station, source: UdpAddress): void {
    if (sameAddress(station.peerAddress, source)) return;
    const first = station.peerAddress === null;
    station.peerAddress = source;
    const whose = station.peerName === 'alice' ? 'her' : 'his';
    this.line(first
      ? `${solo(station.name)} learned ${station.peerName}'s address ${formatAddress(source)} from ${whose} authenticated initiation`
      : `${solo(station.name)} ${station.peerName} roamed to ${formatAddress(source)}: replies go there now`);
  }

  private keepalive(station: Station): void {
    const me = station.name, other = station.peerName;
    let kind: string;
    let why: string;
    if (station.doing === 'recvResponse') {
      kind = 'confirm';
      why = `confirms the new session to ${other} (no data waiting)`;
    } else if (station.doing === 'tick') {
      kind = 'passive';
      why = `${me} received data but has sent nothing for ${KEEPALIVE_TIMEOUT / 1000} s`;
    } else {
      kind = 'other';
      why = 'an empty packet';
    }
    if (this.keepalivesShown.has(kind) || (kind === 'confirm' && this.episode?.detailed === false)) return;
    this.keepalivesShown.add(kind);
    this.line(`${pair(me, other)} keepalive (${Transport.minSize} B): ${why}`);
  }

  private report(): void {
    const a = this.aliceToBob, b = this.bobToAlice;
    const missing = a.missing + b.missing;
    const keepalives = this.alice.endpoint.counters.keepalivesSent + this.bob.endpoint.counters.keepalivesSent;
    const handshakes = this.alice.endpoint.counters.handshakesCompleted;
    const packets = a.received === b.received
      ? `${fmt(a.received)} packets each way`
      : `${fmt(a.received)} packets alice → bob, ${fmt(b.received)} back`;
    this.line(
      `so far: ${packets} (${formatBytes(a.receivedBytes + b.receivedBytes)}), ${fmt(missing)} missing, ` +
      `${plural(handshakes, 'handshake')}, ${plural(keepalives, 'keepalive')}`,
    );
  }

  // ------------------------------------------------------------------ drivers

  private onDatagram(station: Station, msg: Uint8Array, source: UdpAddress): void {
    if (this.closed) return;
    const now = this.clock.now();
    station.doing = msg[0] === MESSAGE_RESPONSE ? 'recvResponse' : 'other';
    this.callNow = now;
    station.endpoint.recv(now, msg, source);
    this.callNow = null;
    station.doing = 'idle';
    this.sendReplies(station, now);
    this.arm(station);
  }

  private sendToPeer(station: Station, datagram: Uint8Array): void {
    const type = datagram[0];
    if (type === MESSAGE_RESPONSE && this.episode?.detailed !== false) {
      this.line(`${pair(station.name, station.peerName)} handshake response (${datagram.length} B)`);
    } else if (type === MESSAGE_TRANSPORT && datagram.length === Transport.minSize) {
      this.keepalive(station);
    }
    if (!station.peerAddress) {
      station.noAddress++;
      return;
    }
    this.udpSend(station, datagram, station.peerAddress);
  }

  private udpSend(station: Station, datagram: Uint8Array, to: UdpAddress): void {
    if (this.closed) return;
    if (datagram[0] === MESSAGE_COOKIE_REPLY) this.line(`${pair(station.name, station.peerName)} cookie reply (${datagram.length} B)`);
    station.datagramsSent++;
    station.udpBytesSent += datagram.length;
    // The endpoint reuses its buffer: hand the socket a copy.
    station.socket.send(Buffer.from(datagram), to.port, to.address, (err) => {
      if (err) station.sendErrors++;
    });
  }

  private deliver(station: Station, packet: Uint8Array): void {
    if (station === this.bob) {
      const seq = checkPing(packet, ICMP_ECHO_REQUEST, ALICE_IP, BOB_IP);
      const complaint = this.aliceToBob.arrived(seq, typeof seq === 'number' ? sizeFor(seq) : 0);
      if (complaint) this.line(complaint, true);
      // Answer after recv() returns: the endpoint is mid-call now.
      if (typeof seq === 'number') station.replies.push(seq);
    } else {
      const seq = checkPing(packet, ICMP_ECHO_REPLY, BOB_IP, ALICE_IP);
      const complaint = this.bobToAlice.arrived(seq, typeof seq === 'number' ? sizeFor(seq) : 0);
      if (complaint) this.line(complaint, true);
    }
  }

  private sendReplies(station: Station, now: number): void {
    if (station.replies.length === 0) return;
    for (const seq of station.replies.splice(0)) {
      this.sendPacket(station, this.bobToAlice, now, buildPing(seq, ICMP_ECHO_REPLY, BOB_IP, ALICE_IP));
    }
  }

  private sendPacket(station: Station, flow: Flow, now: number, packet: Uint8Array): void {
    this.callNow = now;
    const result = station.endpoint.send(now, station.peer, packet);
    this.callNow = null;
    if (result === 'dropped') {
      flow.refused++;
      return;
    }
    if (result === 'queued') this.queuedTotal++;
    flow.sent++;
    flow.sentBytes += packet.length;
  }

  /** One timer per endpoint, on the scaled clock, re-armed from nextDeadline() after every call. */
  private arm(station: Station): void {
    if (this.closed) return;
    const deadline = station.endpoint.nextDeadline();
    if (deadline === station.armedFor) return;
    if (station.timer) clearTimeout(station.timer);
    station.timer = null;
    station.armedFor = deadline;
    if (deadline === Infinity) return;
    const delay = Math.max(0, Math.ceil((deadline - this.clock.now()) / this.clock.speed));
    station.timer = setTimeout(() => this.onTimer(station), delay);
  }

  private onTimer(station: Station): void {
    station.timer = null;
    station.armedFor = NaN;
    if (this.closed) return;
    const now = this.clock.now();
    if (station.endpoint.nextDeadline() <= now) {
      station.doing = 'tick';
      this.callNow = now;
      station.endpoint.tick(now);
      this.callNow = null;
      station.doing = 'idle';
    }
    this.arm(station);
  }

  private trafficTick(): void {
    if (this.closed || !this.stopped) return;
    const real = this.clock.realMs();
    const now = this.clock.now();
    while (now >= this.nextReportAt) {
      this.report();
      this.nextReportAt += this.reportEvery;
    }
    if (real >= this.settings.seconds * 1000) {
      if (this.trafficTimer) clearInterval(this.trafficTimer);
      this.trafficTimer = null;
      this.line('alice stops sending; waiting for the packets still in flight');
      const stopped = this.stopped;
      this.stopped = null;
      stopped();
      return;
    }
    const active = isActive(now);
    if (active !== this.wasActive) {
      this.wasActive = active;
      if (!active && this.pausesShown++ === 0) this.line('alice pauses for 15 s (she does this every minute)');
    }
    const elapsed = real - this.lastTrafficReal;
    this.lastTrafficReal = real;
    if (!active) {
      this.credit = 0;
      return;
    }
    this.sendingRealMs += elapsed;
    // Catch up after a late timer, but by at most 20 ms worth of packets: a bigger burst could
    // overflow the receiving socket's buffer while this one thread is busy sending it.
    this.credit = Math.min(this.credit + (elapsed * this.settings.rate) / 1000, Math.max(1, this.settings.rate / 50));
    const a = this.alice;
    while (this.credit >= 1) {
      this.credit -= 1;
      const seq = this.seq++;
      this.sendPacket(a, this.aliceToBob, now, buildPing(seq, ICMP_ECHO_REQUEST, ALICE_IP, BOB_IP));
    }
    this.arm(a);
  }

  // ------------------------------------------------------------------ summary

  /** Prints the summary (also with --quiet) and returns the exit code. */
  summary(): number {
    const s = this.settings;
    const a = this.aliceToBob, b = this.bobToAlice;
    const realS = this.clock.realMs() / 1000;
    const handshakes = this.alice.endpoint.counters.handshakesCompleted;
    const rekeys = Math.max(0, handshakes - 1);
    const out: string[] = [];
    if (!s.quiet) out.push('');
    const pace = s.speed === 1 ? 'the clock at real speed' : `clock ${fmt(s.speed)}× faster`;
    out.push(`Summary: ${realS.toFixed(1)} s of real time, ${formatDuration(this.clock.now())} of protocol time (${pace})`);
    let hs = handshakes === 0 ? '0 completed: the tunnel never came up'
      : rekeys === 0 ? '1 completed, no rekey yet'
        : `${handshakes} completed: 1 to start, then ${plural(rekeys, 'rekey')} (a new session every ${REKEY_AFTER_TIME / 60000} min)`;
    if (this.retries > 0) hs += `; ${plural(this.retries, 'retry', 'retries')}`;
    if (this.handshakeFailures > 0) hs += `; ${plural(this.handshakeFailures, 'failure')}`;
    out.push(`  handshakes   ${hs}`);
    for (const f of [a, b]) {
      let text = `${fmt(f.sent)} packets sent, ${fmt(f.received)} received: ${fmt(Math.max(0, f.lost))} lost, ` +
        `${fmt(f.corrupted)} corrupted, ${fmt(f.outOfOrder)} out of order`;
      if (f.duplicates > 0) text += `, ${fmt(f.duplicates)} duplicated`;
      if (f.refused > 0) text += `, ${fmt(f.refused)} refused by send()`;
      out.push(`  ${f.label.padEnd(12)} ${text}`);
    }
    const ka = this.alice.endpoint.counters.keepalivesSent, kb = this.bob.endpoint.counters.keepalivesSent;
    out.push(`  keepalives   alice sent ${fmt(ka)}, bob ${fmt(kb)} (empty ${Transport.minSize} B packets)`);
    const tunnelBytes = a.receivedBytes + b.receivedBytes;
    const udpBytes = this.alice.udpBytesSent + this.bob.udpBytesSent;
    const datagrams = this.alice.datagramsSent + this.bob.datagramsSent;
    out.push(
      `  on the wire  ${fmt(datagrams)} UDP datagrams, ${formatBytes(udpBytes)}, carried ${formatBytes(tunnelBytes)} of packets ` +
      `(+${Transport.headerSize + TAG_SIZE} B each, and padding)`,
    );
    const sendingS = this.sendingRealMs / 1000;
    const delivered = a.received + b.received;
    if (sendingS > 0) {
      out.push(
        `  rate         ${fmt(Math.round(delivered / sendingS))} packets/s, ${((tunnelBytes * 8) / sendingS / 1e6).toFixed(1)} Mbit/s ` +
        `(both ways, over the ${sendingS.toFixed(1)} s alice was sending)`,
      );
    }
    out.push(`  drops        ${this.drops()}`);
    const problems: string[] = [];
    if (handshakes === 0) problems.push('the handshake never completed');
    const lost = Math.max(0, a.lost) + Math.max(0, b.lost) + a.refused + b.refused;
    if (lost > 0) problems.push(`${plural(lost, 'packet')} lost`);
    if (a.corrupted + b.corrupted > 0) problems.push(`${plural(a.corrupted + b.corrupted, 'packet')} corrupted`);
    if (a.sent === 0) problems.push('no packet was sent');
    const errors = this.alice.sendErrors + this.bob.sendErrors + this.alice.noAddress + this.bob.noAddress;
    if (errors > 0) out.push(`  note         ${plural(errors, 'datagram')} could not be sent (socket errors or no address yet)`);
    if (rekeys === 0 && handshakes > 0) {
      out.push(`  note         no rekey yet: one happens after ${REKEY_AFTER_TIME / 1000} s of protocol time; run longer (--seconds) or faster (--speed)`);
    }
    if (lost > 0) {
      out.push('  note         on loopback, packets are lost when a socket\'s receive buffer overflows: one thread runs both\n' +
        '               endpoints here, and alice sent faster than it could keep up with; try a lower --rate');
    }
    if (a.outOfOrder + b.outOfOrder > 0) out.push('  note         packets arrived out of order (WireGuard allows that; loopback rarely does it)');
    out.push(problems.length === 0
      ? `Result: OK. All ${fmt(delivered)} packets arrived intact${a.outOfOrder + b.outOfOrder === 0 ? ' and in order' : ''}.`
      : `Result: FAILED: ${problems.join(', ')}.`);
    this.out.write(out.join('\n') + '\n');
    return problems.length === 0 ? 0 : 1;
  }

  private drops(): string {
    const parts: string[] = [];
    for (const station of [this.alice, this.bob]) {
      const dropped = station.endpoint.counters.dropped;
      const reasons = DROP_REASONS.filter((r) => dropped[r] > 0).map((r) => `${r} ${fmt(dropped[r])}`);
      if (reasons.length > 0) parts.push(`${station.name}: ${reasons.join(', ')}`);
    }
    return parts.length === 0 ? 'none: the endpoints accepted every datagram they received' : `datagrams dropped by ${parts.join('; ')}`;
  }
}

// ---------------------------------------------------------------------------------------------
// formatting

function pair(from: Name, to: Name): string {
  return `${from.padEnd(5)} → ${to.padEnd(5)}`;
}

function solo(name: Name): string {
  return name.padEnd(13);
}

function hex32(n: number): string {
  return n.toString(16).padStart(8, '0');
}

function fmt(n: number): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: 1 });
}

function plural(n: number, word: string, words = `${word}s`): string {
  return `${fmt(n)} ${n === 1 ? word : words}`;
}

function waitedText(waited: number): string {
  return waited === 0
    ? 'no packet had to wait for it'
    : `${plural(waited, 'packet')} waited for it`;
}

function formatBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${n} B`;
}

function formatDuration(ms: number): string {
  const s = ms / 1000;
  if (s < 120) return `${s.toFixed(1)} s`;
  const minutes = Math.floor(s / 60);
  const seconds = Math.round(s - minutes * 60);
  return seconds === 0 ? `${minutes} min` : `${minutes} min ${seconds} s`;
}

/** A round interval of protocol time giving about 5 to 10 progress lines per run. */
function reportInterval(totalVirtualMs: number): number {
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 18000, 36000, 86400];
  for (const s of steps) if (s * 1000 >= totalVirtualMs / 10) return s * 1000;
  return 86400_000;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
