/**
 * The rootless part of `wireweave demo`: alice and bob again, now as two complete wireweave
 * netstacks (a WireGuard device whose inside is the userspace TCP/IP stack) on real UDP sockets
 * on loopback. bob serves node:http on his tunnel address through `listen`; alice fetches from
 * it, uploads, pings, and tries an address outside the tunnel, which fails closed.
 */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { Writable } from 'node:stream';
import { encodeBase64, generatePrivateKey } from '../core/keys.ts';
import { systemRng } from '../core/rng.ts';
import { defaultCrypto } from '../crypto/index.ts';
import { netstack } from '../netstack/api.ts';
import type { Netstack, StackFactory } from '../netstack/api.ts';

export interface NetstackDemoOptions {
  quiet: boolean;
  keys?: { alice: Uint8Array; bob: Uint8Array };
  /** Another TCP/IP stack (tests). */
  createStack?: StackFactory;
}

const DOWNLOAD = 2 * 1024 * 1024;
const UPLOAD = 512 * 1024;

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

function write(stream: Writable, text: string): Promise<void> {
  return new Promise((resolve) => stream.write(text, () => resolve()));
}

function size(n: number): string {
  return n >= 1024 * 1024 ? `${+(n / 1024 / 1024).toFixed(1)} MiB` : `${+(n / 1024).toFixed(1)} KiB`;
}

/** Runs the part; true when everything worked. Prints a few lines (one with `quiet`). */
export async function runNetstackDemo(out: Writable, options: NetstackDemoOptions): Promise<boolean> {
  const say = (line: string) => (options.quiet ? Promise.resolve() : write(out, `${line}\n`));
  const aliceKey = options.keys?.alice ?? generatePrivateKey(systemRng);
  const bobKey = options.keys?.bob ?? generatePrivateKey(systemRng);
  const pub = (k: Uint8Array) => encodeBase64(defaultCrypto.x25519PrivateKey(k).publicKey);
  const payload = randomBytes(DOWNLOAD);
  let alice: Netstack | undefined;
  let bob: Netstack | undefined;
  const web = http.createServer((req, res) => {
    if (req.method === 'POST') {
      const hash = createHash('sha256');
      req.on('data', (c: Buffer) => hash.update(c));
      req.on('end', () => res.end(hash.digest('hex')));
      return;
    }
    res.setHeader('content-type', 'application/octet-stream');
    res.end(payload);
  });
  try {
    await say('\nRootless: the same two peers as netstacks, a userspace TCP/IP stack inside each tunnel (no root, no TUN)');
    bob = await netstack(`[Interface]\nPrivateKey = ${encodeBase64(bobKey)}\nAddress = 10.0.0.2/24\n\n[Peer]\nPublicKey = ${pub(aliceKey)}\nAllowedIPs = 10.0.0.1/32\n`, { createStack: options.createStack, name: 'bob' });
    alice = await netstack(`[Interface]\nPrivateKey = ${encodeBase64(aliceKey)}\nAddress = 10.0.0.1/24\n\n[Peer]\nPublicKey = ${pub(bobKey)}\nAllowedIPs = 10.0.0.2/32\nEndpoint = 127.0.0.1:${bob.port}\n`, { createStack: options.createStack, name: 'alice' });
    await say(`  alice  10.0.0.1, UDP 127.0.0.1:${alice.port}, public key ${pub(aliceKey)}`);
    await say(`  bob    10.0.0.2, UDP 127.0.0.1:${bob.port}, public key ${pub(bobKey)}`);
    bob.listen(80).on('connection', (socket) => web.emit('connection', socket));
    await say('  bob    serves HTTP on 10.0.0.2:80 (node:http, its connections from the netstack)');

    const pinged = await alice.ping('10.0.0.2', { timeoutMs: 5000 });
    await say(`  alice  ping 10.0.0.2: echo reply in ${pinged.time.toFixed(1)} ms (the first one waits for the handshake)`);

    let started = performance.now();
    const res = await alice.fetch('http://10.0.0.2/file');
    const body = new Uint8Array(await res.arrayBuffer());
    let ms = performance.now() - started;
    const downloadOk = res.status === 200 && sha256(body) === sha256(payload);
    await say(`  alice  GET http://10.0.0.2/file → ${res.status} ${res.statusText}, ${size(body.length)} in ${ms.toFixed(0)} ms, SHA-256 ${downloadOk ? 'matches' : 'DOES NOT MATCH'}`);

    const upload = randomBytes(UPLOAD);
    started = performance.now();
    const posted = await alice.fetch('http://10.0.0.2/upload', { method: 'POST', body: upload });
    const echoed = await posted.text();
    ms = performance.now() - started;
    const uploadOk = posted.status === 200 && echoed === sha256(upload);
    await say(`  alice  POST ${size(UPLOAD)} → bob's SHA-256 of what arrived ${uploadOk ? 'matches' : 'DOES NOT MATCH'} (${ms.toFixed(0)} ms)`);

    let failedClosed = false;
    try {
      await alice.fetch('http://192.0.2.80/');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      failedClosed = code === 'EHOSTUNREACH';
      await say(`  alice  GET http://192.0.2.80/ → ${code}: outside every peer's allowed IPs, so it is never sent (fails closed)`);
    }
    const ok = downloadOk && uploadOk && failedClosed;
    await write(out, `Netstack: ${ok ? 'OK' : 'FAILED'}. fetch, upload, ping and fail-closed through a rootless tunnel.\n`);
    return ok;
  } catch (err) {
    await write(out, `Netstack: FAILED: ${err instanceof Error ? err.message : String(err)}\n`);
    return false;
  } finally {
    web.close();
    await alice?.close();
    await bob?.close();
  }
}
