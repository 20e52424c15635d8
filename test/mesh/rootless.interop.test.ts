/**
 * Must-show 3 of issue 14: the same as must-show 1 with A rootless. A runs `wireweave proxy` as
 * an unprivileged user (nobody) with a [Mesh] config and no Endpoint; B runs `wireweave up`
 * (TUN) and an HTTP server on its tunnel address. A and B reach only the hub's namespace H.
 * curl through A's SOCKS5 proxy fetches a file from B through the hub's relay, whole; `show`
 * (as nobody) says relay with a reason.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { skipUnlessRig, WIREWEAVE_BIN } from '../support/netns.ts';
import type { Rig, Spawned } from '../support/netns.ts';
import { meshConf, meshLab, meshPeer, until, writeConf } from './mesh-rig.ts';
import type { MeshLab, MeshSide } from './mesh-rig.ts';

const skip = skipUnlessRig(['wireweave']) || (fs.existsSync('/usr/bin/curl') && fs.existsSync('/usr/bin/setpriv') ? false : 'needs curl and setpriv');
const NOBODY = 65534;
const SIZE = 8_000_000;

describe('mesh: a rootless proxy (as nobody) reaches a TUN peer through the hub', { skip }, () => {
  let lab: MeshLab | undefined;
  let rig: Rig;
  let a: MeshSide, b: MeshSide;
  let dir = '', home = '', xdg = '';
  let proxy: Spawned;
  let sha = '';
  const port = 20000 + ((process.pid + 13) % 20000);
  const asNobody = () => ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', 'env', `XDG_RUNTIME_DIR=${xdg}`, 'HOME=/nonexistent', WIREWEAVE_BIN];

  before(async () => {
    lab = await meshLab({ name: 'mesh-rootless', port, sides: [{ ifname: 'ra', isolated: true }, { ifname: 'rb', isolated: true }] });
    rig = lab.rig;
    dir = lab.dir;
    [a, b] = lab.sides as [MeshSide, MeshSide];
    const hub = lab.hub;
    writeConf(dir, b, meshConf(b, hub.url, [meshPeer(a)]));
    // A's file and runtime directory belong to nobody.
    home = fs.mkdtempSync(path.join(path.dirname(dir), 'ww-mesh-nobody-'));
    fs.chmodSync(home, 0o755);
    xdg = path.join(home, 'run');
    fs.mkdirSync(xdg, { mode: 0o700 });
    fs.chownSync(xdg, NOBODY, NOBODY);
    writeConf(home, a, meshConf(a, hub.url, [meshPeer(b)]));
    fs.chownSync(a.file, NOBODY, NOBODY);
    // The file B serves, and its server on B's tunnel address (once the tunnel is up).
    const blob = crypto.randomBytes(SIZE);
    sha = crypto.createHash('sha256').update(blob).digest('hex');
    fs.writeFileSync(path.join(dir, 'blob'), blob);
    fs.writeFileSync(path.join(dir, 'serve.mjs'), `import http from 'node:http'; import fs from 'node:fs';
const blob = fs.readFileSync(${JSON.stringify(path.join(dir, 'blob'))});
http.createServer((q, r) => { r.writeHead(200, { 'content-length': blob.length }); r.end(blob); }).listen(8080, process.argv[2], () => console.log('serving'));\n`);
  });

  after(async () => {
    await lab?.destroy();
    if (home) fs.rmSync(home, { recursive: true, force: true });
  });

  it('curl through the proxy fetches 8 MB from B whole; show says relay, with the reason', async (t) => {
    const up = await rig.exec(b.node, [WIREWEAVE_BIN, 'up', b.file], { timeoutMs: 30_000 });
    assert.equal(up.code, 0, up.stderr);
    const server = rig.spawnIn(b.node, [process.execPath, path.join(dir, 'serve.mjs'), b.node.tun4]);
    await server.waitFor(/serving/, 10_000);
    proxy = rig.spawnIn(a.node, [...asNobody(), 'proxy', a.file, '--socks5', '127.0.0.1:0']);
    await until('the SOCKS5 proxy', async () => /SOCKS5 proxy on 127\.0\.0\.1:\d+/.test(proxy.stderr()) || !proxy.running(), 30_000);
    assert.ok(proxy.running(), proxy.stderr());
    assert.match(proxy.stderr(), /mesh through ws:\/\/\S+ \(relay auto\)/);
    const socks = /SOCKS5 proxy on (127\.0\.0\.1:\d+)/.exec(proxy.stderr())![1]!;
    const out = path.join(home, 'got');
    const started = Date.now();
    const r = await rig.exec(a.node, ['curl', '-sS', '--retry', '5', '--retry-all-errors', '--retry-delay', '1', '--max-time', '120',
      '--socks5', socks, '-o', out, `http://${b.node.tun4}:8080/blob`], { timeoutMs: 150_000 });
    assert.equal(r.code, 0, `${r.stderr}\n${proxy.stderr()}`);
    t.diagnostic(`8 MB through A's SOCKS5 proxy and the hub in ${((Date.now() - started) / 1000).toFixed(2)} s`);
    const got = fs.readFileSync(out);
    assert.equal(got.length, SIZE);
    assert.equal(crypto.createHash('sha256').update(got).digest('hex'), sha);
    const shown = await until('show as nobody to say why A is relayed', async () => {
      const s = await rig.exec(a.node, [...asNobody(), 'show', a.ifname]);
      return /path: relay .*\(no UDP answer from any candidate\)/.test(s.stdout) ? s.stdout : undefined;
    }, 20_000);
    assert.match(shown, /^ {2}hub: ws:\/\/\S+ \(connected, seen as /m);
    assert.match(shown, /^ {2}endpoint: 127\.3\.3\.40:\d+$/m);
    const st = fs.statSync(path.join(xdg, 'wireweave', `${a.ifname}.mesh`));
    assert.deepEqual([st.uid, st.mode & 0o777], [NOBODY, 0o600], 'the status socket is the user\'s, private');
    const bShow = (await rig.exec(b.node, [WIREWEAVE_BIN, 'show', b.ifname])).stdout;
    assert.match(bShow, /path: relay ws:\/\/\S+ \(/);
  });
});
