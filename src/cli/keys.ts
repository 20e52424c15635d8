/**
 * `wireweave genkey | pubkey | genpsk`: the key commands of `wg`, byte for byte on stdout and
 * with the same exit codes. Observed behaviour of wireguard-tools v1.0.20210914 that is mirrored:
 *
 * - genkey/genpsk print one base64 key and "\n"; genkey's key is clamped, genpsk's is not.
 * - genkey/genpsk warn on stderr (exit code still 0) when stdout is a regular file that "others"
 *   may read, write or execute (any of mode 0o007): wg checks the file, not the umask.
 * - pubkey reads exactly 44 bytes from stdin, then accepts only whitespace (space, \t, \n, \v,
 *   \f, \r) and NUL bytes until EOF; anything else is "trailing characters" (wg also says that
 *   for a key preceded by a space; this says "whitespace before the key"). The 44 bytes must be
 *   canonical base64 (key_from_base64). The private key is clamped before the public key is
 *   computed.
 * - Any bad input: exit code 1 (wg prints "Key is not the correct length or format" or "Trailing
 *   characters found after key"). Any argument: exit code 1 (wg prints its usage line).
 *
 * Unlike wg, errors say which rule the input broke, are prefixed "wireweave: ", and never
 * contain the input.
 */
import { fstatSync } from 'node:fs';
import type { Writable } from 'node:stream';
import type { CryptoProvider } from '../core/crypto.ts';
import { zeroize } from '../core/crypto.ts';
import type { Rng } from '../core/rng.ts';
import { systemRng } from '../core/rng.ts';
import {
  KEY_BASE64_LENGTH,
  KeyFormatError,
  encodeBase64,
  generatePresharedKey,
  generatePrivateKey,
  parseKeyBase64,
} from '../core/keys.ts';
import type { CliIo } from './main.ts';

/** Injected for tests; defaults are the system RNG and the node:crypto provider. */
export interface KeyCommandDeps {
  rng?: Rng;
  crypto?: CryptoProvider;
}

const KEY_COMMAND_HELP = {
  genkey: 'Usage: wireweave genkey\n\nGenerates a new private key and writes it to stdout in base64.\n' +
    'Example: umask 077; wireweave genkey > private.key\n',
  genpsk: 'Usage: wireweave genpsk\n\nGenerates a new preshared key and writes it to stdout in base64.\n' +
    'Example: umask 077; wireweave genpsk > preshared.key\n',
  pubkey: 'Usage: wireweave pubkey\n\nReads a base64 private key from stdin and writes its public key to stdout.\n' +
    'Example: wireweave pubkey < private.key > public.key\n',
} as const;

type KeyCommand = keyof typeof KEY_COMMAND_HELP;

const WORLD_ACCESSIBLE_WARNING =
  'wireweave: Warning: writing to world accessible file.\nConsider setting the umask to 077 and trying again.\n';

function write(stream: Writable, text: string): Promise<void> {
  return new Promise((resolve) => {
    stream.write(text, () => resolve());
  });
}

/**
 * Handles the arguments of a command that takes none. Returns an exit code when the command
 * must not run (help printed: 0; stray argument: 1), or null to go on. Arguments are never
 * echoed: a user may have pasted a key as one.
 */
async function checkNoArgs(command: KeyCommand, args: readonly string[], io: CliIo): Promise<number | null> {
  if (args.length === 0) return null;
  if (args.length === 1 && (args[0] === '--help' || args[0] === '-h')) {
    await write(io.stdout, KEY_COMMAND_HELP[command]);
    return 0;
  }
  const how = command === 'pubkey' ? 'wireweave pubkey < private.key' : `wireweave ${command} > file`;
  await write(
    io.stderr,
    `wireweave: ${command} takes no arguments${command === 'pubkey' ? ' (it reads the private key from stdin)' : ''}; usage: ${how}\n`,
  );
  return 1;
}

/** The file descriptor behind `stream`, when it has one (process.stdout does). */
function fdOf(stream: Writable): number | undefined {
  const fd = (stream as { fd?: unknown }).fd;
  return typeof fd === 'number' ? fd : undefined;
}

/** wg's check: stdout is a regular file with any permission bit for "others". */
function isWorldAccessibleFile(stream: Writable): boolean {
  const fd = fdOf(stream);
  if (fd === undefined || process.platform === 'win32') return false;
  try {
    const st = fstatSync(fd);
    return st.isFile() && (st.mode & 0o007) !== 0;
  } catch {
    return false;
  }
}

async function generate(command: 'genkey' | 'genpsk', args: readonly string[], io: CliIo, deps: KeyCommandDeps): Promise<number> {
  const early = await checkNoArgs(command, args, io);
  if (early !== null) return early;
  if (isWorldAccessibleFile(io.stdout)) await write(io.stderr, WORLD_ACCESSIBLE_WARNING);
  const rng = deps.rng ?? systemRng;
  const key = command === 'genkey' ? generatePrivateKey(rng) : generatePresharedKey(rng);
  const text = encodeBase64(key);
  zeroize(key);
  await write(io.stdout, text + '\n');
  return 0;
}

export function genkey(args: readonly string[], io: CliIo, deps: KeyCommandDeps = {}): Promise<number> {
  return generate('genkey', args, io, deps);
}

export function genpsk(args: readonly string[], io: CliIo, deps: KeyCommandDeps = {}): Promise<number> {
  return generate('genpsk', args, io, deps);
}

/** isspace() in the C locale, plus NUL: what `wg pubkey` skips after the key. */
function isSkippable(b: number): boolean {
  return b === 0 || b === 0x20 || (b >= 0x09 && b <= 0x0d);
}

export type KeyInput =
  | { ok: true; key: Uint8Array }
  | { ok: false; problem: 'empty' | 'leading' | 'short' | 'trailing'; length: number }
  | { ok: false; problem: 'format'; error: KeyFormatError };

/**
 * Reads a base64 key from `stdin` the way `wg pubkey` does: the first 44 bytes are the key, the
 * rest up to EOF may only be whitespace or NUL. Stops reading at the first stray byte (wg
 * does too), so a large or endless input is not buffered. Accepts and rejects exactly what wg
 * accepts and rejects; the problem reported for a rejection is more specific than wg's.
 */
export async function readKeyFromStream(stdin: NodeJS.ReadableStream): Promise<KeyInput> {
  const head = new Uint8Array(KEY_BASE64_LENGTH);
  let have = 0;
  let trailing = false;
  for await (const chunk of stdin) {
    const bytes = typeof chunk === 'string' ? new TextEncoder().encode(chunk) : (chunk as Uint8Array);
    let i = 0;
    if (have < KEY_BASE64_LENGTH) {
      const n = Math.min(KEY_BASE64_LENGTH - have, bytes.length);
      head.set(bytes.subarray(0, n), have);
      have += n;
      i = n;
    }
    for (; i < bytes.length; i++) {
      if (!isSkippable(bytes[i]!)) {
        trailing = true;
        break;
      }
    }
    if (trailing) break; // ends the iteration and releases the stream
  }
  try {
    // Length of the head without trailing whitespace/NUL, and whether it starts with some.
    let length = have;
    while (length > 0 && isSkippable(head[length - 1]!)) length--;
    if (length === 0 && !trailing) return { ok: false, problem: 'empty', length: 0 };
    if (isSkippable(head[0]!)) return { ok: false, problem: 'leading', length };
    if (trailing) return { ok: false, problem: 'trailing', length: have };
    if (length < KEY_BASE64_LENGTH) return { ok: false, problem: 'short', length };
    // One byte per character, so bytes >= 0x80 become characters outside the alphabet.
    let text = '';
    for (let i = 0; i < KEY_BASE64_LENGTH; i++) text += String.fromCharCode(head[i]!);
    try {
      return { ok: true, key: parseKeyBase64(text) };
    } catch (err) {
      if (err instanceof KeyFormatError) return { ok: false, problem: 'format', error: err };
      throw err;
    }
  } finally {
    zeroize(head);
  }
}

/** One line naming what is wrong with the input, without any of the input. */
function describeKeyInputProblem(input: Exclude<KeyInput, { ok: true }>): string {
  switch (input.problem) {
    case 'empty':
      return 'no private key on stdin: expected 44 base64 characters';
    case 'leading':
      return 'whitespace or NUL before the private key: expected its 44 base64 characters at the start of stdin';
    case 'short':
      return `private key is too short: expected 44 base64 characters, got ${input.length}`;
    case 'trailing':
      return 'private key is too long: trailing characters found after the first 44 characters';
    case 'format':
      return `invalid private key: ${input.error.message}`;
  }
}

export async function pubkey(args: readonly string[], io: CliIo, deps: KeyCommandDeps = {}): Promise<number> {
  const early = await checkNoArgs('pubkey', args, io);
  if (early !== null) return early;
  const input = await readKeyFromStream(io.stdin);
  if (!input.ok) {
    await write(io.stderr, `wireweave: pubkey: ${describeKeyInputProblem(input)}\n`);
    return 1;
  }
  const crypto = deps.crypto ?? (await import('../crypto/node.ts')).nodeCrypto;
  // X25519 clamps a copy internally (RFC 7748), as wg's curve25519_generate_public does.
  const publicKey = crypto.x25519PrivateKey(input.key).publicKey;
  zeroize(input.key);
  await write(io.stdout, encodeBase64(publicKey) + '\n');
  return 0;
}
