/**
 * Errors the Node-facing netstack layer raises, shaped like Node's own network errors
 * (`err.code`, `err.syscall`, `err.address`, `err.port`) so code written for node:net handles
 * them unchanged.
 */
import { WireweaveError } from '../core/errors.ts';

export interface NetError extends Error {
  code: string;
  syscall?: string;
  address?: string;
  port?: number;
  hostname?: string;
}

/** A WireweaveError whose code is Node's (ECONNREFUSED, ETIMEDOUT, ...), with Node's fields. */
export function netError(code: string, message: string, extra: Partial<Omit<NetError, 'message' | 'name' | 'code'>> = {}): NetError {
  return Object.assign(new WireweaveError(code, message), extra);
}

/** Message of a thrown value, for one-line reports. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
