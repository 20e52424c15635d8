// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/**', 'bench/results/**', 'dist/**', 'docs/api/**', '.stryker-tmp/**', 'reports/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    // Plain ESM JavaScript for Node: the launchers (bin/wireweave, the tests' source launcher),
    // the examples and the package test's consumer.
    files: ['bin/wireweave', 'test/support/wireweave.js', 'examples/**/*.mjs', 'test/package/fixture/*.mjs'],
    languageOptions: {
      sourceType: 'module',
      globals: Object.fromEntries(
        ['console', 'URL', 'TextEncoder', 'TextDecoder', 'setTimeout', 'clearTimeout'].map((name) => [name, 'readonly']),
      ),
    },
  },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    // The core must stay portable: no Node built-ins, no globals that only Node has. So must the
    // mesh's protocol code, which a peer inside a web page runs too.
    files: ['src/core/**/*.ts', 'src/netstack/stack/**/*.ts', 'src/mesh/protocol/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: ['node:*', 'fs', 'net', 'dgram', 'crypto', 'os', 'path', 'child_process', 'worker_threads'] }],
      'no-restricted-globals': ['error', 'Buffer', 'process', 'setTimeout', 'setInterval', 'performance'],
    },
  },
);
