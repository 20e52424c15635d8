/**
 * The initiation thread (started by initiation-thread.ts through worker.ts): computes batches
 * of handshake initiations (computeInitiation: two X25519 and the hashing each) and sends the
 * results back, erasing every secret it was given or made once it is in the transferred buffer.
 */
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import { computeInitiation } from '../core/handshake.ts';
import { zeroize } from '../core/crypto.ts';
import { defaultCrypto } from '../crypto/index.ts';
import { JOB_BYTES, RESULT_BYTES, readJob, writeResult } from './initiation-offload.ts';
import type { InitiationBatch } from './initiation-thread.ts';

/** The thread's nice value: CFS gives it ~1/10 of a core the device's thread wants as well. */
const INITIATION_NICE = 10;

// Initiations are background work: below the device's thread (packets, the UAPI) and `wg`
// reading a dump, so on a busy machine they take what is left. Linux keeps a nice value per
// thread; elsewhere (no /proc/thread-self) the thread keeps the process's.
try {
  const tid = Number(readlinkSync('/proc/thread-self').split('/')[2]);
  if (tid > 0) setPriority(tid, INITIATION_NICE);
} catch { /* not Linux, or not allowed: same priority as the device */ }

const port = parentPort!;
port.on('message', (batch: InitiationBatch) => {
  const jobs = new Uint8Array(batch.buffer, 0, batch.count * JOB_BYTES);
  const results = new Uint8Array(batch.count * RESULT_BYTES);
  for (let i = 0; i < batch.count; i++) {
    const job = readJob(jobs, i);
    const result = computeInitiation(defaultCrypto, job);
    writeResult(results, i, result);
    if (result) zeroize(result.chainKey, result.hash);
  }
  zeroize(jobs);
  const reply: InitiationBatch = { buffer: results.buffer, count: batch.count };
  port.postMessage(reply, [results.buffer]);
});
