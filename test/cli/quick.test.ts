/**
 * `wireweave up|down` as typed: help, bad options, errors in words (missing file, no root), and
 * the nftables script a default route gets, against the text /usr/bin/wg-quick builds. None of
 * these reaches the point of creating anything (the interop test covers that).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { defaultRouteFirewall, quick } from '../../src/cli/quick.ts';

const BIN = fileURLToPath(new URL('../support/wireweave.js', import.meta.url));

function sink(): { stream: Writable; text(): string } {
  let text = '';
  return { stream: new Writable({ write(c: Buffer, _e, cb) { text += c.toString(); cb(); } }), text: () => text };
}

async function run(action: 'up' | 'down', args: string[]) {
  const out = sink(), err = sink();
  const code = await quick(action, args, { stdout: out.stream, stderr: err.stream });
  return { code, stdout: out.text(), stderr: err.text() };
}

const isRoot = process.getuid?.() === 0;

describe('wireweave up/down on the command line', () => {
  for (const action of ['up', 'down'] as const) {
    for (const flag of ['--help', '-h']) {
      it(`${action} ${flag} describes the config file and what up and down do`, async () => {
        const r = await run(action, [flag]);
        assert.equal(r.code, 0);
        assert.equal(r.stderr, '');
        for (const word of ['CONFIG_FILE', '/etc/wireguard/INTERFACE.conf', 'Address', 'DNS', 'MTU', 'Table', 'PostUp', 'SaveConfig', 'up:', 'down:', 'nftables', 'CAP_NET_ADMIN', 'wireweave proxy']) {
          assert.ok(r.stdout.includes(word), `help mentions ${word}`);
        }
      });
    }
  }

  it('up --foo names the bad option', async () => {
    const r = await run('up', ['--foo', 'wg0']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, "wireweave: unknown option `--foo' for up; it takes only a CONFIG_FILE or INTERFACE (see 'wireweave up --help')\n");
  });

  it('a missing config file says "no such file", not an errno name', { skip: !isRoot && 'the root check comes first' }, async () => {
    const r = await run('up', ['/nonexistent-ww-dir/wg9.conf']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'wireweave: cannot read /nonexistent-ww-dir/wg9.conf: no such file or directory\n');
  });

  it('up without root says it needs root or CAP_NET_ADMIN and points to proxy/forward', { skip: !isRoot && !fs.existsSync('/usr/bin/setpriv') ? 'needs root and setpriv' : false }, () => {
    // As `nobody` with no capabilities, through the real command.
    const argv = isRoot ? ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', '--inh-caps=-all', process.execPath, BIN] : [process.execPath, BIN];
    for (const action of ['up', 'down']) {
      const r = spawnSync(argv[0]!, [...argv.slice(1), action, '/nonexistent-ww-dir/wg9.conf'], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`^wireweave: ${action} needs root or CAP_NET_ADMIN .*'wireweave proxy /nonexistent-ww-dir/wg9\\.conf' or 'wireweave forward /nonexistent-ww-dir/wg9\\.conf' for a rootless tunnel\\n$`));
    }
    // `wireweave IFNAME` (wireguard-go's form) says it in words too, not as a bare errno name.
    const name = `wwq${process.pid % 100000}`;
    const r = spawnSync(argv[0]!, [...argv.slice(1), '-f', name], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`failed to create interface ${name}: TUNSETIFF ${name}: EPERM \\(operation not permitted\\); creating an interface needs root or CAP_NET_ADMIN \\(\`wireweave proxy\` and \`wireweave forward\``));
  });
});

describe("the default route's nftables table", () => {
  const addr4 = '7: wg9    inet 10.9.0.2/24 scope global wg9\\       valid_lft forever preferred_lft forever\n';
  const addr6 = [
    '7: wg9    inet6 fd09::2/64 scope global \\       valid_lft forever preferred_lft forever',
    '7: wg9    inet6 fe80::8f7c:3a1e:2b4d:91c0/64 scope link stable-privacy \\       valid_lft forever preferred_lft forever',
    '',
  ].join('\n');

  it('is the script wg-quick add_default feeds nft for IPv4', () => {
    assert.equal(defaultRouteFirewall('wg9', 4, 51820, addr4), [
      'add table ip wg-quick-wg9',
      'add chain ip wg-quick-wg9 preraw { type filter hook prerouting priority -300; }',
      'add chain ip wg-quick-wg9 premangle { type filter hook prerouting priority -150; }',
      'add chain ip wg-quick-wg9 postmangle { type filter hook postrouting priority -150; }',
      'add rule ip wg-quick-wg9 preraw iifname != "wg9" ip daddr 10.9.0.2 fib saddr type != local drop',
      'add rule ip wg-quick-wg9 postmangle meta l4proto udp mark 51820 ct mark set mark ',
      'add rule ip wg-quick-wg9 premangle meta l4proto udp meta mark set ct mark ',
      '',
    ].join('\n'));
  });

  it('drops to every IPv6 address of the interface, link-local included, as wg-quick does', () => {
    const script = defaultRouteFirewall('wg9', 6, 51821, addr6);
    assert.match(script, /^add table ip6 wg-quick-wg9\n/);
    assert.match(script, /preraw iifname != "wg9" ip6 daddr fd09::2 fib saddr type != local drop\n/);
    assert.match(script, /preraw iifname != "wg9" ip6 daddr fe80::8f7c:3a1e:2b4d:91c0 fib saddr type != local drop\n/);
    assert.match(script, /postmangle meta l4proto udp mark 51821 ct mark set mark \n/);
  });
});
