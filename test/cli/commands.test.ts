/**
 * `wireweave WORD` where WORD is not one of our commands: wg's and wg-quick's verbs and
 * near-misses of our commands are refused with a hint; plausible interface names still go to
 * the daemon, as wireguard-go takes them. Pure checks here; cli.interop.test.ts runs the real
 * command in a namespace and checks that a refusal creates no socket and no link.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { editDistance, interfaceArgument, nearestCommand, refuseAsInterfaceName } from '../../src/cli/commands.ts';

/** What main() would print for `wireweave ...argv` (pure: a regression here must not create interfaces as root). */
function refusal(argv: string[]): string | null {
  const name = interfaceArgument(argv, /^(?:-f|--foreground|--metrics(?:=.*)?|--user(?:=.*)?)$/);
  return name === undefined ? null : refuseAsInterfaceName(name);
}

describe('wireweave WORD: what is refused as an interface name', () => {
  // `wg --help` lists these; show/genkey/genpsk/pubkey are ours.
  for (const verb of ['showconf', 'set', 'setconf', 'addconf', 'syncconf']) {
    it(`refuses wg's \`${verb}\` with a hint to use wg`, () => {
      assert.match(refusal([verb]) ?? '', new RegExp(`^'${verb}' is a wg command.*did you mean \`wg ${verb}\`\\?.*wireweave -- ${verb}\\)$`));
    });
  }

  for (const verb of ['save', 'strip']) {
    it(`refuses wg-quick's \`${verb}\` with a hint to use wg-quick`, () => {
      assert.match(refusal([verb, 'wg0']) ?? '', new RegExp(`^'${verb}' is a wg-quick command.*did you mean \`wg-quick ${verb}\`\\?`));
    });
  }

  it('refuses wg verbs after daemon flags too (`wireweave -f set`)', () => {
    assert.match(refusal(['-f', '--user', 'nobody', 'set']) ?? '', /did you mean `wg set`\?/);
    assert.match(refusal(['--metrics=:9586', 'shwo']) ?? '', /did you mean `wireweave show`\?/);
    assert.equal(refusal(['--user', 'set', 'wg0']), null, 'a flag value is not the name');
  });

  for (const [typo, meant] of [['genky', 'genkey'], ['shwo', 'show'], ['froward', 'forward'], ['prxy', 'proxy'], ['dwon', 'down'], ['pubky', 'pubkey'], ['Show', 'show']] as const) {
    it(`takes \`${typo}\` for a typo of \`${meant}\``, () => {
      const r = refusal([typo]) ?? '';
      assert.match(r, new RegExp(`\`wireweave ${meant}\``));
      assert.ok(!r.includes('\n'), 'one line');
    });
  }

  it('says a name over 15 characters is too long for an interface (not just "unknown command")', () => {
    assert.equal(refusal(['averyveryverylongname']), "unknown command 'averyveryverylongname', and too long for an interface name (21 characters; Linux allows at most 15)");
  });

  it('never echoes a pasted key', () => {
    const key = 'YAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
    const r = refusal([key]) ?? '';
    assert.match(r, /too long for an interface name/);
    assert.ok(!r.includes(key.slice(0, 12)), r);
  });

  it('keeps plausible interface names (wireguard-go takes any valid name)', () => {
    for (const name of ['wg0', 'wg', 'tun0', 'vpn', 'home', 'office', 'mullvad-se1', 'bogus', 'ww123r1qa', 'up0', 'wg.lan', 'demo1', 'show2', 'down0']) {
      assert.equal(refuseAsInterfaceName(name), null, name);
    }
  });

  it('measures edits with a swap as one', () => {
    assert.equal(editDistance('shwo', 'show'), 1);
    assert.equal(editDistance('genky', 'genkey'), 1);
    assert.equal(editDistance('wg', 'up'), 2);
    assert.equal(nearestCommand('wg'), null);
    assert.equal(nearestCommand('dwn'), 'down');
  });
});
