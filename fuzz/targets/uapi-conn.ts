/**
 * Target `uapi-conn`: `handleUapiConnection` on a fake stream, fed the way a socket peer can:
 * requests cut into arbitrary pieces, pipelined, garbage, a peer that stops reading answers
 * (backpressure), half-close, abort, and a device that is slow or fails.
 *
 * Invariants: nothing escapes into the stream's events; the connection always ends (the
 * promise resolves) once the peer has hung up; what it wrote is a sequence of well-formed
 * answers (`key=value` lines ending in `errno=N` and a blank line); every request the device
 * is asked to apply is a valid one.
 */
import { Duplex } from 'node:stream';
import type { DeviceState, SetRequest, UapiTarget } from '../../src/device/config.ts';
import { UapiError } from '../../src/device/config.ts';
import { formatSetRequest, handleUapiConnection, parseSetRequest } from '../../src/device/uapi.ts';
import type { FuzzTarget } from '../harness.ts';
import { invariant } from '../harness.ts';
import { mutate } from '../mutate.ts';
import { ProgramReader, ProgramWriter } from '../program.ts';
import type { FuzzRng } from '../rng.ts';
import { junk } from '../text.ts';
import { latin1Bytes, setLines } from './uapi-set.ts';

const OP = { write: 0, settle: 1, end: 2, destroy: 3, hold: 4, release: 5, micro: 6, mode: 7 } as const;
const OPS = 8;
const STATE: DeviceState = {
  privateKey: new Uint8Array(32).fill(0x48), listenPort: 51820, fwmark: 0,
  peers: [{
    publicKey: new Uint8Array(32).fill(0x11), presharedKey: null, endpoint: '192.0.2.1:1', lastHandshakeTimeSec: 1, lastHandshakeTimeNsec: 2,
    rxBytes: 3, txBytes: 4, persistentKeepalive: 5, allowedIps: [], protocolVersion: 1,
  }],
};

/** A device that records what it is asked to apply, optionally slow or failing. */
class FakeDevice implements UapiTarget {
  mode = 0;
  applied = 0;
  invalid: unknown = null;

  getState(): DeviceState {
    if (this.mode === 4) throw new Error('getState failed');
    return STATE;
  }

  async applySet(request: SetRequest): Promise<void> {
    // Every request handed over must be one the parser accepts again.
    try {
      parseSetRequest(formatSetRequest(request).split('\n'));
    } catch (err) {
      this.invalid = err;
    }
    this.applied++;
    if (this.mode === 1) await new Promise((r) => setImmediate(r));
    if (this.mode === 2) throw new UapiError(98, 'address in use');
    if (this.mode === 3) throw new Error('not a UapiError');
  }
}

/** The socket as the connection sees it; `hold` plays a peer that does not read its answers. */
class FakeSocket extends Duplex {
  readonly written: string[] = [];
  private readonly held: (() => void)[] = [];
  hold = false;

  constructor() {
    super({ allowHalfOpen: true, highWaterMark: 64 });
  }

  override _read(): void {}

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.written.push(chunk.toString('latin1'));
    if (this.hold) this.held.push(cb);
    else cb();
  }

  release(): void {
    this.hold = false;
    for (const cb of this.held.splice(0)) cb();
  }
}

const ANSWERS = /^(?:[a-z_]+=[^\n]*\n)*errno=(?:0|-[1-9]\d*)\n\n/;

function checkAnswers(text: string): void {
  let rest = text;
  while (rest.length > 0) {
    const m = ANSWERS.exec(rest);
    invariant(m !== null, () => `malformed answer: ${JSON.stringify(rest.slice(0, 120))}`);
    rest = rest.slice(m[0].length);
  }
}

const immediate = () => new Promise<void>((r) => setImmediate(r));

async function run(_ctx: null, input: Uint8Array): Promise<void> {
  const device = new FakeDevice();
  const sock = new FakeSocket();
  let closed = false;
  const done = handleUapiConnection(sock, device, { requestTimeoutMs: 2000, maxLineBytes: 512, maxRequestBytes: 4096 }).then(() => { closed = true; });
  const r = new ProgramReader(input);
  let ended = false;
  while (!r.done) {
    switch (r.u8() % OPS) {
      case OP.write: {
        const chunk = r.blob();
        if (!ended && !sock.destroyed) sock.push(Buffer.from(chunk));
        break;
      }
      case OP.settle: await immediate(); break;
      case OP.end: if (!ended) { ended = true; sock.push(null); } break;
      case OP.destroy: sock.destroy(); break;
      case OP.hold: sock.hold = true; break;
      case OP.release: sock.release(); break;
      case OP.micro: for (let i = r.u8() % 8; i >= 0; i--) await Promise.resolve(); break;
      case OP.mode: device.mode = r.u8() % 5; break;
    }
  }
  // The peer reads everything and hangs up: the connection must finish.
  sock.release();
  if (!ended && !sock.destroyed) sock.push(null);
  for (let i = 0; i < 50 && !closed; i++) {
    await immediate();
    sock.release();
  }
  invariant(closed, 'the connection did not end after the peer hung up');
  await done;
  invariant(device.invalid === null, () => `the device was handed an invalid request: ${String(device.invalid)}`);
  checkAnswers(sock.written.join(''));
}

// ------------------------------------------------------------------------------------ inputs

function session(rng: FuzzRng): string {
  let s = '';
  const requests = rng.range(1, 3);
  for (let i = 0; i < requests; i++) {
    switch (rng.int(6)) {
      case 0: s += 'get=1\n\n'; break;
      case 1: s += `get=1\n${junk(rng)}`; break;
      case 2: s += junk(rng) + '\n'; break;
      case 3: s += `set=1\n${setLines(rng).join('\n')}`; break; // not terminated
      default: s += `set=1\n${setLines(rng).join('\n')}\n\n`;
    }
  }
  if (rng.chance(0.05)) s += 'x'.repeat(rng.pick([511, 512, 513, 5000]));
  return s;
}

function generate(rng: FuzzRng, corpus: readonly Uint8Array[]): Uint8Array {
  if (corpus.length > 0 && rng.chance(0.25)) return mutate(rng, rng.pick(corpus), corpus, 8192);
  const text = latin1Bytes(session(rng));
  const w = new ProgramWriter();
  if (rng.chance(0.3)) w.op(OP.mode).u8(rng.int(5));
  if (rng.chance(0.2)) w.op(OP.hold);
  // Half-written input: the text in random pieces with the event loop turning in between.
  for (let at = 0; at < text.length;) {
    const n = rng.chance(0.5) ? text.length - at : rng.range(1, 16);
    w.op(OP.write).blob(text.subarray(at, at + n));
    at += n;
    if (rng.chance(0.3)) {
      const op = rng.pick([OP.settle, OP.micro, OP.release, OP.hold]);
      w.op(op);
      if (op === OP.micro) w.u8(rng.int(8));
    }
  }
  const last = rng.int(10);
  if (last < 3) w.op(OP.end);
  else if (last === 3) w.op(OP.destroy);
  else if (last === 4) w.op(OP.settle).op(OP.end);
  return w.finish();
}

function seeds(): Uint8Array[] {
  const text = (s: string) => new ProgramWriter().op(OP.write).blob(latin1Bytes(s)).op(OP.settle).op(OP.end).finish();
  return [
    text('get=1\n\nget=1\n\n'),
    text(`set=1\nprivate_key=${'48'.repeat(32)}\nlisten_port=1\n\nget=1\n\n`),
    text('set=1\nlisten_port=x\nlisten_port=1\n\n'),
    text('bogus\n'),
  ];
}

export const uapiConnTarget: FuzzTarget<null> = {
  name: 'uapi-conn',
  description: 'handleUapiConnection on a fake socket: split, pipelined, garbage, backpressure, hang-ups',
  batchSize: 200,
  setup: () => null,
  seeds,
  generate,
  run,
  check: () => {},
};
