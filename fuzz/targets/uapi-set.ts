/**
 * Target `uapi-set`: the body of a UAPI `set=1` request (what any local process that can open
 * the socket sends) through `parseSetRequest`, and when it is valid, applied to a Device on
 * the in-memory twins.
 *
 * Invariants: parsing throws only UapiError (EPROTO or EINVAL) with a one-line message that
 * never contains a key; a parsed request formats and parses back to itself; applying throws
 * only UapiError; afterwards the device's state answers `get=1` and reads back to itself, the
 * endpoint and the device agree on the peers, and no peer has the device's own public key.
 */
import { encodeHex } from '../../src/core/keys.ts';
import { isAllZero } from '../../src/core/bytes.ts';
import { MemoryBind, MemoryNetwork } from '../../src/device/bind-memory.ts';
import { ManualClock } from '../../src/device/clock.ts';
import type { SetRequest } from '../../src/device/config.ts';
import { Errno, UapiError } from '../../src/device/config.ts';
import { Device } from '../../src/device/device.ts';
import { MemoryTun } from '../../src/device/tun-memory.ts';
import { formatGetResponse, formatSetRequest, parseGetResponse, parseSetRequest } from '../../src/device/uapi.ts';
import { seededRng } from '../../src/core/rng.ts';
import type { FuzzTarget } from '../harness.ts';
import { invariant } from '../harness.ts';
import { mutate } from '../mutate.ts';
import type { FuzzRng } from '../rng.ts';
import { endpoint, hexKey, junk, prefix, uint } from '../text.ts';

export interface SetCtx { device: Device; net: MemoryNetwork }

export async function setupDevice(): Promise<SetCtx> {
  const net = new MemoryNetwork();
  const device = new Device({ tun: new MemoryTun({ name: 'fuzz0' }), bind: new MemoryBind(net, '192.0.2.1'), clock: new ManualClock(), rng: seededRng(7) });
  await device.up();
  return { device, net };
}

const latin1 = new TextDecoder('latin1');
const encoder = new TextEncoder();

/** Text as bytes one char per byte (latin1), as the UAPI connection reads the socket. */
export function latin1Bytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

/** Values of the secret key fields in `text` (`private_key=`, `PresharedKey = `, …) that are shaped like a key. */
export function secretsIn(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/(?:private|preshared)_?key\s*=([^\n#]*)/gi)) {
    const v = m[1]!.replace(/\s/g, '');
    // A 64-digit hex key (UAPI) or a 44-character base64 key (wg-quick); shorter junk in a
    // key field may legitimately appear elsewhere in the input and so in a message.
    if (/^[0-9a-f]{64}$/i.test(v) || /^[A-Za-z0-9+/]{43}=$/.test(v)) out.push(v);
  }
  return out;
}

export function checkMessage(err: Error, input: string): void {
  invariant(!err.message.includes('\n'), () => `error message is not one line: ${JSON.stringify(err.message)}`);
  const message = err.message.replace(/\s/g, '');
  for (const k of secretsIn(input)) invariant(!message.includes(k), () => `error message contains a secret key: ${err.message}`);
}

/** What a request means: sections after `remove=true` only remove. */
function normalize(req: SetRequest): unknown {
  return {
    ...req,
    peers: req.peers.map((p) => (p.remove ? { publicKey: encodeHex(p.publicKey), remove: true } : { ...p, publicKey: encodeHex(p.publicKey) })),
  };
}

/** Equality of plain data with byte arrays, whatever the order of object keys. */
export function sameJson(a: unknown, b: unknown): boolean {
  const enc = (v: unknown) => JSON.stringify(v, (_k, x: unknown) => {
    if (x instanceof Uint8Array) return encodeHex(x);
    if (x && typeof x === 'object' && !Array.isArray(x)) return Object.fromEntries(Object.entries(x).sort(([p], [q]) => (p < q ? -1 : 1)));
    return x;
  });
  return enc(a) === enc(b);
}

async function run(ctx: SetCtx, input: Uint8Array): Promise<void> {
  const text = latin1.decode(input);
  let req: SetRequest;
  try {
    req = parseSetRequest(text.split('\n'));
  } catch (err) {
    invariant(err instanceof UapiError, () => `parseSetRequest threw ${String(err)}`);
    invariant(err.errno === Errno.EPROTO || err.errno === Errno.EINVAL, () => `unexpected errno ${err.errno}`);
    checkMessage(err, text);
    return;
  }
  const again = parseSetRequest(formatSetRequest(req).split('\n'));
  invariant(sameJson(normalize(again), normalize(req)), 'a parsed request does not format and parse back to itself');
  try {
    await ctx.device.applySet(req);
  } catch (err) {
    invariant(err instanceof UapiError, () => `applySet threw ${String(err)}`);
    checkMessage(err, text);
  }
  checkState(ctx);
}

function checkState(ctx: SetCtx): void {
  const state = ctx.device.getState();
  const back = parseGetResponse(formatGetResponse(state));
  invariant(sameJson(back, state), 'get=1 does not read back to the device state');
  invariant(state.peers.length === ctx.device.endpoint.peerCount, 'device and endpoint disagree on the peers');
  const own = ctx.device.endpoint.publicKey;
  if (own) invariant(!state.peers.some((p) => encodeHex(p.publicKey) === encodeHex(own)), 'a peer has the device\'s own public key');
  if (state.privateKey) invariant(!isAllZero(state.privateKey), 'an all-zero private key is kept');
}

// ------------------------------------------------------------------------------------ inputs

const DEVICE_KEYS = ['private_key', 'listen_port', 'fwmark', 'replace_peers'];
const PEER_KEYS = ['public_key', 'preshared_key', 'endpoint', 'persistent_keepalive_interval', 'replace_allowed_ips', 'allowed_ip', 'remove', 'update_only', 'protocol_version'];

function value(rng: FuzzRng, key: string): string {
  switch (key) {
    case 'private_key': case 'public_key': case 'preshared_key': return hexKey(rng);
    case 'listen_port': case 'persistent_keepalive_interval': return uint(rng, 65535);
    case 'fwmark': return uint(rng, 0xffffffff);
    case 'endpoint': return endpoint(rng);
    case 'allowed_ip': return (rng.chance(0.15) ? '-' : '') + prefix(rng);
    case 'protocol_version': return rng.chance(0.8) ? '1' : uint(rng, 2);
    default: return rng.chance(0.85) ? 'true' : junk(rng);
  }
}

export function setLines(rng: FuzzRng): string[] {
  const lines: string[] = [];
  const device = rng.int(4);
  for (let i = 0; i < device; i++) {
    const k = rng.pick(DEVICE_KEYS);
    lines.push(`${k}=${value(rng, k)}`);
  }
  const peers = rng.int(4);
  for (let p = 0; p < peers; p++) {
    lines.push(`public_key=${value(rng, 'public_key')}`);
    const n = rng.int(6);
    for (let i = 0; i < n; i++) {
      const k = rng.pick(PEER_KEYS.slice(1));
      lines.push(`${k}=${value(rng, k)}`);
    }
  }
  // Rarely something the grammar does not have.
  if (rng.chance(0.1)) lines.splice(rng.int(lines.length + 1), 0, rng.chance(0.5) ? junk(rng) : `${junk(rng)}=${junk(rng)}`);
  if (rng.chance(0.1)) lines.push(rng.pick(['', '\r']));
  if (rng.chance(0.05)) lines.push(rng.pick(['', '\r']), 'listen_port=1');
  return lines;
}

function generate(rng: FuzzRng, corpus: readonly Uint8Array[]): Uint8Array {
  if (corpus.length > 0 && rng.chance(0.3)) return mutate(rng, rng.pick(corpus), corpus, 8192);
  return latin1Bytes(setLines(rng).join('\n'));
}

function seeds(): Uint8Array[] {
  const k = (b: number) => b.toString(16).padStart(2, '0').repeat(32);
  return [
    `private_key=${k(0x48)}\nlisten_port=51820\nfwmark=0\nreplace_peers=true\npublic_key=${k(0x11)}\npreshared_key=${k(0x22)}\nendpoint=192.0.2.9:51820\npersistent_keepalive_interval=25\nreplace_allowed_ips=true\nallowed_ip=10.0.0.0/24\nallowed_ip=fd00::/64\nprotocol_version=1\n`,
    `public_key=${k(0x11)}\nendpoint=[fe80::1%eth0]:1\nallowed_ip=-10.0.0.0/24\nupdate_only=true\npublic_key=${k(0x33)}\nremove=true\n\n`,
    `private_key=${k(0)}\npublic_key=${k(0x44)}\npreshared_key=${k(0)}\nallowed_ip=0.0.0.0/0\nallowed_ip=::/0\n`,
  ].map((s) => encoder.encode(s));
}

export const uapiSetTarget: FuzzTarget<SetCtx> = {
  name: 'uapi-set',
  description: 'UAPI set=1 bodies through parseSetRequest, applied to a Device on the memory twins',
  batchSize: 200,
  setup: setupDevice,
  teardown: (ctx) => ctx.device.close(),
  seeds,
  generate,
  run,
  check: checkState,
};
