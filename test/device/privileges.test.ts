/**
 * Dropping root after start-up (--user / WIREWEAVE_USER, src/device/privileges.ts): the order
 * of the calls and the refusal to go on when root could be regained, on a double of `process`;
 * and, as root, a real drop in a child process whose UAPI socket stays root's and keeps
 * answering `wg`-style requests.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dropPrivileges, lookupUser } from '../../src/device/privileges.ts';
import type { ProcessIds } from '../../src/device/privileges.ts';
import { uapiRequest } from '../../src/device/uapi-client.ts';

function fakeProcess(opts: { root?: boolean; sticky?: boolean } = {}): ProcessIds & { calls: string[] } {
  let uid = opts.root === false ? 1000 : 0;
  const calls: string[] = [];
  return {
    calls,
    getuid: () => uid,
    geteuid: () => uid,
    setgroups: (g) => { calls.push(`setgroups ${g.join(',')}`); },
    initgroups: (u, g) => { calls.push(`initgroups ${u} ${g}`); },
    setgid: (g) => { calls.push(`setgid ${g}`); },
    setuid: (u) => {
      calls.push(`setuid ${u}`);
      if (u === 0 && uid !== 0 && !opts.sticky) throw Object.assign(new Error('EPERM, Operation not permitted'), { code: 'EPERM' });
      uid = u;
    },
  };
}

describe('dropping privileges', () => {
  it('sets groups, then gid, then uid, and checks that root cannot be regained', () => {
    const p = fakeProcess();
    dropPrivileges({ name: 'nobody', uid: 65534, gid: 65534 }, p);
    assert.deepEqual(p.calls, ['initgroups nobody 65534', 'setgid 65534', 'setuid 65534', 'setuid 0']);
    const numeric = fakeProcess();
    dropPrivileges({ name: '4242', uid: 4242, gid: 100 }, numeric);
    assert.equal(numeric.calls[0], 'setgroups 100');
  });

  it('refuses, in one line, when not root, when the target is root, or when root comes back', () => {
    assert.throws(() => dropPrivileges({ name: 'nobody', uid: 65534, gid: 65534 }, fakeProcess({ root: false })), /^WireweaveError: cannot switch to user nobody: not running as root$/);
    assert.throws(() => dropPrivileges({ name: 'root', uid: 0, gid: 0 }, fakeProcess()), /refusing/);
    assert.throws(() => dropPrivileges({ name: 'nobody', uid: 65534, gid: 65534 }, fakeProcess({ sticky: true })), /^WireweaveError: switching to user nobody did not drop root$/);
  });

  it('looks users up by name, and says so when there is none', () => {
    const nobody = lookupUser('nobody');
    assert.ok(nobody.uid > 0 && Number.isInteger(nobody.gid), 'nobody has a uid and a gid');
    assert.throws(() => lookupUser('no-such-user-wireweave'), /^ConfigError: no such user: no-such-user-wireweave$/);
    assert.throws(() => lookupUser('-rf'), /^ConfigError: invalid user name "-rf"$/);
  });

  // Skipped without root, except under CI, where it fails instead.
  const needsRoot = process.getuid?.() !== 0 && !process.env.CI ? 'needs root' : false;
  it('as root: the UAPI socket keeps working, still owned by root, after the process became nobody', { skip: needsRoot }, async () => {
    assert.equal(process.getuid?.(), 0, 'needs root (CI runs it as root)');
    const dir = mkdtempSync(join(tmpdir(), 'wireweave-priv-'));
    chmodSync(dir, 0o755); // like /var/run/wireguard
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./privileges.child.ts', import.meta.url)), dir, 'nobody'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const ready = await new Promise<string>((resolve, reject) => {
        let out = '', err = '';
        child.stdout.on('data', (d: Buffer) => { out += d; if (out.includes('\n')) resolve(out.trim()); });
        child.stderr.on('data', (d: Buffer) => { err += d; });
        child.once('exit', (code) => reject(new Error(`child exited with ${code}: ${err}`)));
      });
      const nobody = lookupUser('nobody');
      assert.equal(ready, `ready ${nobody.uid} ${nobody.gid}`);
      // Real, effective, saved and file-system ids are all nobody's; no supplementary root group.
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      assert.match(status, new RegExp(`^Uid:\\t${nobody.uid}\\t${nobody.uid}\\t${nobody.uid}\\t${nobody.uid}$`, 'm'));
      assert.match(status, new RegExp(`^Gid:\\t${nobody.gid}\\t${nobody.gid}\\t${nobody.gid}\\t${nobody.gid}$`, 'm'));
      assert.doesNotMatch(status, /^Groups:.*\b0\b/m);
      const sock = statSync(join(dir, 'wwpriv0.sock'));
      assert.equal(sock.uid, 0, 'the socket stays root\'s');
      assert.equal(sock.mode & 0o777, 0o600, 'and only root can connect');
      const set = await uapiRequest('wwpriv0', `set=1\nlisten_port=40123\n\n`, dir);
      assert.equal(set, 'errno=0\n\n');
      const get = await uapiRequest('wwpriv0', 'get=1\n\n', dir);
      assert.match(get, /^listen_port=40123\nerrno=0\n\n$/);
    } finally {
      child.kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
