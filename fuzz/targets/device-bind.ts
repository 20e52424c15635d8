/**
 * Target `device-bind`: datagrams from the UDP side into a Device: junk and non-WireGuard
 * datagrams from strangers and from the peer's spoofed address, the peer's genuine datagrams
 * with bits flipped, and genuine encrypted packets whose plaintext is hostile (bad IP headers,
 * lengths, spoofed inner sources) — the device's own parsing after decryption.
 *
 * Invariants: nothing throws or escapes; datagrams that are not WireGuard are counted foreign;
 * nothing unauthenticated moves the peer's endpoint; A's TUN only gets whole IP packets that B
 * sent, from B's addresses (device-pair.ts); after each batch pings cross both ways.
 */
import { isWireGuardMessage } from '../../src/core/messages.ts';
import type { BindEndpoint } from '../../src/device/bind.ts';
import type { FuzzTarget } from '../harness.ts';
import { invariant } from '../harness.ts';
import { mutate } from '../mutate.ts';
import { applyMutationSpec, ProgramReader, ProgramWriter, writeMutationSpec } from '../program.ts';
import type { FuzzRng } from '../rng.ts';
import type { PairCtx } from './device-pair.ts';
import { A_ADDR, B_ADDR, TIME_STEPS, checkPair, noteSent, readIpPacket, settle, setupPair, teardownPair, writeIpPacket } from './device-pair.ts';

const OP = { dgram: 0, inner: 1, innerIp: 2, mutated: 3, time: 4 } as const;
const OPS = 5;
const SOURCES: [string, number][] = [['203.0.113.9', 4444], [B_ADDR, 51820], ['fd00::66', 51820], [B_ADDR, 1]];

function endpointOfB(ctx: PairCtx): string | null {
  return ctx.a.device.getState().peers[0]?.endpoint ?? null;
}

function deliverToA(ctx: PairCtx, d: Uint8Array, from: BindEndpoint): void {
  const to = ctx.b.bind.endpointFor(A_ADDR, 51820);
  ctx.net.deliver(d, from, to);
}

/** B seals `packet` for A (bypassing B's routing, so any plaintext goes). */
function bSends(ctx: PairCtx, packet: Uint8Array): void {
  noteSent(ctx, 'b', packet);
  ctx.b.device.endpoint.send(ctx.clock.now(), ctx.bPeerA, packet);
}

async function run(ctx: PairCtx, input: Uint8Array): Promise<void> {
  const r = new ProgramReader(input);
  while (!r.done) {
    switch (r.u8() % OPS) {
      case OP.dgram: {
        const [address, port] = SOURCES[r.u8() % SOURCES.length]!;
        const d = r.blob();
        const foreign = ctx.a.device.counters.foreignDatagrams;
        const was = endpointOfB(ctx);
        deliverToA(ctx, d, ctx.b.bind.endpointFor(address, port));
        await settle(ctx);
        // The fuzzer cannot forge a packet, so none of these may move B's endpoint at A.
        invariant(endpointOfB(ctx) === was, 'an unauthenticated datagram moved the peer\'s endpoint');
        invariant(ctx.a.device.counters.foreignDatagrams === foreign + (isWireGuardMessage(d) ? 0 : 1), 'foreign datagram not counted');
        continue;
      }
      case OP.inner: bSends(ctx, r.blob()); break;
      case OP.innerIp: bSends(ctx, readIpPacket(r)); break;
      case OP.mutated: {
        const payload = readIpPacket(r);
        const spec = new ProgramReader(r.blob());
        const filter = ctx.net.filter;
        // B's next datagram to A goes out with bits flipped (or cut short) instead.
        ctx.net.filter = (d, from, to) => {
          if (to.address !== A_ADDR) return true;
          ctx.net.filter = filter;
          deliverToA(ctx, applyMutationSpec(spec, d.slice()), from);
          return false;
        };
        try { bSends(ctx, payload); } finally { ctx.net.filter = filter; }
        break;
      }
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
    const op = rng.pick([OP.dgram, OP.dgram, OP.inner, OP.innerIp, OP.innerIp, OP.mutated, OP.time]);
    w.op(op);
    switch (op) {
      case OP.dgram: {
        const d = rng.bytes(rng.length(400));
        if (d.length >= 4 && rng.chance(0.5)) d.set([rng.range(1, 4), 0, 0, 0]);
        w.u8(rng.int(SOURCES.length)).blob(d);
        break;
      }
      case OP.inner: w.blob(rng.chance(0.5) ? rng.bytes(rng.length(300)) : Uint8Array.of(rng.pick([0x45, 0x60, 0x46, 0x4f]), ...rng.bytes(rng.length(80)))); break;
      case OP.innerIp: writeIpPacket(w, rng); break;
      case OP.mutated: {
        writeIpPacket(w, rng);
        const spec = new ProgramWriter();
        writeMutationSpec(spec, rng);
        w.blob(spec.finish());
        break;
      }
      default: w.u8(rng.chance(0.9) ? rng.int(5) : rng.int(TIME_STEPS.length));
    }
  }
  return w.finish();
}

function seeds(): Uint8Array[] {
  return [
    new ProgramWriter().op(OP.dgram).u8(1).blob(Uint8Array.of(1, 0, 0, 0)).finish(),
    new ProgramWriter().op(OP.inner).blob(Uint8Array.of(0x45, 0, 0, 20, 0, 0, 0, 0, 64, 1, 0, 0, 10, 9, 0, 2, 10, 9, 0, 1)).finish(),
    new ProgramWriter().op(OP.time).u8(7).op(OP.inner).blob(new Uint8Array(0)).finish(),
  ];
}

export const deviceBindTarget: FuzzTarget<PairCtx> = {
  name: 'device-bind',
  description: 'datagrams from the UDP side into a Device, incl. genuine ciphertext of hostile plaintext',
  batchSize: 200,
  setup: setupPair,
  teardown: teardownPair,
  seeds,
  generate,
  run,
  check: checkPair,
};
