/**
 * removeStaleSocket: what `wireweave down` uses to clear the socket a `--user` daemon cannot
 * unlink. Only a socket nobody answers on is removed; a live one, or any other file, is left.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { link, lstat, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeStaleSocket } from '../../src/device/uapi-server.ts';

const dir = await mkdtemp(join(tmpdir(), 'ww-stale-'));
after(() => rm(dir, { recursive: true, force: true }));

function listen(path: string): Promise<Server> {
  return new Promise((resolve) => {
    const server = createServer((s) => s.destroy());
    server.listen(path, () => resolve(server));
  });
}
const close = (server: Server) => new Promise<void>((r) => server.close(() => r()));
const exists = (path: string) => lstat(path).then(() => true, () => false);

/** A socket file at `<dir>/<name>.sock` whose listener is gone (as a --user daemon leaves it). */
async function deadSocket(name: string): Promise<string> {
  const bound = join(dir, `${name}.bound`);
  const server = await listen(bound);
  const path = join(dir, `${name}.sock`);
  await link(bound, path);
  await close(server); // libuv unlinks the bound name only
  assert.ok(await exists(path));
  return path;
}

describe('removeStaleSocket', () => {
  it('removes a socket nobody answers on', async () => {
    const path = await deadSocket('dead');
    assert.equal(await removeStaleSocket('dead', { dir }), 'removed');
    assert.equal(await exists(path), false);
  });

  it('leaves a socket a daemon answers on, after waiting for it', async () => {
    const path = join(dir, 'live.sock');
    const server = await listen(path);
    let sleeps = 0;
    try {
      assert.equal(await removeStaleSocket('live', { dir, waitMs: 300, sleep: async () => { sleeps++; } }), 'live');
      assert.ok(sleeps >= 3, 'it waited');
      assert.ok(await exists(path));
    } finally {
      await close(server);
    }
  });

  it('removes the socket once a daemon that is shutting down stops answering', async () => {
    const path = join(dir, 'closing.sock');
    const server = await listen(path);
    const bound = join(dir, 'closing.keep');
    let first = true;
    const result = await removeStaleSocket('closing', {
      dir,
      sleep: async () => {
        if (!first) return;
        first = false;
        // Stop answering but keep the file, as a daemon without root does (libuv unlinks
        // the listening name at close: a second name keeps the inode to put back).
        await link(path, bound);
        await close(server);
        await link(bound, path).catch(() => undefined);
        await rm(bound);
      },
    });
    assert.equal(result, 'removed');
    assert.equal(await exists(path), false);
  });

  it('never removes anything that is not a socket', async () => {
    const path = join(dir, 'file.sock');
    await writeFile(path, 'not a socket');
    assert.equal(await removeStaleSocket('file', { dir }), 'not-socket');
    assert.ok(await exists(path));
  });

  it('reports a missing socket as none', async () => {
    assert.equal(await removeStaleSocket('absent', { dir }), 'none');
  });
});
