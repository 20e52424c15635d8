/**
 * A hub on a NATS server that requires a token (`nats-server --auth`): `wireweave hub --nats …
 * --nats-token FILE` joins the fleet; without the token, or with a wrong one, it stays a
 * standalone hub and says so; the token never appears in its output.
 *
 * Skips (with a reason) when nats-server is missing, unless CI is set.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, natsMissing, natsSkip, start, until } from '../nats-tools.ts';

const BIN = fileURLToPath(new URL('../../support/wireweave.js', import.meta.url));

async function federationUp(port: number): Promise<number | null> {
  try {
    const m = /^wireweave_hub_federation_up (\d)$/m.exec(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

test('a hub authenticates to NATS with --nats-token, and never shows the token', { skip: natsSkip, timeout: 60_000 }, async () => {
  assert.equal(natsMissing, undefined, `CI is set but ${natsMissing}`);
  const dir = mkdtempSync(join(tmpdir(), `ww-nats-auth-${process.pid}-`));
  const procs: ChildProcess[] = [];
  try {
    const token = `tok-${process.pid}-s3cret`;
    const natsPort = await freePort();
    start('nats-server', ['-a', '127.0.0.1', '-p', String(natsPort), '-js', '-sd', join(dir, 'js'), '-n', `ww-auth-${process.pid}`, '--auth', token], procs);
    const good = join(dir, 'token'), bad = join(dir, 'wrong');
    writeFileSync(good, `${token}\n`, { mode: 0o600 });
    writeFileSync(bad, 'not-the-token\n', { mode: 0o600 });
    const url = `nats://127.0.0.1:${natsPort}`;
    const hub = async (extra: string[]) => {
      const port = await freePort();
      const p = start(process.execPath, [BIN, 'hub', '--listen', `127.0.0.1:${port}`, '--nats', url, ...extra], procs);
      await until('the hub to listen', async () => (await federationUp(port)) !== null || p.child.exitCode !== null);
      assert.equal(p.child.exitCode, null, p.output());
      return { p, port };
    };
    const withToken = await hub(['--nats-token', good]);
    await until('the hub with the token to join the fleet', async () => (await federationUp(withToken.port)) === 1);
    const wrong = await hub(['--nats-token', bad]);
    const none = await hub([]);
    for (const h of [wrong, none]) {
      await until('the refused hub to say so', () => /serving local clients only/.test(h.p.output()));
      assert.equal(await federationUp(h.port), 0, 'not on the fleet');
      assert.match(h.p.output(), /[Aa]uthoriz/, 'the log says why');
    }
    for (const h of [withToken, wrong, none]) assert.ok(!h.p.output().includes(token), 'the token is never printed');
    assert.match(withToken.p.output(), /fleet through NATS nats:\/\/127\.0\.0\.1:\d+ \(token auth\)/);
  } finally {
    for (const c of procs) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
