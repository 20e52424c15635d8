/**
 * The layer check (run by scripts/test.sh and `npm run lint`): every import in src/ goes down
 * the layer diagram or stays in its own layer, and no two files import each other, directly or
 * round a loop.
 *
 * Layers, lowest first: core, crypto, device, netstack, mesh, cli. crypto sits above core
 * because the providers implement core's CryptoProvider interface (and use its byte helpers);
 * core never imports a provider, it is handed one. A layer may import from itself and any layer
 * below it, type-only imports and dynamic import() included.
 *
 * Cycles are checked per file over static imports, type-only ones included (none of them can
 * be part of a loop: two modules that need each other's types are one concern or want a third
 * module for the types). A dynamic import() is left out: it runs when called, after every
 * module has loaded, and the cli loads its commands that way (a command imports the cli's
 * types, the cli imports the command when it is asked for).
 *
 * Usage: node --import tsx scripts/check-imports.ts [src-dir]   exit 1 on any violation
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

export const LAYERS = ['core', 'crypto', 'device', 'netstack', 'mesh', 'cli'] as const;

interface Edge {
  to: string;
  line: number;
  /** A static import or re-export (type-only or not): part of the cycle check. */
  static: boolean;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(path));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(path);
  }
  return out.sort();
}

function importsOf(file: string): Edge[] {
  const text = readFileSync(file, 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const edges: Edge[] = [];
  const add = (spec: ts.Expression, isStatic: boolean): void => {
    if (!ts.isStringLiteral(spec) || !spec.text.startsWith('.')) return;
    const line = sf.getLineAndCharacterOfPosition(spec.getStart(sf)).line + 1;
    edges.push({ to: resolve(dirname(file), spec.text), line, static: isStatic });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) {
      add(node.moduleSpecifier, true);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier !== undefined) {
      add(node.moduleSpecifier, true);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments[0] !== undefined) {
      add(node.arguments[0], false);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      add(node.argument.literal as ts.Expression, false);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return edges;
}

function layerOf(srcDir: string, file: string): string | undefined {
  const rel = relative(srcDir, file);
  if (rel.startsWith('..')) return undefined;
  return rel.split(sep)[0];
}

/** Every elementary cycle would be too many to print; one per strongly connected component. */
function cycles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const indexOf = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const strongConnect = (v: string): void => {
    indexOf.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!indexOf.has(w)) {
        strongConnect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, indexOf.get(w)!));
      }
    }
    if (low.get(v) === indexOf.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      const selfLoop = (graph.get(v) ?? []).includes(v);
      if (component.length > 1 || selfLoop) components.push(component);
    }
  };
  for (const v of graph.keys()) if (!indexOf.has(v)) strongConnect(v);
  // Show each as a path round the loop: a shortest way back from its first file to itself.
  return components.map((component) => loopThrough(graph, new Set(component), component.sort()[0]!));
}

function loopThrough(graph: Map<string, string[]>, within: Set<string>, start: string): string[] {
  const previous = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift()!;
    for (const w of graph.get(v) ?? []) {
      if (!within.has(w)) continue;
      if (w === start) {
        const path = [start];
        for (let at = v; at !== start; at = previous.get(at)!) path.splice(1, 0, at);
        path.push(start);
        return path;
      }
      if (!previous.has(w)) {
        previous.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start, start];
}

/** The violations in srcDir, one line each; empty when the house is in order. */
export function checkImports(srcDir: string): string[] {
  const problems: string[] = [];
  const files = sourceFiles(srcDir);
  const known = new Set(files);
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const from = layerOf(srcDir, file);
    const rank = LAYERS.indexOf(from as (typeof LAYERS)[number]);
    const name = relative(srcDir, file);
    if (rank < 0) {
      problems.push(`src/${name}: not in a layer (${LAYERS.join(', ')})`);
      continue;
    }
    const statics: string[] = [];
    for (const edge of importsOf(file)) {
      const target = relative(srcDir, edge.to);
      const to = layerOf(srcDir, edge.to);
      const toRank = LAYERS.indexOf(to as (typeof LAYERS)[number]);
      if (to === undefined || toRank < 0) {
        problems.push(`src/${name}:${edge.line}: imports ${target} from outside the layers`);
      } else if (toRank > rank) {
        problems.push(`src/${name}:${edge.line}: ${from} imports ${to} (src/${target}), a layer above it`);
      }
      if (edge.static && known.has(edge.to)) statics.push(edge.to);
    }
    graph.set(file, statics);
  }
  for (const loop of cycles(graph)) {
    problems.push(`import cycle: ${loop.map((f) => 'src/' + relative(srcDir, f)).join(' -> ')}`);
  }
  return problems;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const srcDir = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..', 'src'));
  const problems = checkImports(srcDir);
  for (const p of problems) console.error(p);
  if (problems.length > 0) {
    console.error(`\n${problems.length} import problem(s); layers, lowest first: ${LAYERS.join(' < ')}`);
    process.exit(1);
  }
  console.log(`imports: ${sourceFiles(srcDir).length} files, layers ${LAYERS.join(' < ')}, no cycles`);
}
