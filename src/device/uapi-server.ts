/**
 * The UAPI unix socket, as wireguard-go's ipc/uapi_linux.go serves it: `<dir>/<ifname>.sock`
 * in /var/run/wireguard (created 0755 if missing), connectable only by its owner, refused when
 * a live daemon already answers on that name, replacing a stale one, and watched so that the
 * daemon can exit when the socket file is deleted.
 *
 * The socket is bound inside a fresh private (0700) directory, chmod'ed 0600, then hard-linked
 * to its public name: it never appears with looser permissions, the process umask is never
 * touched (no race with other code, works in worker threads), and the link fails atomically
 * when the name is taken. On close the public name is unlinked only while it is still ours.
 */
import type { FSWatcher } from 'node:fs';
import { watch } from 'node:fs';
import { chmod, link, lstat, mkdir, mkdtemp, rename, rm, unlink } from 'node:fs/promises';
import type { Server, Socket } from 'node:net';
import { createConnection, createServer } from 'node:net';
import { basename, join } from 'node:path';
import type { UapiTarget } from './config.ts';
import type { UapiConnectionOptions } from './uapi.ts';
import { handleUapiConnection } from './uapi.ts';
import { WireweaveError } from '../core/errors.ts';

export const DEFAULT_SOCKET_DIR = '/var/run/wireguard';

/** Bytes in sockaddr_un.sun_path, the terminating NUL included. */
const SUN_PATH_MAX = 108;

export interface UapiServerOptions {
  /** Directory of the sockets; `wg` only looks in /var/run/wireguard (the default). */
  dir?: string;
  /** Limits and logging for each connection. */
  connection?: UapiConnectionOptions;
  /** Simultaneous connections; more are refused by the kernel-side close. Default 64. */
  maxConnections?: number;
  /** How often the socket file is checked besides the directory watch. Default 1000 ms. */
  pollIntervalMs?: number;
  log?: (message: string) => void;
}

export interface UapiServer {
  /** `<dir>/<ifname>.sock` */
  readonly path: string;
  /** Stops listening, closes open connections, removes the socket file if it is still ours. */
  close(): Promise<void>;
  /**
   * `cb` runs once when the socket file is deleted or replaced by another file (the listener
   * is closed by then): wireguard-go exits in that case. Runs at once if that already happened.
   */
  onSocketRemoved(cb: () => void): void;
}

type ErrnoError = NodeJS.ErrnoException;

function codeOf(err: unknown): string | undefined {
  return (err as ErrnoError | null)?.code;
}

/** Node-style codes (EADDRINUSE, EEXIST, EINVAL, ENAMETOOLONG), as net.Server.listen gives. */
function errnoError(code: string, message: string): WireweaveError {
  return new WireweaveError(code, message);
}

type Occupant = 'none' | 'live' | 'stale' | 'not-socket';

/** What is at `path`: nothing, a socket someone answers on, a dead socket, or another file. */
async function probe(path: string): Promise<Occupant> {
  try {
    const st = await lstat(path);
    if (!st.isSocket()) return 'not-socket';
  } catch (err) {
    if (codeOf(err) === 'ENOENT') return 'none';
    throw err;
  }
  return new Promise<Occupant>((resolve, reject) => {
    const sock = createConnection({ path });
    const timer = setTimeout(() => {
      sock.destroy();
      resolve('live'); // accepted into a backlog nobody drains: somebody still owns it
    }, 1000);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.destroy();
      resolve('live');
    });
    sock.once('error', (err) => {
      clearTimeout(timer);
      sock.destroy();
      const code = codeOf(err);
      if (code === 'ECONNREFUSED') resolve('stale');
      else if (code === 'ENOENT') resolve('none');
      else if (code === 'EAGAIN') resolve('live');
      else reject(err);
    });
  });
}

function listen(server: Server, path: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen({ path }, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EMLINK']);

function refuse(path: string, occupant: Occupant): void {
  if (occupant === 'live') throw errnoError('EADDRINUSE', `${path} is in use by another process`);
  if (occupant === 'not-socket') throw errnoError('EEXIST', `${path} exists and is not a socket`);
}

/** Gives the bound socket at `from` the name `to`, unless a live daemon holds that name. */
async function install(from: string, to: string): Promise<void> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await link(from, to);
      return;
    } catch (err) {
      const code = codeOf(err) ?? '';
      if (code === 'EEXIST') {
        // wireguard-go: a socket that answers belongs to another daemon; a dead one is removed.
        const occupant = await probe(to);
        refuse(to, occupant);
        if (occupant === 'stale') {
          await unlink(to).catch((e: unknown) => {
            if (codeOf(e) !== 'ENOENT') throw e;
          });
        }
        continue;
      }
      if (!NO_HARD_LINKS.has(code)) throw err;
      // A file system without hard links for sockets: check, then rename (not exclusive).
      refuse(to, await probe(to));
      await rename(from, to);
      return;
    }
  }
  throw errnoError('EADDRINUSE', `${to} keeps being recreated by another process`);
}

/**
 * Listens on `<dir>/<ifname>.sock` and serves UAPI requests for `target` on it. Rejects when
 * the name is invalid or too long for a unix socket, when a live daemon answers on that
 * socket (EADDRINUSE), when a non-socket file has the name (EEXIST), or on file system errors.
 */
export async function startUapiServer(ifname: string, target: UapiTarget, opts: UapiServerOptions = {}): Promise<UapiServer> {
  if (ifname === '' || ifname.includes('/') || ifname.includes('\0') || ifname === '.' || ifname === '..') {
    throw errnoError('EINVAL', `invalid interface name ${JSON.stringify(ifname)}`);
  }
  const dir = opts.dir ?? DEFAULT_SOCKET_DIR;
  const log = opts.log ?? (() => {});
  const path = join(dir, `${ifname}.sock`);
  const tmpTemplate = join(dir, '.uapi-XXXXXX', 's');
  for (const p of [path, tmpTemplate]) {
    if (Buffer.byteLength(p) >= SUN_PATH_MAX) {
      throw errnoError('ENAMETOOLONG', `socket path ${p} is longer than a unix socket address allows`);
    }
  }

  await mkdir(dir, { recursive: true, mode: 0o755 });

  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (sock) => {
    sockets.add(sock);
    sock.once('close', () => sockets.delete(sock));
    void handleUapiConnection(sock, target, opts.connection);
  });
  server.maxConnections = opts.maxConnections ?? 64;

  const tmpDir = await mkdtemp(join(dir, '.uapi-')); // mode 0700: nobody else can connect yet
  const tmpPath = join(tmpDir, 's');
  let ino: number;
  let dev: number;
  try {
    await listen(server, tmpPath);
    await chmod(tmpPath, 0o600);
    await install(tmpPath, path);
    const st = await lstat(path);
    ino = st.ino;
    dev = st.dev;
  } catch (err) {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    throw err;
  } finally {
    // The listener keeps working through the public name; libuv's unlink of the bound path at
    // close then finds nothing (so it can never delete another daemon's socket).
    await rm(tmpDir, { recursive: true, force: true });
  }
  server.on('error', (err) => log(`uapi: listener error: ${err.message}`));

  let closed = false;
  let removed = false;
  const callbacks: (() => void)[] = [];
  let watcher: FSWatcher | null = null;
  let checking = false;

  const stopWatching = (): void => {
    clearInterval(poll);
    watcher?.close();
    watcher = null;
  };

  const socketRemoved = (): void => {
    if (removed || closed) return;
    removed = true;
    log(`uapi: ${path} was removed`);
    stopWatching();
    server.close();
    for (const cb of callbacks.splice(0)) {
      try {
        cb();
      } catch (err) {
        log(`uapi: onSocketRemoved callback threw: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  };

  const check = async (): Promise<void> => {
    if (checking || removed || closed) return;
    checking = true;
    try {
      const st = await lstat(path);
      if (!st.isSocket() || st.ino !== ino || st.dev !== dev) socketRemoved();
    } catch (err) {
      if (codeOf(err) === 'ENOENT' || codeOf(err) === 'ENOTDIR') socketRemoved();
    } finally {
      checking = false;
    }
  };

  const poll = setInterval(() => void check(), opts.pollIntervalMs ?? 1000);
  poll.unref();
  try {
    const name = basename(path);
    watcher = watch(dir, { persistent: false }, (_event, file) => {
      if (file === null || file === name) void check();
    });
    watcher.on('error', () => {
      watcher?.close();
      watcher = null; // polling goes on
    });
  } catch {
    watcher = null;
  }

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      closed = true;
      stopWatching();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      try {
        // Once the name was seen removed it is not ours any more, whatever is there now: a new
        // file can get the old inode number back (tmpfs reuses them at once).
        const st = await lstat(path);
        if (!removed && st.isSocket() && st.ino === ino && st.dev === dev) await unlink(path);
      } catch {
        // gone already
      }
    })();
    return closing;
  };

  return {
    path,
    close,
    onSocketRemoved(cb: () => void): void {
      if (removed) queueMicrotask(cb);
      else if (!closed) callbacks.push(cb);
    },
  };
}

export type StaleSocketResult = 'removed' | 'none' | 'live' | 'not-socket';

/**
 * Removes `<dir>/<ifname>.sock` when it is a socket that nobody answers on: what a daemon
 * running without root (`--user`) leaves behind, since /var/run/wireguard is root's. A
 * daemon that is shutting down is given `waitMs` to stop answering. Anything but a socket is
 * left alone, and so is a socket that was replaced between the check and the unlink.
 */
export async function removeStaleSocket(
  ifname: string,
  opts: { dir?: string; waitMs?: number; sleep?: (ms: number) => Promise<void> } = {},
): Promise<StaleSocketResult> {
  const path = join(opts.dir ?? DEFAULT_SOCKET_DIR, `${ifname}.sock`);
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const step = 100;
  for (let waited = 0; ; waited += step) {
    if (waited > 0) {
      if (waited > (opts.waitMs ?? 3000)) return 'live';
      await sleep(step);
    }
    let before;
    try {
      before = await lstat(path);
    } catch (err) {
      if (codeOf(err) === 'ENOENT') return 'none';
      throw err;
    }
    const occupant = await probe(path);
    if (occupant === 'none' || occupant === 'not-socket') return occupant;
    if (occupant === 'stale') {
      try {
        const now = await lstat(path);
        if (!now.isSocket() || now.ino !== before.ino || now.dev !== before.dev) continue; // replaced: look again
        await unlink(path);
        return 'removed';
      } catch (err) {
        if (codeOf(err) === 'ENOENT') return 'none';
        throw err;
      }
    }
  }
}
