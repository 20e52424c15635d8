/**
 * The lock per public key (src/netstack/key-lock.ts): the first process owns it, a second one
 * learns the first's pid, a lock left by a dead process is taken over, release removes only ours.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { lockPublicKey } from '../../src/netstack/key-lock.ts';

describe('lock per public key', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ww-lock-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const key = 'ab+cd/ef'.padEnd(43, 'A') + '=';

  it('tells the second holder about the first, live one', () => {
    const first = lockPublicKey(dir, key, 'proxy wg0');
    assert.equal(first.other, null);
    assert.ok(!path.basename(first.path).includes('/') && !first.path.includes('+'), 'a file name from the key');
    assert.equal(fs.statSync(first.path).mode & 0o777, 0o600);
    // Another process: our own pid is alive, so a different pid asking sees us.
    const second = lockPublicKey(dir, key, 'forward wg0', process.pid + 1_000_000);
    assert.deepEqual(second.other, { pid: process.pid, what: 'proxy wg0' });
    second.release();
    assert.ok(fs.existsSync(first.path), 'the second does not remove the first one\'s lock');
    first.release();
    assert.ok(!fs.existsSync(first.path), 'released');
  });

  it('takes over a lock whose process is gone', () => {
    const dead = 2 ** 22 + 12345; // above Linux's PID_MAX_LIMIT (2^22): no such process
    const stale = lockPublicKey(dir, key, 'proxy old', dead);
    assert.equal(stale.other, null);
    const next = lockPublicKey(dir, key, 'proxy new');
    assert.equal(next.other, null, 'no warning for a dead holder');
    assert.match(fs.readFileSync(next.path, 'utf8'), new RegExp(`^${process.pid}\\nproxy new\\n$`));
    stale.release();
    assert.ok(fs.existsSync(next.path), 'the old holder no longer removes it');
    next.release();
  });
});
