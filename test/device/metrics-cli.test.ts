/**
 * The daemon's observability and hardening options as the command line takes them: LOG_LEVEL
 * with wireguard-go's meaning and line format (or JSON lines), and `--metrics` / `--user`
 * refused in one line, before anything is created, when they cannot work.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { main } from '../../src/cli/main.ts';
import { logLevelRank, makeLogger } from '../../src/device/logger.ts';

function sink(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d: Buffer) => { text += d.toString(); });
  return { stream, text: () => text };
}

describe('daemon logging', () => {
  it('reads LOG_LEVEL as wireguard-go does: verbose/debug, error (default and anything else), silent', () => {
    assert.equal(logLevelRank(undefined), 1);
    assert.equal(logLevelRank('error'), 1);
    assert.equal(logLevelRank('bogus'), 1);
    assert.equal(logLevelRank('verbose'), 2);
    assert.equal(logLevelRank('debug'), 2);
    assert.equal(logLevelRank('silent'), 0);
    const out = sink();
    const quiet = makeLogger('wg0', 'error', out.stream);
    quiet.verbose('not shown');
    quiet.error('shown');
    assert.match(out.text(), /^ERROR: \(wg0\) \d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d shown\n$/);
    const none = sink();
    makeLogger('wg0', 'silent', none.stream).error('nothing');
    assert.equal(none.text(), '');
  });

  it('writes one JSON object per line with WIREWEAVE_LOG_FORMAT=json, and keeps text lines one line', () => {
    const out = sink();
    const at = new Date('2026-11-22T06:48:36.123Z');
    const log = makeLogger('wg0', 'verbose', out.stream, 'json', () => at);
    log.verbose('peer(abcd…) handshake completed');
    log.error('two\nlines');
    const lines = out.text().trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, string>);
    assert.deepEqual(lines, [
      { time: '2026-11-22T06:48:36.123Z', level: 'debug', interface: 'wg0', msg: 'peer(abcd…) handshake completed' },
      { time: '2026-11-22T06:48:36.123Z', level: 'error', interface: 'wg0', msg: 'two\nlines' },
    ]);
    const text = sink();
    makeLogger('wg0', 'error', text.stream).error('two\nlines');
    assert.equal(text.text().split('\n').length, 2, 'one line and the final newline');
  });
});

describe('daemon options', () => {
  const run = async (argv: string[]) => {
    const out = sink(), err = sink();
    const code = await main(argv, { stdin: new PassThrough(), stdout: out.stream, stderr: err.stream });
    return { code, stderr: err.text() };
  };

  it('refuses a bad --metrics address or an unknown --user in one line, creating nothing', async () => {
    assert.deepEqual(await run(['--metrics', ':9586', 'wwopt0']), { code: 1, stderr: 'wireweave: invalid metrics address ":9586": expected [HOST:]PORT, e.g. 127.0.0.1:9586\n' });
    assert.deepEqual(await run(['-f', '--user=no-such-user-wireweave', 'wwopt0']), { code: 1, stderr: 'wireweave: no such user: no-such-user-wireweave\n' });
    const missing = await run(['-f', 'wwopt0', '--metrics']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^wireweave: --metrics needs a value\nUsage: wireweave \[-f\/--foreground\] \[--metrics \[HOST:\]PORT\] \[--user NAME\] \[--\] INTERFACE-NAME\n$/);
  });
});
