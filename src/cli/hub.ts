/**
 * `wireweave hub`: the mesh hub (docs/mesh.md). One process, no configuration needed to start:
 *   wireweave hub --listen [ADDR:]PORT [--nats URL[,URL…] [--nats-token FILE | --nats-creds FILE]] [--allow FILE]
 *                 [--network-token FILE] [--log-format json] [-v]
 *   wireweave hub token < network-secret     (prints the token a hub admits members with)
 */
import { readFileSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { nodeCrypto } from '../crypto/node.ts';
import { systemRng } from '../core/rng.ts';
import { decodeBase64, encodeBase64, encodeHex, parseKeyBase64 } from '../core/keys.ts';
import { networkKeys } from '../mesh/protocol/keys.ts';
import { startHubServer } from '../mesh/hub/ws-server.ts';
import { NatsFederation, parseNatsServers } from '../mesh/hub/nats.ts';
import type { NatsAuth } from '../mesh/hub/nats.ts';
import { systemClock } from '../device/clock.ts';
import { WireweaveError } from '../core/errors.ts';
import type { CliIo } from './main.ts';

const HUB_USAGE = `Usage: wireweave hub --listen [ADDR:]PORT [--nats URL[,URL...]] [--allow FILE]
                     [--nats-token FILE | --nats-creds FILE]
                     [--network-token FILE] [--log-format text|json] [-v]
       wireweave hub token < SECRET-FILE

Runs a mesh hub: peers connect to ws://ADDR:PORT/mesh by WebSocket, prove their
WireGuard key, and exchange end-to-end sealed signaling and relayed WireGuard
datagrams (the hub reads neither). Prometheus metrics at /metrics.

  --listen [ADDR:]PORT    where to listen (ADDR defaults to 0.0.0.0; [::]:PORT for IPv6)
  --nats URL[,URL...]     join a fleet: hubs on one NATS cluster (JetStream on) are one hub;
                          without it the hub stands alone
  --nats-token FILE       authenticate to NATS with the token in FILE (nats-server --auth)
  --nats-creds FILE       authenticate to NATS with a user's .creds file (JWT and nkey seed);
                          credentials never go in a --nats URL, where logs would show them
  --allow FILE            admit only the public keys listed in FILE (base64, one per line, # comments)
  --network-token FILE    admit only members of the network whose token is in FILE
  --log-format text|json  one line per event (default text)
  -v, --verbose           also log every connection

'wireweave hub token' reads a network's NetworkSecret on stdin and prints the token
to give a hub: it admits members without being able to read their announcements.
`;

function write(stream: Writable, text: string): Promise<void> {
  return new Promise((resolve) => stream.write(text, () => resolve()));
}

/** One-line configuration problem. */
class HubArgError extends WireweaveError {
  constructor(message: string) {
    super('ERR_CLI', message);
    this.name = 'HubArgError';
  }
}

function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+)):)?(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new HubArgError(`--listen ${JSON.stringify(text)}: expected [ADDR:]PORT, e.g. 8443 or 127.0.0.1:8443`);
  return { host: m[1] ?? m[2] ?? '0.0.0.0', port };
}

/** Keys of an --allow file as hex; a bad line is named by its number. */
export function parseAllowFile(text: string, file: string): Set<string> {
  const keys = new Set<string>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') return;
    try {
      keys.add(encodeHex(parseKeyBase64(line)));
    } catch {
      throw new HubArgError(`${file}:${i + 1}: not a base64 WireGuard public key`);
    }
  });
  return keys;
}

function readFile(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new HubArgError(`${what} ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (e as Error).message}`);
  }
}

async function readStdin(stdin: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of stdin) {
    const b = Buffer.isBuffer(c) ? c : Buffer.from(String(c));
    n += b.length;
    if (n > 4096) throw new HubArgError('the network secret on stdin is longer than 4096 bytes');
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The token for a network secret; the secret's surrounding whitespace is not part of it. */
export function hubTokenFor(secret: string): string {
  const s = secret.trim();
  if (s === '') throw new HubArgError('no network secret on stdin');
  return encodeBase64(networkKeys(nodeCrypto, '', new TextEncoder().encode(s)).hubToken);
}

export async function hub(args: string[], io: CliIo, signal?: AbortSignal): Promise<number> {
  try {
    if (args[0] === 'token') {
      if (args.length > 1) throw new HubArgError('hub token takes no arguments; it reads the secret on stdin');
      await write(io.stdout, hubTokenFor(await readStdin(io.stdin)) + '\n');
      return 0;
    }
    let listen: { host: string; port: number } | null = null;
    let nats: string[] | null = null;
    let natsAuth: NatsAuth | undefined;
    let allow: Set<string> | undefined;
    let networkToken: Uint8Array | undefined;
    let json = false;
    let verbose = false;
    for (let i = 0; i < args.length; i++) {
      const a = args[i]!;
      const value = (): string => {
        const v = args[++i];
        if (v === undefined) throw new HubArgError(`${a} needs a value`);
        return v;
      };
      switch (a) {
        case '-h': case '--help':
          await write(io.stdout, HUB_USAGE);
          return 0;
        case '--listen': listen = parseListen(value()); break;
        case '--nats':
          try {
            nats = parseNatsServers(value());
          } catch (e) {
            if (WireweaveError.is(e)) throw new HubArgError(e.message);
            throw e;
          }
          break;
        case '--nats-token': case '--nats-creds': {
          if (natsAuth) throw new HubArgError('give one of --nats-token and --nats-creds');
          const f = value();
          const text = readFile(f, a).trim();
          // The file's contents never appear in a message: only its name.
          if (a === '--nats-token') {
            if (text === '' || /\s/.test(text)) throw new HubArgError(`--nats-token ${f}: expected one token on one line`);
            natsAuth = { token: text };
          } else {
            if (!text.includes('NATS USER JWT') || !text.includes('USER NKEY SEED')) throw new HubArgError(`--nats-creds ${f}: not a NATS .creds file (a user JWT and an nkey seed)`);
            natsAuth = { creds: new TextEncoder().encode(text) };
          }
          break;
        }
        case '--allow': { const f = value(); allow = parseAllowFile(readFile(f, '--allow'), f); break; }
        case '--network-token': {
          const f = value();
          try {
            networkToken = decodeBase64(readFile(f, '--network-token').trim());
          } catch (e) {
            if (e instanceof HubArgError) throw e;
            throw new HubArgError(`--network-token ${f}: not a base64 token (make one with: wireweave hub token < secret)`);
          }
          if (networkToken.length !== 32) throw new HubArgError(`--network-token ${f}: not a 32-byte token`);
          break;
        }
        case '--log-format': {
          const f = value();
          if (f !== 'text' && f !== 'json') throw new HubArgError(`--log-format ${JSON.stringify(f)}: expected text or json`);
          json = f === 'json';
          break;
        }
        case '-v': case '--verbose': verbose = true; break;
        default:
          throw new HubArgError(`unknown option ${/^-{1,2}[\w-]{1,30}$/.test(a) ? a : 'argument'}; see wireweave hub --help`);
      }
    }
    if (!listen) throw new HubArgError('--listen [ADDR:]PORT is required, e.g. wireweave hub --listen 8443');
    if (natsAuth && !nats) throw new HubArgError('--nats-token and --nats-creds need --nats');
    const log = (line: string) => {
      io.stderr.write(json ? JSON.stringify({ time: new Date().toISOString(), msg: line }) + '\n' : `${new Date().toISOString()} hub: ${line}\n`);
    };
    const fleet = nats ? new NatsFederation({ servers: nats, now: systemClock.now, log, ...(natsAuth ? { auth: natsAuth } : {}) }) : null;
    let server;
    try {
      server = await startHubServer({
        host: listen.host, port: listen.port, crypto: nodeCrypto, rng: systemRng, log, clock: systemClock,
        ...(allow ? { allow } : {}), ...(networkToken ? { networkToken } : {}),
        ...(fleet ? { federation: fleet.federation } : {}),
      });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const why = code === 'EADDRINUSE' ? 'address already in use' : code === 'EACCES' ? 'permission denied' : code === 'EADDRNOTAVAIL' ? 'no such local address' : (e as Error).message;
      throw new HubArgError(`cannot listen on ${listen.host}:${listen.port}: ${why}`);
    }
    log(`listening on ${server.url}${allow ? `, ${allow.size} allowed keys` : ''}${networkToken ? ', network token required' : ''}${nats ? `, fleet through NATS ${nats.join(',')}${natsAuth ? ('token' in natsAuth ? ' (token auth)' : ' (creds auth)') : ''}` : ''}`);
    fleet?.start();
    let lastClients = -1;
    const status = verbose ? setInterval(() => {
      if (server.hub.clientCount !== lastClients) log(`${(lastClients = server.hub.clientCount)} clients`);
    }, 1000) : null;
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      signal?.addEventListener('abort', stop, { once: true });
    });
    if (status) clearInterval(status);
    log('shutting down: telling clients to move to another hub');
    await server.close(2000);
    await fleet?.close();
    return 0;
  } catch (e) {
    if (e instanceof HubArgError) {
      await write(io.stderr, `wireweave: hub: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
