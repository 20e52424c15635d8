/**
 * Target `wgquick`: wg-quick configuration files through `parseWgQuickConfig`, then
 * `formatWgQuickConfig` and `toSetRequest` (with a stub resolver: no DNS).
 *
 * Invariants: parsing fails only with WgQuickConfigError, one line, never quoting a private or
 * preshared key (warnings too); a parsed file that can be written back reads back the same;
 * `toSetRequest` fails only with WgQuickConfigError; the set request it makes, as
 * `wireweave up` sends it over the UAPI, is one the daemon's parser accepts.
 */
import { WgQuickConfigError, formatWgQuickConfig, parseWgQuickConfig, toSetRequest } from '../../src/device/wgquick.ts';
import type { WgQuickConfig } from '../../src/device/wgquick.ts';
import { formatSetRequest, parseSetRequest } from '../../src/device/uapi.ts';
import type { FuzzTarget } from '../harness.ts';
import { invariant } from '../harness.ts';
import { mutate } from '../mutate.ts';
import type { FuzzRng } from '../rng.ts';
import { encodeBase64 } from '../../src/core/keys.ts';
import { base64Key, endpoint, ip, junk, keyBytes, prefix, uint } from '../text.ts';
import { checkMessage, sameJson } from './uapi-set.ts';

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** No DNS in a fuzzer: names starting with 'x' fail, 'bad…' resolve to junk, others to a test address. */
async function resolve(host: string): Promise<string> {
  if (host.startsWith('x')) throw new Error(`cannot resolve ${host}`);
  if (host.startsWith('bad')) return host;
  return host.length % 2 ? '192.0.2.53' : '2001:db8::53';
}

function withoutLines(cfg: WgQuickConfig): unknown {
  return { interface: cfg.interface, peers: cfg.peers.map(({ line: _line, endpointLine: _endpointLine, ...p }) => p) };
}

async function run(_ctx: null, input: Uint8Array): Promise<void> {
  const text = decoder.decode(input);
  const warnings: string[] = [];
  let cfg: WgQuickConfig;
  try {
    cfg = parseWgQuickConfig(text, 'fuzz.conf', { warn: (m) => warnings.push(m) });
  } catch (err) {
    invariant(err instanceof WgQuickConfigError, () => `parseWgQuickConfig threw ${String(err)}`);
    checkMessage(err, text);
    return;
  }
  for (const w of warnings) checkMessage(new Error(w), text);
  let written: string | null = null;
  try {
    written = formatWgQuickConfig(cfg);
  } catch (err) {
    invariant(err instanceof RangeError, () => `formatWgQuickConfig threw ${String(err)}`);
  }
  if (written !== null) {
    let back: WgQuickConfig;
    try {
      back = parseWgQuickConfig(written, 'again.conf');
    } catch (err) {
      throw new Error(`a written configuration does not parse: ${(err as Error).message}`, { cause: err });
    }
    invariant(sameJson(withoutLines(back), withoutLines(cfg)), 'a written configuration reads back differently');
  }
  let request;
  try {
    request = await toSetRequest(cfg, { resolve });
  } catch (err) {
    invariant(err instanceof WgQuickConfigError, () => `toSetRequest threw ${String(err)}`);
    checkMessage(err, text);
    return;
  }
  try {
    parseSetRequest(formatSetRequest(request).split('\n'));
  } catch (err) {
    throw new Error(`wireweave up would send a request the daemon refuses: ${(err as Error).message}`, { cause: err });
  }
}

// ------------------------------------------------------------------------------------ inputs

const IFACE_KEYS = ['PrivateKey', 'ListenPort', 'FwMark', 'Address', 'DNS', 'MTU', 'Table', 'PreUp', 'PostUp', 'PreDown', 'PostDown', 'SaveConfig'];
const PEER_KEYS = ['PublicKey', 'PresharedKey', 'AllowedIPs', 'Endpoint', 'PersistentKeepalive'];

/** Half the files use only well-formed values, so that parsing gets through to the later stages. */
let clean = false;

function value(rng: FuzzRng, key: string): string {
  if (clean) {
    switch (key) {
      case 'PrivateKey': case 'PublicKey': case 'PresharedKey': return encodeBase64(keyBytes(rng));
      case 'ListenPort': case 'PersistentKeepalive': return String(rng.int(65536));
      case 'MTU': return String(rng.range(68, 9000));
      case 'SaveConfig': return rng.pick(['true', 'false']);
      case 'Table': return rng.pick(['off', 'auto', '1234', 'main']);
      default: break;
    }
  }
  switch (key) {
    case 'PrivateKey': case 'PublicKey': case 'PresharedKey': return base64Key(rng);
    case 'ListenPort': case 'MTU': return uint(rng, 65535);
    case 'PersistentKeepalive': return rng.chance(0.2) ? rng.pick(['off', 'OFF', 'on']) : uint(rng, 65535);
    case 'FwMark': return rng.chance(0.3) ? rng.pick(['off', '0x1', '0XFF', '0xffffffff', '0x100000000']) : uint(rng, 0xffffffff);
    case 'Address': return Array.from({ length: rng.range(1, 3) }, () => (rng.chance(0.5) ? ip(rng) : prefix(rng))).join(rng.pick([', ', ',', ' ']));
    case 'DNS': return Array.from({ length: rng.range(1, 3) }, () => (rng.chance(0.6) ? ip(rng) : rng.pick(['example.com', 'lan', 'a,b', junk(rng)]))).join(', ');
    case 'Table': return rng.pick(['off', 'auto', 'Off', '1234', '4294967296', 'main', 'two words', junk(rng)]);
    case 'SaveConfig': return rng.pick(['true', 'false', 'TRUE', 'yes', '']);
    case 'AllowedIPs': return Array.from({ length: rng.range(1, 3) }, () => prefix(rng)).join(rng.pick([', ', ',', ',,']));
    case 'Endpoint': return rng.chance(0.2) ? `${rng.pick(['xhost', 'badhost', 'vpn.example.com'])}:${uint(rng, 65535)}` : endpoint(rng);
    default: return rng.chance(0.5) ? `echo ${junk(rng)} %i` : junk(rng);
  }
}

function line(rng: FuzzRng, key: string): string {
  const k = rng.chance(0.1) ? rng.pick([key.toLowerCase(), key.toUpperCase(), `${key.slice(0, 3)} ${key.slice(3)}`]) : key;
  const eq = rng.pick([' = ', '=', ' =', '= ', '\t=\t']);
  const comment = rng.chance(0.1) ? ` # ${junk(rng)}` : '';
  return `${k}${eq}${value(rng, key)}${comment}`;
}

export function wgQuickFile(rng: FuzzRng): string {
  clean = rng.chance(0.5);
  const out: string[] = [];
  if (rng.chance(0.05)) out.push(junk(rng));
  out.push(rng.chance(0.9) ? '[Interface]' : rng.pick(['[interface]', ' [Interface] ', '[Interface', '[Peer]']));
  const n = rng.int(6);
  for (let i = 0; i < n; i++) out.push(line(rng, rng.pick(IFACE_KEYS)));
  const peers = rng.int(4);
  for (let p = 0; p < peers; p++) {
    out.push(rng.chance(0.95) ? '[Peer]' : rng.pick(['[PEER]', '[Peers]', '']));
    if (rng.chance(0.9)) out.push(line(rng, 'PublicKey'));
    const m = rng.int(5);
    for (let i = 0; i < m; i++) out.push(line(rng, rng.pick(clean ? PEER_KEYS.slice(1) : PEER_KEYS)));
    if (rng.chance(0.2)) out.push('', `# ${junk(rng)}`);
  }
  if (rng.chance(0.05)) out.splice(rng.int(out.length + 1), 0, rng.chance(0.5) ? junk(rng) : line(rng, rng.pick([...IFACE_KEYS, ...PEER_KEYS])));
  return out.join(rng.chance(0.1) ? '\r\n' : '\n') + (rng.chance(0.8) ? '\n' : '');
}

function generate(rng: FuzzRng, corpus: readonly Uint8Array[]): Uint8Array {
  if (corpus.length > 0 && rng.chance(0.3)) return mutate(rng, rng.pick(corpus), corpus, 8192);
  return encoder.encode(wgQuickFile(rng));
}

function seeds(): Uint8Array[] {
  return [
    `[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\nListenPort = 51820\nAddress = 10.0.0.1/24, fd00::1/64\nDNS = 10.0.0.53, example.com\nMTU = 1420\nTable = auto\nPostUp = echo up %i\nSaveConfig = false\nFwMark = 0x1234\n\n[Peer]\nPublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\nPresharedKey = YAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\nAllowedIPs = 0.0.0.0/0, ::/0\nEndpoint = [fe80::1%eth0]:51820\nPersistentKeepalive = 25\n`,
    `[Interface]\nPrivateKey=yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n[Peer]\nPublicKey=xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\nEndpoint=vpn.example.com:51820\nAllowedIPs=10.1.2.3/24\n`,
  ].map((s) => encoder.encode(s));
}

export const wgQuickTarget: FuzzTarget<null> = {
  name: 'wgquick',
  description: 'wg-quick config files: parseWgQuickConfig, formatWgQuickConfig round trip, toSetRequest',
  batchSize: 500,
  setup: () => null,
  seeds,
  generate,
  run,
  check: () => {},
};
