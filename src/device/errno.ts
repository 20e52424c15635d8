/** errno names and errors for the koffi syscall wrappers (tun-linux.ts, bind-linux.ts). */
import koffi from 'koffi';

const errnoNames = new Map<number, string>();

export function errnoName(n: number): string {
  if (errnoNames.size === 0) for (const [name, value] of Object.entries(koffi.os.errno)) if (!errnoNames.has(value)) errnoNames.set(value, name);
  return errnoNames.get(n) ?? `errno ${n}`;
}

/** The number of an errno name on this platform (e.g. 'EAGAIN'). */
export function errno(name: string): number {
  const v = koffi.os.errno[name];
  if (v === undefined) throw new Error(`unknown errno ${name}`);
  return v;
}

/** An Error carrying the syscall and errno name, e.g. "TUNSETIFF wg0: EBUSY". */
export function sysError(what: string, e: number): Error & { code: string; errno: number } {
  const name = errnoName(e);
  return Object.assign(new Error(`${what}: ${name}`), { code: name, errno: e });
}
