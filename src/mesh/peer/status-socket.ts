/**
 * The mesh's status for `wireweave show`: a unix socket next to the UAPI socket,
 * `/var/run/wireguard/IFNAME.mesh` (not `.sock`, so wg does not take it for an interface), that
 * answers every connection with one JSON document and closes. It holds no secret (public keys,
 * paths, candidate addresses) but is still owner-only, as the UAPI socket is.
 */
import { chmod, unlink } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import type { Server } from 'node:net';
import { join } from 'node:path';

export function meshStatusPath(ifname: string, dir: string): string {
  return join(dir, `${ifname}.mesh`);
}

export interface StatusSocket {
  readonly path: string;
  close(): Promise<void>;
}

export async function startStatusSocket(path: string, status: () => unknown): Promise<StatusSocket> {
  // The UAPI server already made sure no live daemon has this interface name: a file here is stale.
  await unlink(path).catch(() => undefined);
  const server: Server = createServer((sock) => {
    sock.on('error', () => {});
    let text: string;
    try { text = JSON.stringify(status()); } catch (err) { text = JSON.stringify({ error: (err as Error).message }); }
    sock.end(text + '\n');
  });
  server.maxConnections = 16;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => { server.off('error', reject); resolve(); });
  });
  await chmod(path, 0o600);
  return {
    path,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await unlink(path).catch(() => undefined);
    },
  };
}

/** The JSON a status socket answers, or null when there is none (not a mesh interface). */
export function readStatusSocket(path: string, timeoutMs = 2000): Promise<unknown> {
  return new Promise((resolve) => {
    const sock = createConnection({ path });
    let text = '';
    const done = (v: unknown) => { clearTimeout(timer); sock.destroy(); resolve(v); };
    const timer = setTimeout(() => done(null), timeoutMs);
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => { if (text.length < 1 << 20) text += d; });
    sock.on('error', () => done(null));
    sock.on('end', () => {
      try { done(JSON.parse(text)); } catch { done(null); }
    });
  });
}
