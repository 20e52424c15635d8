/**
 * A hub on a NATS server that requires a token (`nats-server --auth`): `wireweave hub --nats …
 * --nats-token FILE` joins the fleet; without the token, or with a wrong one, it stays a
 * standalone hub and says so; the token never appears in its output.
 *
 * Skips (with a reason) when nats-server is missing, unless CI is set.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../support/wireweave.js', import.meta.url));
const natsMissing = spawnSync('nats-server', ['--version']).error ? 'nats-server not found on PATH (apt-get install nats-server)' : undefined;
const skip: string | false = process.env.CI ? false : (natsMissing ?? false);

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Proc { child: ChildProcess; output: () => string }

function start(cmd: string, args: string[], procs: ChildProcess[]): Proc {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(child);
  let out = '';
  child.stdout!.on('data', (d) => { out += d; });
  child.stderr!.on('data', (d) => { out += d; });
  return { child, output: () => out };
}

async function federationUp(port: number): Promise<number | null> {
  try {
    const m = /^wireweave_hub_federation_up (\d)$/m.exec(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

test('a hub authenticates to NATS with --nats-token, and never shows the token', { skip, timeout: 60_000 }, async () => {
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
