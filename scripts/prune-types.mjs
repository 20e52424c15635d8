// Deletes the declaration files in dist/ that no public entry point's types reach (package.json
// "exports" → "types", followed through relative imports and re-exports). They describe
// internals (reader threads, ring layouts, parsers) that are not part of the API, and were
// about an eighth of the package. The package test compiles a strict consumer against what is
// left, so a declaration the API needs cannot go missing unnoticed.
import fs from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const entries = Object.values(pkg.exports).map((e) => (typeof e === 'object' && e.types ? path.join(root, e.types) : null)).filter(Boolean);
const reference = /(?:from|import\()\s*["'](\.{1,2}\/[^"']+)["']/g;
const reached = new Set();
const stack = [...entries];
while (stack.length > 0) {
  const file = stack.pop();
  if (reached.has(file) || !fs.existsSync(file)) continue;
  reached.add(file);
  for (const m of fs.readFileSync(file, 'utf8').matchAll(reference)) {
    stack.push(path.join(path.dirname(file), m[1]).replace(/\.(js|ts)$/, '.d.ts'));
  }
}
let removed = 0;
const walk = (dir) => {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p);
    else if (p.endsWith('.d.ts') && !reached.has(p)) {
      fs.rmSync(p);
      fs.rmSync(`${p}.map`, { force: true });
      removed++;
    }
  }
};
walk(path.join(root, 'dist'));
if (entries.some((e) => !reached.has(e))) throw new Error('prune-types: an entry point has no declaration file');
if (process.env.PRUNE_TYPES_VERBOSE) process.stderr.write(`prune-types: kept ${reached.size} declaration files, removed ${removed}\n`);
