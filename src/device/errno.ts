/** errno names and errors for the koffi syscall wrappers (linux/tun.ts, linux/bind.ts and their threads). */
import koffi from 'koffi';
import { getSystemErrorMap } from 'node:util';
import { WireweaveError } from '../core/errors.ts';

const errnoNames = new Map<number, string>();

export function errnoName(n: number): string {
  if (errnoNames.size === 0) for (const [name, value] of Object.entries(koffi.os.errno)) if (!errnoNames.has(value)) errnoNames.set(value, name);
  return errnoNames.get(n) ?? `errno ${n}`;
}

/** The number of an errno name on this platform (e.g. 'EAGAIN'). */
export function errno(name: string): number {
  const v = koffi.os.errno[name];
  if (v === undefined) throw new WireweaveError('ERR_UNKNOWN_ERRNO', `unknown errno ${name}`);
  return v;
}

/** A WireweaveError whose code is the errno name, e.g. "TUNSETIFF wg0: EBUSY (device or resource busy)". */
export function sysError(what: string, e: number): WireweaveError & { errno: number } {
  const name = errnoName(e);
  return Object.assign(new WireweaveError(name, `${what}: ${name} (${errnoText(e)})`), { errno: e });
}

/**
 * An errno in words, as strerror says it ("address already in use"), for messages to users:
 * `n` is a number (either sign, as the UAPI's `errno=-98` or a Node error's `errno`) or a
 * name ('EADDRINUSE'). Unknown ones fall back to the name or "error N".
 */
export function errnoText(n: number | string): string {
  const map = getSystemErrorMap();
  if (typeof n === 'number') return map.get(-Math.abs(n))?.[1] ?? `error ${Math.abs(n)}`;
  for (const [name, text] of map.values()) if (name === n) return text;
  return n;
}
