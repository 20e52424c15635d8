/**
 * Errors the Node-facing netstack layer raises, shaped like Node's own network errors
 * (`err.code`, `err.syscall`, `err.address`, `err.port`) so code written for node:net handles
 * them unchanged.
 */

export interface NetError extends Error {
  code: string;
  syscall?: string;
  address?: string;
  port?: number;
  hostname?: string;
}

export function netError(code: string, message: string, extra: Partial<Omit<NetError, 'message' | 'name'>> = {}): NetError {
  return Object.assign(new Error(message), { code }, extra) as NetError;
}

/** Message of a thrown value, for one-line reports. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
