/**
 * Saved inputs: `test/corpus/<target>/<hash>.bin`, each a sequence of inputs to replay, in
 * order, on one fresh context (most hold one input; a failure that needed earlier inputs of its
 * batch keeps them). Encoding: for each input, its length (u32 little-endian) then its bytes.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CORPUS_DIR = fileURLToPath(new URL('../test/corpus/', import.meta.url));

export function encodeInputs(inputs: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const i of inputs) n += 4 + i.length;
  const out = new Uint8Array(n);
  const v = new DataView(out.buffer);
  let at = 0;
  for (const i of inputs) {
    v.setUint32(at, i.length, true);
    out.set(i, at + 4);
    at += 4 + i.length;
  }
  return out;
}

/** Inverse of encodeInputs; a damaged tail is cut off rather than refused. */
export function decodeInputs(file: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  const v = new DataView(file.buffer, file.byteOffset, file.byteLength);
  let at = 0;
  while (at + 4 <= file.length) {
    const n = v.getUint32(at, true);
    if (at + 4 + n > file.length) break;
    out.push(file.slice(at + 4, at + 4 + n));
    at += 4 + n;
  }
  return out;
}

/** Writes the inputs under the target's directory; returns the path (the same inputs, the same name). */
export function saveCrash(target: string, inputs: readonly Uint8Array[], dir = CORPUS_DIR): string {
  const data = encodeInputs(inputs);
  const hash = createHash('sha256').update(data).digest('hex').slice(0, 16);
  const targetDir = join(dir, target);
  mkdirSync(targetDir, { recursive: true });
  const path = join(targetDir, `${hash}.bin`);
  writeFileSync(path, data);
  return path;
}

/** Every saved input sequence of a target: [file name, inputs]. */
export function loadCorpus(target: string, dir = CORPUS_DIR): [string, Uint8Array[]][] {
  let names: string[];
  try {
    names = readdirSync(join(dir, target)).filter((n) => n.endsWith('.bin')).sort();
  } catch {
    return [];
  }
  return names.map((n) => [n, decodeInputs(new Uint8Array(readFileSync(join(dir, target, n))))]);
}
