/**
 * Inputs of the stateful targets are small programs: a sequence of operations (an opcode byte
 * and its arguments) that a target interprets against its context. Generating programs rather
 * than calling the context directly keeps every input self-contained: replaying its bytes on a
 * fresh context repeats exactly what the fuzzer did, including steps that only make genuine
 * traffic (a peer sending, time passing). The reader never fails: past the end it reads zeros
 * and `done` turns true, so byte-level mutations of a program are still programs.
 */

export class ProgramWriter {
  private readonly parts: number[] = [];

  op(code: number): this {
    this.parts.push(code & 0xff);
    return this;
  }

  u8(v: number): this {
    this.parts.push(v & 0xff);
    return this;
  }

  u16(v: number): this {
    this.parts.push(v & 0xff, (v >>> 8) & 0xff);
    return this;
  }

  u32(v: number): this {
    return this.u16(v & 0xffff).u16(v >>> 16);
  }

  /** Length-prefixed (u16) bytes. */
  blob(b: Uint8Array): this {
    const n = Math.min(b.length, 0xffff);
    this.u16(n);
    for (let i = 0; i < n; i++) this.parts.push(b[i]!);
    return this;
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

export class ProgramReader {
  private pos = 0;
  private readonly b: Uint8Array;

  constructor(b: Uint8Array) {
    this.b = b;
  }

  get done(): boolean {
    return this.pos >= this.b.length;
  }

  u8(): number {
    return this.pos < this.b.length ? this.b[this.pos++]! : (this.pos++, 0);
  }

  u16(): number {
    return this.u8() | (this.u8() << 8);
  }

  u32(): number {
    return (this.u16() | (this.u16() << 16)) >>> 0;
  }

  /** Length-prefixed bytes, cut short at the end of the program. */
  blob(): Uint8Array {
    const n = this.u16();
    const start = Math.min(this.pos, this.b.length);
    const end = Math.min(start + n, this.b.length);
    this.pos += n;
    return this.b.slice(start, end);
  }
}

/**
 * A mutation spec inside a program: up to four (position, xor mask) pairs and an optional
 * truncation, applied to a datagram the target only gets at run time (a genuine one).
 */
export function writeMutationSpec(w: ProgramWriter, rng: { int(n: number): number; range(a: number, b: number): number; chance(p: number): boolean }, flips = rng.range(1, 3)): void {
  w.u8(flips);
  for (let i = 0; i < flips; i++) w.u16(rng.int(0x10000)).u8(rng.range(1, 255));
  if (rng.chance(0.15)) w.u8(0x80).u16(rng.int(200));
  else w.u8(0);
}

export function applyMutationSpec(r: ProgramReader, data: Uint8Array): Uint8Array {
  let out = data;
  const flips = r.u8() % 5;
  for (let i = 0; i < flips; i++) {
    const pos = r.u16();
    const mask = r.u8() || 1;
    if (out.length > 0) out[pos % out.length]! ^= mask;
  }
  if (r.u8() & 0x80) out = out.subarray(0, r.u16() % (out.length + 1));
  return out;
}
