/**
 * One error hierarchy (docs/errors.md): every error class the package exports is a
 * WireweaveError with a stable code, src/ throws no plain Error, and every code src/ uses is
 * documented.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WireweaveError } from '../../src/core/errors.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SRC = join(ROOT, 'src');
const DOC = readFileSync(join(ROOT, 'docs', 'errors.md'), 'utf8');
/** The package's entry points (package.json "exports"). */
const ENTRY_POINTS = ['core/index.ts', 'crypto/index.ts', 'crypto/portable.ts', 'device/index.ts', 'netstack/index.ts'];
const CODE = /^[A-Z][A-Z0-9_]*$/;

/** How to make one of each exported error class; a new class needs a line here. */
const SAMPLES: Record<string, unknown[]> = {
  WireweaveError: ['ERR_CONFIG', 'x'],
  ConfigError: ['ERR_CONFIG', 'x'],
  EncodingError: ['x'],
  KeyFormatError: ['length', 'x'],
  UapiError: [22, 'x'],
  WgQuickConfigError: ['wg0.conf', 1, 'x'],
};

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

function documented(code: string): boolean {
  return DOC.includes('`' + code + '`');
}

describe('one error hierarchy', () => {
  it('every exported error class is a WireweaveError with a documented stable code', async () => {
    const seen: string[] = [];
    for (const entry of ENTRY_POINTS) {
      const module = (await import(join(SRC, entry))) as Record<string, unknown>;
      for (const [name, value] of Object.entries(module)) {
        if (typeof value !== 'function' || !(value.prototype instanceof Error)) continue;
        seen.push(name);
        const args = SAMPLES[name];
        assert.ok(args, `${entry} exports ${name}: add it to SAMPLES and docs/errors.md`);
        const err = Reflect.construct(value, args) as Error & { code?: unknown };
        assert.ok(err instanceof WireweaveError, `${name} extends WireweaveError`);
        assert.ok(WireweaveError.is(err), `WireweaveError.is(new ${name})`);
        assert.equal(typeof err.code, 'string', `${name}'s code`);
        assert.match(err.code as string, CODE, `${name}'s code`);
        assert.ok(documented(err.code as string), `${name}'s code ${String(err.code)} is in docs/errors.md`);
        assert.ok(DOC.includes('`' + name + '`'), `${name} is in docs/errors.md`);
        assert.match(err.message, /x$/, `${name} keeps the message as given`);
      }
    }
    assert.deepEqual(seen.sort(), Object.keys(SAMPLES).sort(), 'the classes in SAMPLES are the exported ones');
  });

  it('src/ throws no plain Error and declares no class extending Error but WireweaveError', () => {
    const offenders: string[] = [];
    for (const file of sources(SRC)) {
      const name = relative(SRC, file).split('\\').join('/');
      readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
        if (/\bnew Error\(/.test(line) || (/\bclass \w+ extends Error\b/.test(line) && name !== 'core/errors.ts')) {
          offenders.push(`src/${name}:${i + 1}: ${line.trim()}`);
        }
      });
    }
    assert.deepEqual(offenders, []);
  });

  it('every code src/ throws is a stable code in docs/errors.md', () => {
    const literal = /(?:new (?:WireweaveError|ConfigError)\(|netError\(|errnoError\(|super\()\s*'([^']*)'/g;
    const codes = new Map<string, string>();
    for (const file of sources(SRC)) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(literal)) codes.set(m[1]!, relative(ROOT, file));
    }
    assert.ok(codes.size > 30, `found the codes (${codes.size})`);
    for (const [code, file] of codes) {
      assert.match(code, CODE, `${file}: code ${code}`);
      assert.ok(documented(code), `${file}: code ${code} is in docs/errors.md`);
    }
  });
});
