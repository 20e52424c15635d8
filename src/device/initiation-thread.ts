/**
 * Handshake initiations computed on a worker thread (initiation-worker.ts), so that 10,000 peers
 * dialing at once keep the device's thread free for packets and the UAPI, and use a second core.
 * In 'auto' mode the thread starts only for a burst of initiations and stops when idle: an idle
 * daemon, or one with a few peers, carries no extra thread.
 */
import type { Worker } from 'node:worker_threads';
import type { InitiationJob, InitiationResult } from '../core/handshake.ts';
import { zeroize } from '../core/crypto.ts';
import { JOB_BYTES, RESULT_BYTES, readResult, writeJob } from './initiation-offload.ts';
import type { InitiationOffload } from './initiation-offload.ts';
import { startWorker } from './worker.ts';

/** One message each way: `count` job or result records in a transferred buffer. */
export interface InitiationBatch {
  buffer: ArrayBuffer;
  count: number;
}

/** How a ThreadInitiationOffload runs its thread. */
export interface InitiationThreadOptions {
  /** 'auto' (default): start on a burst, stop when idle. 'always': start now and keep it. */
  mode?: 'auto' | 'always';
  /** 'auto' stops the thread after this long without a job (default 30 s). */
  idleMs?: number;
  /** Where the thread's start, stop and failure are told (a DeviceLogger fits). */
  logger?: InitiationThreadLogger;
  /** @internal Starts the thread (tests give one that fails). */
  spawn?: () => Worker;
}

/** The logger of a ThreadInitiationOffload. */
export interface InitiationThreadLogger {
  /** The thread failed: initiations go back to the device's thread. */
  error(message: string): void;
  /** The thread started or stopped. */
  verbose(message: string): void;
}

/** Jobs per message to the thread: ~3 ms of work, so results come back in steps of that. */
const BATCH_JOBS = 64;
/** Jobs sent and not yet answered (~2.4 MB of records); beyond, the endpoint computes its own. */
const MAX_OUTSTANDING = 16_384;
/** Initiations within BURST_WINDOW_MS that start the thread in 'auto' mode. */
const BURST = 32;
const BURST_WINDOW_MS = 1000;

export class ThreadInitiationOffload implements InitiationOffload {
  private readonly mode: 'auto' | 'always';
  private readonly idleMs: number;
  private readonly logger: InitiationThreadLogger | null;
  private readonly spawn: () => Worker;
  private listener: (result: InitiationResult) => void = () => {};
  private worker: Worker | null = null;
  private ready = false;
  private failed = false;
  private closed = false;
  private outstanding = 0;
  private batch: Uint8Array | null = null;
  private batchCount = 0;
  private flushQueued = false;
  private burstStart = -Infinity;
  private burstCount = 0;
  private lastJobAt = 0;
  private idleTimer: ReturnType<typeof setInterval> | null = null;
  /** Jobs the thread computed (for tests and diagnosis). */
  computed = 0;

  constructor(options: InitiationThreadOptions = {}) {
    this.mode = options.mode ?? 'auto';
    this.idleMs = options.idleMs ?? 30_000;
    this.logger = options.logger ?? null;
    this.spawn = options.spawn ?? (() => startWorker('initiation-worker', { name: 'initiations' }));
    if (this.mode === 'always') this.start('always on');
  }

  /** Whether the thread is up and taking jobs. */
  get running(): boolean { return this.ready; }

  submit(job: InitiationJob): boolean {
    if (!this.ready) {
      this.noteDemand();
      return false;
    }
    if (this.outstanding >= MAX_OUTSTANDING) return false;
    this.batch ??= new Uint8Array(BATCH_JOBS * JOB_BYTES);
    writeJob(this.batch, this.batchCount++, job);
    this.outstanding++;
    this.lastJobAt = performance.now();
    if (this.batchCount === BATCH_JOBS) this.flush();
    else if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => this.flush());
    }
    return true;
  }

  onResult(listener: (result: InitiationResult) => void): void { this.listener = listener; }

  /** Ends the thread for good (jobs in flight are dropped). */
  async close(): Promise<void> {
    this.closed = true;
    this.stop();
  }

  private noteDemand(): void {
    if (this.worker || this.failed || this.closed) return;
    const now = performance.now();
    if (now - this.burstStart > BURST_WINDOW_MS) { this.burstStart = now; this.burstCount = 0; }
    if (++this.burstCount >= BURST) this.start(`${BURST} initiations within ${BURST_WINDOW_MS} ms`);
  }

  private start(why: string): void {
    let worker: Worker;
    try {
      worker = this.spawn();
    } catch (err) {
      this.fail(`could not start: ${(err as Error).message}`);
      return;
    }
    this.worker = worker;
    worker.unref();
    worker.on('online', () => {
      if (this.worker !== worker) return;
      this.ready = true;
      this.lastJobAt = performance.now();
      this.logger?.verbose(`initiation thread started (${why})`);
    });
    worker.on('message', (batch: InitiationBatch) => {
      if (this.worker === worker) this.onBatch(batch);
      else zeroize(new Uint8Array(batch.buffer)); // a stopped thread's last answer
    });
    worker.on('error', (err) => { if (this.worker === worker) this.fail(err.message); });
    worker.on('exit', (code) => { if (this.worker === worker) this.fail(`exited with code ${code}`); });
    if (this.mode === 'auto') {
      this.idleTimer = setInterval(() => this.checkIdle(), Math.max(1, this.idleMs / 2));
      this.idleTimer.unref();
    }
  }

  private flush(): void {
    this.flushQueued = false;
    const batch = this.batch;
    if (!batch || this.batchCount === 0) return;
    const message: InitiationBatch = { buffer: batch.buffer as ArrayBuffer, count: this.batchCount };
    this.batch = null;
    this.batchCount = 0;
    if (!this.worker) { zeroize(batch); return; }
    this.worker.postMessage(message, [message.buffer]);
  }

  private onBatch(batch: InitiationBatch): void {
    const results = new Uint8Array(batch.buffer, 0, batch.count * RESULT_BYTES);
    this.outstanding = Math.max(0, this.outstanding - batch.count);
    this.computed += batch.count;
    try {
      for (let i = 0; i < batch.count; i++) {
        const result = readResult(results, i);
        if (result && !this.closed) this.listener(result);
      }
    } finally {
      zeroize(results);
    }
  }

  private checkIdle(): void {
    if (this.outstanding === 0 && this.batchCount === 0 && performance.now() - this.lastJobAt >= this.idleMs) {
      this.logger?.verbose('initiation thread stopped (idle)');
      this.stop();
    }
  }

  private fail(why: string): void {
    this.logger?.error(`initiation thread: ${why}; initiations are computed on the main thread`);
    this.failed = true;
    this.stop();
  }

  /** Ends the thread; jobs in flight are lost (their peers retransmit, as for a lost initiation). */
  private stop(): void {
    if (this.idleTimer) clearInterval(this.idleTimer);
    this.idleTimer = null;
    const worker = this.worker;
    this.worker = null;
    this.ready = false;
    this.outstanding = 0;
    if (this.batch) zeroize(this.batch);
    this.batch = null;
    this.batchCount = 0;
    this.burstStart = -Infinity;
    if (worker) void worker.terminate();
  }
}
