/**
 * The layer check (scripts/check-imports.ts) on small trees written for the purpose, and on src/.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkImports } from '../../scripts/check-imports.ts';

const SRC = fileURLToPath(new URL('../../src', import.meta.url));

function tree(files: Record<string, string>): { dir: string; [Symbol.dispose](): void } {
  const dir = mkdtempSync(join(tmpdir(), 'ww-imports-'));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return { dir, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

describe('layer check', () => {
  it('finds nothing wrong in src/', () => {
    assert.deepEqual(checkImports(SRC), []);
  });

  it('accepts imports down the layers and within a layer', () => {
    using t = tree({
      'core/a.ts': "export const a = 1;\n",
      'crypto/p.ts': "import { a } from '../core/a.ts';\nexport const p = a;\n",
      'netstack/stack/s.ts': "import { a } from '../../core/a.ts';\nimport { n } from '../n.ts';\nexport const s = a + n;\n",
      'netstack/n.ts': "export const n = 2;\n",
      'cli/main.ts': "import { s } from '../netstack/stack/s.ts';\nexport const m = s;\n",
    });
    assert.deepEqual(checkImports(t.dir), []);
  });

  it('refuses an upward import, type-only and dynamic ones too', () => {
    using t = tree({
      'core/a.ts': "import type { D } from '../device/d.ts';\nexport const a = 1 as unknown as D;\n",
      'device/d.ts': "export type D = number;\nexport const d = () => import('../mesh/m.ts');\n",
      'mesh/m.ts': "export const m = 1;\n",
      'crypto/p.ts': "export { m } from '../mesh/m.ts';\n",
    });
    assert.deepEqual(checkImports(t.dir), [
      'src/core/a.ts:1: core imports device (src/device/d.ts), a layer above it',
      'src/crypto/p.ts:1: crypto imports mesh (src/mesh/m.ts), a layer above it',
      'src/device/d.ts:2: device imports mesh (src/mesh/m.ts), a layer above it',
    ]);
  });

  it('refuses a file outside the layers and an import leaving src/', () => {
    using t = tree({
      'demo/x.ts': "export const x = 1;\n",
      'cli/y.ts': "import { z } from '../../test/z.ts';\nexport const y = z;\n",
    });
    assert.deepEqual(checkImports(t.dir), [
      'src/cli/y.ts:1: imports ../test/z.ts from outside the layers',
      'src/demo/x.ts: not in a layer (core, crypto, device, netstack, mesh, cli)',
    ]);
  });

  it('refuses an import cycle, and shows the loop', () => {
    using t = tree({
      'device/a.ts': "import { b } from './b.ts';\nexport const a = () => b;\n",
      'device/b.ts': "import { c } from './c.ts';\nexport const b = () => c;\n",
      'device/c.ts': "export { a as c } from './a.ts';\n",
      'device/self.ts': "import * as me from './self.ts';\nexport const x = me;\n",
    });
    assert.deepEqual(checkImports(t.dir), [
      'import cycle: src/device/a.ts -> src/device/b.ts -> src/device/c.ts -> src/device/a.ts',
      'import cycle: src/device/self.ts -> src/device/self.ts',
    ]);
  });

  it('refuses a cycle through type-only imports too', () => {
    using t = tree({
      'cli/t1.ts': "import { type T2 } from './t2.ts';\nexport type T1 = T2 | 1;\n",
      'cli/t2.ts': "export type { T1 as T2 } from './t1.ts';\n",
    });
    assert.deepEqual(checkImports(t.dir), ['import cycle: src/cli/t1.ts -> src/cli/t2.ts -> src/cli/t1.ts']);
  });

  it('lets a cycle through a dynamic import() be (the cli loads its commands so)', () => {
    using t = tree({
      'cli/main.ts': "export interface Io { out: string }\nexport const run = async () => (await import('./cmd.ts')).cmd;\n",
      'cli/cmd.ts': "import type { Io } from './main.ts';\nexport const cmd = (io: Io) => io.out;\n",
    });
    assert.deepEqual(checkImports(t.dir), []);
  });
});
