/**
 * fetch over https through the tunnel: TLS (tls.connect({ socket })) on a TunnelSocket, with SNI
 * and certificate checks against the name the tunnel's DNS resolved. The certificate is made by
 * openssl at test time (.ci/run installs it); without openssl the test is skipped with the reason,
 * except under CI, where a missing openssl is a failure.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { decodeMessage, encodeResponse, TYPE_A } from '../../src/netstack/dns.ts';
import { which } from '../support/wggo.ts';
import { makePair } from './helpers.ts';
import type { Pair } from './helpers.ts';

const missing = which('openssl') ? undefined : 'needs openssl to make a certificate: not found on PATH';

describe('fetch over https through the tunnel', { skip: process.env.CI ? false : (missing ?? false) }, () => {
  let pair: Pair;
  let dir: string;
  let cert: string;
  let server: https.Server;

  before(async () => {
    assert.equal(missing, undefined, `CI is set but ${missing}`);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ww-tls-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=secure.test', '-addext', 'subjectAltName=DNS:secure.test', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
    cert = fs.readFileSync(path.join(dir, 'cert.pem'), 'utf8');
    pair = await makePair({ aliceInterface: 'DNS = 10.0.0.2' });
    const dns = pair.bob.udp(53);
    dns.on('message', (msg: Buffer, r: { address: string; port: number }) => {
      const q = decodeMessage(msg);
      if (!q) return;
      const { name, type } = q.questions[0]!;
      const answers = /^(secure|other)\.test$/.test(name) && type === TYPE_A ? [{ name, type, ttl: 5, value: '10.0.0.2' }] : [];
      dns.send(encodeResponse(q, answers), r.port, r.address);
    });
    server = https.createServer({ key: fs.readFileSync(path.join(dir, 'key.pem')), cert }, (req, res) => {
      res.end(`tls ok ${(req.socket as { servername?: string }).servername ?? ''} ${req.url}`);
    });
    pair.bob.listen(443).on('connection', (s) => server.emit('connection', s));
  });
  after(async () => {
    server?.close();
    await pair?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('verifies the certificate for the resolved name and sends SNI', async () => {
    const res = await pair.alice.fetch('https://secure.test/hello', { tls: { ca: cert } });
    assert.equal(res.status, 200, 'status');
    assert.equal(await res.text(), 'tls ok secure.test /hello', 'body, with the SNI the server saw');
  });

  it('rejects a certificate for another name, and an unknown CA', async () => {
    await assert.rejects(pair.alice.fetch('https://other.test/', { tls: { ca: cert } }), /altnames|does not match/i, 'wrong name');
    await assert.rejects(pair.alice.fetch('https://secure.test/'), /self[- ]signed|unable to verify|certificate/i, 'unknown CA');
  });
});
