/**
 * The arrangement of wireguard-go's own test suite: both daemons start in the root namespace
 * (their UDP sockets stay there, on 127.0.0.1), and each TUN device is then moved into a
 * namespace of its own. wireweave must keep working after the move, like wireguard-go.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { canRunWireguardGo, run, startWireguardGo } from '../support/wggo.ts';
import type { WgGo } from '../support/wggo.ts';
import { genKeyPair, genPsk, WIREWEAVE_BIN } from '../support/netns.ts';

const can = canRunWireguardGo();
if (process.env.CI && !can.ok) throw new Error(`interop prerequisites missing in CI: ${can.reason}`);
const skip = can.ok ? false : `needs root and wireguard-go: ${(can as { reason: string }).reason}`;

const k = 100 + (process.pid % 100);
const ifname = `wwmv${process.pid % 100000}`;
const ns = `wwmv${process.pid}`;
const ours4 = `10.${k}.7.2`, theirs4 = `10.${k}.7.1`;

async function ok(cmd: string, args: string[], opts: { input?: string } = {}): Promise<string> {
  const r = await run(cmd, args, { ...opts, timeoutMs: 20000 });
  assert.equal(r.code, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

describe('wireweave keeps working after its TUN moves to another namespace', { skip }, () => {
  let wg: WgGo;
  const us = genKeyPair();
  const psk = genPsk();
  let dir = '';

  before(async () => {
    dir = fs.mkdtempSync('/tmp/ww-mv-');
    fs.writeFileSync(`${dir}/key`, us.privateKey + '\n', { mode: 0o600 });
    fs.writeFileSync(`${dir}/psk`, psk + '\n', { mode: 0o600 });
    // Our daemon in the root namespace: its UDP socket stays here.
    await ok(WIREWEAVE_BIN, [ifname]);
    await ok('wg', ['set', ifname, 'private-key', `${dir}/key`, 'listen-port', '0']);
    const port = Number((await ok('wg', ['show', ifname, 'listen-port'])).trim());
    wg = await startWireguardGo({
      privateKey: genKeyPair().privateKey,
      peers: [{ publicKey: us.publicKey, presharedKey: psk, endpoint: `127.0.0.1:${port}`, allowedIPs: [`${ours4}/32`] }],
      tunAddress4: `${theirs4}/24`,
    });
    await ok('wg', ['set', ifname, 'peer', wg.publicKey, 'preshared-key', `${dir}/psk`, 'endpoint', `127.0.0.1:${wg.listenPort}`, 'allowed-ips', `${theirs4}/32`]);
    // Now move our TUN into a namespace of its own and configure it there.
    await ok('ip', ['netns', 'add', ns]);
    await ok('ip', ['link', 'set', ifname, 'netns', ns]);
    await ok('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    await ok('ip', ['-n', ns, 'address', 'add', `${ours4}/24`, 'dev', ifname]);
    await ok('ip', ['-n', ns, 'link', 'set', ifname, 'up']);
  });

  after(async () => {
    await run('ip', ['-n', ns, 'link', 'del', ifname]);
    await run('ip', ['netns', 'del', ns]);
    await wg?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('passes pings both ways between the two moved TUNs', async () => {
    const p = await run('ip', ['netns', 'exec', ns, 'ping', '-c', '3', '-i', '0.2', '-W', '2', theirs4], { timeoutMs: 20000 });
    assert.equal(p.code, 0, p.stdout + p.stderr);
    const back = await wg.exec(['ping', '-c', '3', '-i', '0.2', '-W', '2', ours4], { timeoutMs: 20000 });
    assert.equal(back.code, 0, back.stdout + back.stderr);
    const dump = await ok('wg', ['show', ifname, 'latest-handshakes']);
    assert.match(dump, /\t[1-9]\d+\n?$/);
  });

  it('exits (removing its interface) when its UAPI socket file is removed, and on SIGTERM', async () => {
    for (const how of ['socket', 'sigterm'] as const) {
      const name = `${ifname}${how === 'socket' ? 's' : 't'}`.slice(0, 15);
      await ok(WIREWEAVE_BIN, [name]);
      const sock = `/var/run/wireguard/${name}.sock`;
      assert.ok(fs.existsSync(sock), 'socket created');
      const pid = Number((await ok('pgrep', ['-f', `wireweave(\\.js)? --foreground (-- )?${name}$`])).trim().split('\n')[0]);
      assert.ok(pid > 0, 'daemon found');
      if (how === 'socket') fs.rmSync(sock);
      else process.kill(pid, 'SIGTERM');
      const end = Date.now() + 5000;
      const alive = () => { try { process.kill(pid, 0); return true; } catch { return false; } };
      while (Date.now() < end && (alive() || fs.existsSync(`/sys/class/net/${name}`))) await new Promise((r) => setTimeout(r, 100));
      assert.equal(alive(), false, `daemon exited after ${how}`);
      assert.equal(fs.existsSync(`/sys/class/net/${name}`), false, 'its TUN is gone');
      assert.equal(fs.existsSync(sock), false, 'no socket left');
    }
  });

  it('exits when the moved interface is deleted in its new namespace', async () => {
    await ok('ip', ['-n', ns, 'link', 'del', ifname]);
    const end = Date.now() + 5000;
    while (Date.now() < end && fs.existsSync(`/var/run/wireguard/${ifname}.sock`)) await new Promise((r) => setTimeout(r, 100));
    assert.equal(fs.existsSync(`/var/run/wireguard/${ifname}.sock`), false, 'socket removed, daemon gone');
  });
});
