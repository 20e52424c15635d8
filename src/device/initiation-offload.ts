/**
 * Where a Device has handshake initiations computed (EndpointIO.offloadInitiation): the
 * interface, its in-memory twin, and the fixed-size records the worker thread exchanges.
 */
import { computeInitiation } from '../core/handshake.ts';
import type { InitiationJob, InitiationResult } from '../core/handshake.ts';
import { zeroize } from '../core/crypto.ts';
import type { CryptoProvider } from '../core/crypto.ts';
import { Initiation, KEY_SIZE } from '../core/messages.ts';

export interface InitiationOffload {
  /** Takes a copy of `job`, or returns false (not running, full): the endpoint computes it then. */
  submit(job: InitiationJob): boolean;
  /** Where results go, in any order; each is erased once the listener returns. */
  onResult(listener: (result: InitiationResult) => void): void;
  /** Stops taking jobs and erases those it holds; results still to come are dropped. */
  close(): Promise<void>;
}

/** The in-memory twin: holds jobs until `run()` computes them on the caller's thread. */
export class MemoryInitiationOffload implements InitiationOffload {
  /** Whether submit takes jobs (false: the endpoint computes them itself). */
  accepting = true;
  private readonly jobs: InitiationJob[] = [];
  private listener: (result: InitiationResult) => void = () => {};

  private readonly crypto: CryptoProvider;
  private readonly capacity: number;

  constructor(crypto: CryptoProvider, capacity = 1024) {
    this.crypto = crypto;
    this.capacity = capacity;
  }

  get pending(): number { return this.jobs.length; }

  submit(job: InitiationJob): boolean {
    if (!this.accepting || this.jobs.length >= this.capacity) return false;
    this.jobs.push({
      peer: job.peer, token: job.token, localStatic: job.localStatic.slice(), remoteStatic: job.remoteStatic.slice(),
      staticStatic: job.staticStatic.slice(), ephemeral: job.ephemeral.slice(), timestamp: job.timestamp.slice(),
    });
    return true;
  }

  onResult(listener: (result: InitiationResult) => void): void { this.listener = listener; }

  /** Computes and delivers the pending jobs (at most `max`); returns how many. */
  run(max = Infinity): number {
    let n = 0;
    while (n < max && this.jobs.length > 0) {
      const job = this.jobs.shift()!;
      const result = computeInitiation(this.crypto, job);
      n++;
      if (result) {
        this.listener(result);
        zeroize(result.chainKey, result.hash);
      }
      zeroize(job.staticStatic, job.ephemeral); // result.ephemeral is job.ephemeral
    }
    return n;
  }

  /** Erases the jobs not run. */
  async close(): Promise<void> {
    for (const job of this.jobs.splice(0)) zeroize(job.staticStatic, job.ephemeral);
  }
}

// Records between the device and its initiation thread, many to a transferred ArrayBuffer.
const TIMESTAMP_BYTES = 12;
const NOISE_BYTES = Initiation.noiseEnd - Initiation.noiseStart;
/** peer u32 ‖ token u32 ‖ localStatic ‖ remoteStatic ‖ staticStatic ‖ ephemeral ‖ timestamp */
export const JOB_BYTES = 8 + 4 * KEY_SIZE + TIMESTAMP_BYTES;
/** peer u32 ‖ token u32 ‖ noise ‖ chainKey ‖ hash ‖ ephemeral; token 0: no result */
export const RESULT_BYTES = 8 + NOISE_BYTES + 3 * KEY_SIZE;

export function writeJob(buf: Uint8Array, index: number, job: InitiationJob): void {
  const o = index * JOB_BYTES;
  const dv = new DataView(buf.buffer, buf.byteOffset + o, JOB_BYTES);
  dv.setUint32(0, job.peer, true);
  dv.setUint32(4, job.token, true);
  buf.set(job.localStatic, o + 8);
  buf.set(job.remoteStatic, o + 8 + KEY_SIZE);
  buf.set(job.staticStatic, o + 8 + 2 * KEY_SIZE);
  buf.set(job.ephemeral, o + 8 + 3 * KEY_SIZE);
  buf.set(job.timestamp, o + 8 + 4 * KEY_SIZE);
}

/** Views of a job record (valid while `buf` is). */
export function readJob(buf: Uint8Array, index: number): InitiationJob {
  const o = index * JOB_BYTES;
  const dv = new DataView(buf.buffer, buf.byteOffset + o, JOB_BYTES);
  const at = (from: number, n: number): Uint8Array => buf.subarray(o + from, o + from + n);
  return {
    peer: dv.getUint32(0, true), token: dv.getUint32(4, true), localStatic: at(8, KEY_SIZE),
    remoteStatic: at(8 + KEY_SIZE, KEY_SIZE), staticStatic: at(8 + 2 * KEY_SIZE, KEY_SIZE),
    ephemeral: at(8 + 3 * KEY_SIZE, KEY_SIZE), timestamp: at(8 + 4 * KEY_SIZE, TIMESTAMP_BYTES),
  };
}

export function writeResult(buf: Uint8Array, index: number, result: InitiationResult | null): void {
  const o = index * RESULT_BYTES;
  const dv = new DataView(buf.buffer, buf.byteOffset + o, RESULT_BYTES);
  if (!result) { dv.setUint32(4, 0, true); return; }
  dv.setUint32(0, result.peer, true);
  dv.setUint32(4, result.token, true);
  buf.set(result.noise, o + 8);
  buf.set(result.chainKey, o + 8 + NOISE_BYTES);
  buf.set(result.hash, o + 8 + NOISE_BYTES + KEY_SIZE);
  buf.set(result.ephemeral, o + 8 + NOISE_BYTES + 2 * KEY_SIZE);
}

/** Views of a result record, or null for a job that gave none (valid while `buf` is). */
export function readResult(buf: Uint8Array, index: number): InitiationResult | null {
  const o = index * RESULT_BYTES;
  const dv = new DataView(buf.buffer, buf.byteOffset + o, RESULT_BYTES);
  const token = dv.getUint32(4, true);
  if (token === 0) return null;
  const at = (from: number, n: number): Uint8Array => buf.subarray(o + from, o + from + n);
  return {
    peer: dv.getUint32(0, true), token, noise: at(8, NOISE_BYTES), chainKey: at(8 + NOISE_BYTES, KEY_SIZE),
    hash: at(8 + NOISE_BYTES + KEY_SIZE, KEY_SIZE), ephemeral: at(8 + NOISE_BYTES + 2 * KEY_SIZE, KEY_SIZE),
  };
}
