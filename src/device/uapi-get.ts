/**
 * The answer to `get=1`, written as bytes in one buffer. For 10,000 peers it is ~3.3 MB; built
 * from template strings and joined it took ~90 ms of the main thread, most of `wg show dump`'s
 * time. The buffer holds the private key and preshared keys in hex: whoever sends it wipes it.
 */
import type { DeviceState, DeviceStateStream, Prefix } from './config.ts';
import { isAllZero } from '../core/bytes.ts';
import { writeHex } from '../core/keys.ts';
import { formatPrefix } from './allowedips.ts';

const ZERO_KEY = new Uint8Array(32);
const ascii = (text: string): Uint8Array => Uint8Array.from(text, (c) => c.charCodeAt(0));
const PRIVATE_KEY = ascii('private_key=');
const LISTEN_PORT = ascii('listen_port=');
const FWMARK = ascii('fwmark=');
const PUBLIC_KEY = ascii('public_key=');
const PRESHARED_KEY = ascii('preshared_key=');
const PROTOCOL_VERSION = ascii('protocol_version=1\n');
const ENDPOINT = ascii('endpoint=');
const HANDSHAKE_SEC = ascii('last_handshake_time_sec=');
const HANDSHAKE_NSEC = ascii('last_handshake_time_nsec=');
const TX_BYTES = ascii('tx_bytes=');
const RX_BYTES = ascii('rx_bytes=');
const KEEPALIVE = ascii('persistent_keepalive_interval=');
const ALLOWED_IP = ascii('allowed_ip=');
const END = ascii('errno=0\n\n');
const NL = 10;

/** Bytes a peer's lines take at most with a short endpoint and numbers of ≤ 20 digits (a first guess; the writer grows). */
const PEER_BYTES = 460;
const PREFIX_BYTES = 56;

/** @internal A growing byte buffer that wipes what it leaves behind (exported for its tests). */
export class ByteWriter {
  buf: Uint8Array;
  at = 0;

  constructor(capacity: number) {
    this.buf = new Uint8Array(capacity);
  }

  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.at + n));
    next.set(this.buf.subarray(0, this.at));
    this.buf.fill(0); // it held keys
    this.buf = next;
  }

  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.at);
    this.at += b.length;
  }

  byte(c: number): void {
    this.room(1);
    this.buf[this.at++] = c;
  }

  text(s: string): void {
    this.room(s.length);
    for (let i = 0; i < s.length; i++) this.buf[this.at++] = s.charCodeAt(i) & 0xff;
  }

  hex(key: Uint8Array): void {
    this.room(key.length * 2);
    this.at = writeHex(key, this.buf, this.at);
  }

  /** A count as Go's %d of a uint64 prints it; anything not positive and finite is 0. */
  uint(n: number): void {
    if (!(n > 0) || n === Infinity) return this.byte(48);
    let v = Math.trunc(n);
    if (v > Number.MAX_SAFE_INTEGER) return this.text(BigInt(v).toString());
    let digits = 1;
    for (let p = 10; p <= v; p *= 10) digits++;
    this.room(digits);
    const end = this.at + digits;
    for (let i = end - 1; i >= this.at; i--) {
      this.buf[i] = 48 + (v % 10);
      v = Math.floor(v / 10);
    }
    this.at = end;
  }

  prefix(p: Prefix): void {
    const b = p.bytes;
    if (p.family !== 4 || b.length !== 4 || !Number.isInteger(p.bits) || p.bits < 0 || p.bits > 32) return this.text(formatPrefix(p));
    for (let i = 0; i < 4; i++) {
      if (i > 0) this.byte(46);
      this.uint(b[i]!);
    }
    this.byte(47);
    this.uint(p.bits);
  }

  line(key: Uint8Array, value: number): void {
    this.bytes(key);
    this.uint(value);
    this.byte(NL);
  }
}

/**
 * The answer to `get=1` as bytes, exactly as wireguard-go writes it (see formatGetResponse).
 * The result holds key material: wipe it once it has been sent.
 */
export function encodeGetResponse(state: DeviceState | DeviceStateStream): Uint8Array {
  // A stream is read once: its size is guessed with one prefix a peer (the writer grows).
  const count = 'peerCount' in state ? state.peerCount : state.peers.length;
  const w = new ByteWriter(256 + count * (PEER_BYTES + PREFIX_BYTES));
  if (state.privateKey && !isAllZero(state.privateKey)) {
    w.bytes(PRIVATE_KEY);
    w.hex(state.privateKey);
    w.byte(NL);
  }
  if (state.listenPort !== 0) w.line(LISTEN_PORT, state.listenPort);
  if (state.fwmark !== 0) w.line(FWMARK, state.fwmark);
  for (const peer of state.peers) {
    w.bytes(PUBLIC_KEY);
    w.hex(peer.publicKey);
    w.byte(NL);
    w.bytes(PRESHARED_KEY);
    w.hex(peer.presharedKey ?? ZERO_KEY);
    w.byte(NL);
    w.bytes(PROTOCOL_VERSION);
    if (peer.endpoint) {
      w.bytes(ENDPOINT);
      w.text(peer.endpoint);
      w.byte(NL);
    }
    w.line(HANDSHAKE_SEC, peer.lastHandshakeTimeSec);
    w.line(HANDSHAKE_NSEC, peer.lastHandshakeTimeNsec);
    w.line(TX_BYTES, peer.txBytes);
    w.line(RX_BYTES, peer.rxBytes);
    w.line(KEEPALIVE, peer.persistentKeepalive);
    for (const p of peer.allowedIps) {
      w.bytes(ALLOWED_IP);
      w.prefix(p);
      w.byte(NL);
    }
  }
  w.bytes(END);
  return w.buf.subarray(0, w.at);
}
