/**
 * One lock file per public key in the runtime directory, so that a second process bringing up a
 * tunnel with the same private key learns of the first: the peer follows whichever of the two
 * sent last (roaming), so both lose packets and the endpoint flips between them. The lock only
 * informs (the caller warns); it never stops a tunnel. A lock whose process is gone is taken over.
 */
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface KeyLock {
  readonly path: string;
  /** Another live process that holds the lock for this key, if any. */
  readonly other: { pid: number; what: string } | null;
  /** Removes the lock file if it is still ours. */
  release(): void;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readLock(path: string): { pid: number; what: string } | null {
  try {
    const [pid, what] = readFileSync(path, 'utf8').split('\n');
    const n = Number(pid);
    return Number.isInteger(n) && n > 0 ? { pid: n, what: (what ?? '').slice(0, 200) } : null;
  } catch {
    return null;
  }
}

/**
 * Takes the lock for `publicKey` (base64) in `dir` (a private directory), recording our pid
 * and `what` (e.g. "proxy wg0"). `other` names a live holder; we then do not own the file.
 */
export function lockPublicKey(dir: string, publicKey: string, what: string, pid = process.pid): KeyLock {
  const path = join(dir, `${publicKey.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')}.lock`);
  const content = `${pid}\n${what.replace(/\n/g, ' ')}\n`;
  let other: KeyLock['other'] = null;
  let owned = false;
  for (let attempt = 0; attempt < 3 && !owned && !other; attempt++) {
    try {
      writeFileSync(path, content, { flag: 'wx', mode: 0o600 });
      owned = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = readLock(path);
      if (holder && holder.pid !== pid && alive(holder.pid)) other = holder;
      else {
        try { unlinkSync(path); } catch { /* raced with another taker: look again */ }
      }
    }
  }
  return {
    path,
    other,
    release: () => {
      if (!owned) return;
      owned = false;
      if (readLock(path)?.pid === pid) {
        try { unlinkSync(path); } catch { /* gone already */ }
      }
    },
  };
}
