/**
 * The fuzzing loop shared by all targets: structured generation from a seeded rng plus
 * mutation of a seed corpus (no coverage feedback; see SECURITY.md), a fresh context per batch
 * of inputs, the target's invariants after every input and every batch, and crash handling.
 *
 * A crash is anything thrown by the target (an exception that escaped the code under test or
 * a broken invariant) and any exception or rejection that escaped asynchronously while an
 * input ran. Its input is saved for replay; when it does not fail on its own, the inputs of
 * its batch before it are kept with it, so the file reproduces it on a fresh context.
 */
import { saveCrash } from './corpus.ts';
import { FuzzRng } from './rng.ts';

export interface FuzzTarget<C = unknown> {
  readonly name: string;
  readonly description: string;
  /** Inputs run against one context before it is checked and replaced. */
  readonly batchSize: number;
  /** A fresh context; deterministic, so saved inputs replay the same way. */
  setup(): C | Promise<C>;
  teardown?(ctx: C): void | Promise<void>;
  /** Genuine inputs that mutation starts from. */
  seeds(): Uint8Array[];
  /** The next input: structured generation or a mutation of one of `corpus`. */
  generate(rng: FuzzRng, corpus: readonly Uint8Array[]): Uint8Array;
  /** Runs one input; throws when an invariant breaks. */
  run(ctx: C, input: Uint8Array): void | Promise<void>;
  /** Invariants of the whole context (still works, bounded); throws when one breaks. */
  check(ctx: C): void | Promise<void>;
}

/** A broken invariant (as opposed to an exception that escaped the code under test). */
export class InvariantError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvariantError';
  }
}

export function invariant(ok: unknown, message: string | (() => string)): asserts ok {
  if (!ok) throw new InvariantError(typeof message === 'string' ? message : message());
}

export interface Crash {
  signature: string;
  error: unknown;
  inputs: Uint8Array[];
  saved: string | null;
}

export interface RunResult {
  target: string;
  runs: number;
  crashes: Crash[];
  /** Crashes by signature (the same bug found again is counted, not saved again). */
  crashCount: number;
  seconds: number;
  perSecond: number;
}

export interface RunOptions {
  runs: number;
  seed: number;
  /** Save crashing inputs under test/corpus (default true); tests turn it off. */
  save?: boolean;
  /** Where to save them instead of test/corpus. */
  corpusDir?: string;
  /** Extra seeds (e.g. the saved corpus) to mutate. */
  extraSeeds?: Uint8Array[];
  progress?: (done: number, result: RunResult) => void;
}

/** Exceptions and rejections escaping while an input runs are collected here. */
const escaped: unknown[] = [];
let listening = 0;
const onEscape = (err: unknown): void => { escaped.push(err); };

function listen(): void {
  if (listening++ === 0) {
    process.on('uncaughtException', onEscape);
    process.on('unhandledRejection', onEscape);
  }
}

function unlisten(): void {
  if (--listening === 0) {
    process.off('uncaughtException', onEscape);
    process.off('unhandledRejection', onEscape);
  }
}

/** A macrotask: lets timers and I/O callbacks of the input run, so their errors surface. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function takeEscaped(): unknown {
  return escaped.length ? escaped.splice(0)[0] : undefined;
}

/** One line naming a failure, with numbers blanked so the same bug gets the same signature. */
export function signatureOf(err: unknown): string {
  const e = err instanceof Error ? err : new Error(String(err));
  const frame = (e.stack ?? '').split('\n').slice(1).find((l) => l.includes('/src/')) ?? '';
  const where = frame.replace(/^.*\/(src\/[^:)]+).*$/, '$1');
  // The start of the message only: its tail often quotes the input, which differs every time.
  return `${e.name}: ${e.message.split('\n')[0]!.replace(/\d+/g, 'N').slice(0, 64)}${where ? ` @ ${where}` : ''}`;
}

/**
 * Runs `inputs` in order on a fresh context, then the context check; resolves with the first
 * failure, or undefined when everything holds.
 */
export async function replay<C>(target: FuzzTarget<C>, inputs: readonly Uint8Array[]): Promise<unknown> {
  listen();
  let ctx: C | undefined;
  try {
    ctx = await target.setup();
    for (const input of inputs) {
      await target.run(ctx, input);
      const e = takeEscaped();
      if (e !== undefined) return e;
    }
    await target.check(ctx);
    await settle();
    return takeEscaped();
  } catch (err) {
    return err;
  } finally {
    if (ctx !== undefined) await target.teardown?.(ctx);
    takeEscaped();
    unlisten();
  }
}

export async function runTarget<C>(target: FuzzTarget<C>, opts: RunOptions): Promise<RunResult> {
  const rng = new FuzzRng(opts.seed);
  const corpus = [...target.seeds(), ...(opts.extraSeeds ?? [])];
  const result: RunResult = { target: target.name, runs: 0, crashes: [], crashCount: 0, seconds: 0, perSecond: 0 };
  const seen = new Set<string>();
  const started = performance.now();
  let lastProgress = started;

  const crashed = async (err: unknown, batch: Uint8Array[]): Promise<void> => {
    result.crashCount++;
    const signature = signatureOf(err);
    if (seen.has(signature)) return;
    seen.add(signature);
    // Keep the smallest reproducer we find: one input alone (the last first, then the others:
    // a batch check can fail for an earlier input), else the whole batch.
    let inputs = batch.slice();
    for (let i = batch.length - 1; i >= 0; i--) {
      if ((await replay(target, [batch[i]!])) !== undefined) { inputs = [batch[i]!]; break; }
    }
    const saved = opts.save === false ? null : saveCrash(target.name, inputs, opts.corpusDir);
    result.crashes.push({ signature, error: err, inputs, saved });
  };

  listen();
  try {
    while (result.runs < opts.runs) {
      const ctx = await target.setup();
      const batch: Uint8Array[] = [];
      let failed = false;
      try {
        const n = Math.min(target.batchSize, opts.runs - result.runs);
        for (let i = 0; i < n; i++) {
          const input = target.generate(rng, corpus);
          batch.push(input);
          result.runs++;
          try {
            await target.run(ctx, input);
          } catch (err) {
            await crashed(err, batch);
            failed = true;
            break;
          }
          const e = takeEscaped();
          if (e !== undefined) { await crashed(e, batch); failed = true; break; }
        }
        if (!failed) {
          try {
            await target.check(ctx);
            await settle();
            const e = takeEscaped();
            if (e !== undefined) throw e;
          } catch (err) {
            await crashed(err, batch);
          }
        }
      } finally {
        await target.teardown?.(ctx);
        takeEscaped();
      }
      const now = performance.now();
      if (opts.progress && now - lastProgress > 2000) {
        lastProgress = now;
        result.seconds = (now - started) / 1000;
        result.perSecond = result.runs / result.seconds;
        opts.progress(result.runs, result);
      }
    }
  } finally {
    unlisten();
  }
  result.seconds = (performance.now() - started) / 1000;
  result.perSecond = result.seconds > 0 ? result.runs / result.seconds : 0;
  return result;
}
