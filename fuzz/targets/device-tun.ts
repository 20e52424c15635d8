/**
 * Target `device-tun`: IP packets from the TUN side (what any local process can route into
 * the interface) into a Device, and on through the tunnel to its peer.
 *
 * Invariants: nothing throws or escapes; every packet read from the TUN is counted; the peer's
 * TUN only gets whole IP packets that A was given, from A's own addresses (device-pair.ts);
 * after each batch pings cross both ways and the state is bounded.
 */
import type { FuzzTarget } from '../harness.ts';
import { mutate } from '../mutate.ts';
import { ProgramReader, ProgramWriter } from '../program.ts';
import type { FuzzRng } from '../rng.ts';
import { icmpEcho4, icmpEcho6 } from '../../test/support/ip.ts';
import type { PairCtx } from './device-pair.ts';
import { TIME_STEPS, checkPair, injectA, injectB, readIpPacket, settle, setupPair, teardownPair, writeIpPacket } from './device-pair.ts';

const OP = { raw: 0, ip: 1, rawB: 2, ipB: 3, time: 4 } as const;
const OPS = 5;

async function run(ctx: PairCtx, input: Uint8Array): Promise<void> {
  const r = new ProgramReader(input);
  while (!r.done) {
    switch (r.u8() % OPS) {
      case OP.raw: injectA(ctx, r.blob()); break;
      case OP.ip: injectA(ctx, readIpPacket(r)); break;
      case OP.rawB: injectB(ctx, r.blob()); break;
      case OP.ipB: injectB(ctx, readIpPacket(r)); break;
      case OP.time: await ctx.clock.advance(TIME_STEPS[r.u8() % TIME_STEPS.length]!); continue;
    }
    await settle(ctx);
  }
}

function generate(rng: FuzzRng, corpus: readonly Uint8Array[]): Uint8Array {
  if (corpus.length > 0 && rng.chance(0.25)) return mutate(rng, rng.pick(corpus), corpus, 4096);
  const w = new ProgramWriter();
  const ops = rng.range(1, 5);
  for (let i = 0; i < ops; i++) {
    const op = rng.pick([OP.raw, OP.ip, OP.ip, OP.ip, OP.rawB, OP.ipB, OP.time]);
    w.op(op);
    if (op === OP.raw || op === OP.rawB) w.blob(rng.chance(0.5) ? rng.bytes(rng.length(1500)) : Uint8Array.of(rng.pick([0x45, 0x60, 0x40, 0x4f, 0x00]), ...rng.bytes(rng.length(60))));
    else if (op === OP.time) w.u8(rng.chance(0.9) ? rng.int(5) : rng.int(TIME_STEPS.length));
    else writeIpPacket(w, rng);
  }
  return w.finish();
}

function seeds(): Uint8Array[] {
  const body = new TextEncoder().encode('seed');
  return [
    new ProgramWriter().op(OP.raw).blob(icmpEcho4('10.9.0.1', '10.9.0.2', 1, 1, body)).finish(),
    new ProgramWriter().op(OP.raw).blob(icmpEcho6('fd09::1', 'fd09::2', 1, 1, body)).op(OP.time).u8(6).finish(),
    new ProgramWriter().op(OP.rawB).blob(icmpEcho4('10.9.0.2', '10.9.0.1', 1, 1, body, true)).finish(),
  ];
}

export const deviceTunTarget: FuzzTarget<PairCtx> = {
  name: 'device-tun',
  description: 'IP packets from the TUN side into a Device (MemoryTun/MemoryBind twins) and through to its peer',
  batchSize: 200,
  setup: setupPair,
  teardown: teardownPair,
  seeds,
  generate,
  run,
  check: checkPair,
};
