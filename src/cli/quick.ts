/**
 * `wireweave up|down CONFIG_FILE|INTERFACE`: what wg-quick does, without wg-quick or wg.
 * Follows /usr/bin/wg-quick (wireguard-tools): the file is INTERFACE.conf (a bare name means
 * /etc/wireguard/INTERFACE.conf); up = PreUp, create the interface (our own daemon), set the
 * configuration, addresses, MTU, link up, DNS, routes (with the fwmark policy routing for
 * default routes), PostUp; down = optional SaveConfig, PreDown, delete the link, undo DNS and
 * policy rules, PostDown.
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { WireweaveError } from '../core/errors.ts';
import { encodeBase64 } from '../core/keys.ts';
import { formatPrefix } from '../device/allowedips.ts';
import { formatIp } from '../core/ip-address.ts';
import type { Prefix, SetRequest } from '../device/config.ts';
import { Errno, UapiError } from '../device/config.ts';
import { runInterfaceCommand } from '../device/daemon.ts';
import { meshEnvValue } from '../mesh/peer/daemon.ts';
import { meshAddresses } from '../mesh/peer/discovery-config.ts';
import { nodeCrypto } from '../crypto/node.ts';
import { meshStatusPath } from '../mesh/peer/status-socket.ts';
import { errnoText } from '../device/errno.ts';
import { isInterfaceName } from '../device/ifname.ts';
import { socketPath, uapiGet, uapiSet } from '../device/uapi-client.ts';
import { removeStaleSocket } from '../device/uapi-server.ts';
import type { WgQuickConfig } from '../device/wgquick.ts';
import {
  checkConfigFilePermissions, formatWgQuickConfig, parseWgQuickConfig, toSetRequest, wgQuickInterfaceName,
} from '../device/wgquick.ts';

export interface QuickIo {
  stdout: Writable;
  stderr: Writable;
}

/** wg-quick's failures: a bad file name, a failed ip(8) or hook, an interface that exists. */
class QuickError extends WireweaveError {
  constructor(message: string) {
    super('ERR_QUICK', message);
    this.name = 'QuickError';
  }
}

interface Ctx {
  io: QuickIo;
  ifname: string;
  file: string;
  cfg: WgQuickConfig;
}

/** Resolves the CONFIG_FILE|INTERFACE argument like wg-quick. */
function resolveConfigPath(arg: string): { file: string; ifname: string } {
  let file = arg;
  if (!arg.includes('/') && isInterfaceName(arg) && !arg.endsWith('.conf')) {
    file = `/etc/wireguard/${arg}.conf`;
  }
  const ifname = wgQuickInterfaceName(file);
  if (!ifname) throw new QuickError(`the config file must be a valid interface name, followed by .conf: ${file}`);
  return { file, ifname };
}

function say(ctx: { io: QuickIo }, text: string): void {
  ctx.io.stderr.write(`[#] ${text}\n`);
}

function cmd(ctx: Ctx, argv: string[], opts: { quiet?: boolean; allowFail?: boolean } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  if (!opts.quiet) say(ctx, argv.join(' '));
  return new Promise((resolve, reject) => {
    execFile(argv[0]!, argv.slice(1), (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      if (code !== 0 && !opts.allowFail) {
        reject(new QuickError(`\`${argv.join(' ')}' failed: ${String(stderr).trim() || String(err)}`));
        return;
      }
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

async function hooks(ctx: Ctx, list: string[]): Promise<void> {
  for (const hook of list) {
    const line = hook.replaceAll('%i', ctx.ifname);
    say(ctx, line);
    const code = await new Promise<number>((resolve) => {
      const child = spawn('bash', ['-c', line], { stdio: ['ignore', 'inherit', 'inherit'] });
      child.on('exit', (c) => resolve(c ?? 1));
      child.on('error', () => resolve(127));
    });
    if (code !== 0) throw new QuickError(`hook failed (exit ${code}): ${line}`);
  }
}

function linkExists(ifname: string): boolean {
  return fs.existsSync(`/sys/class/net/${ifname}`);
}

function load(arg: string, io: QuickIo): Ctx {
  const { file, ifname } = resolveConfigPath(arg);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new QuickError(`cannot read ${file}: ${code ? errnoText(code) : (err as Error).message}`);
  }
  const warning = checkConfigFilePermissions(file);
  if (warning) io.stderr.write(warning + '\n');
  const cfg = parseWgQuickConfig(text, file, { warn: (m) => io.stderr.write(`Warning: ${m}\n`) });
  return { io, ifname, file, cfg };
}

function allowedPrefixes(cfg: WgQuickConfig): Prefix[] {
  const all = cfg.peers.flatMap((p) => p.allowedIps);
  // Most specific first, as wg-quick sorts them.
  return all.sort((a, b) => b.bits - a.bits);
}

const DEFAULT_MTU = 1420;

async function up(ctx: Ctx): Promise<void> {
  const { cfg, ifname } = ctx;
  const table = cfg.interface.table ?? { kind: 'auto' };
  const prefixes = allowedPrefixes(cfg);
  const needsDefault = table.kind === 'auto' && prefixes.some((p) => p.bits === 0);
  if (linkExists(ifname)) throw new QuickError(`\`${ifname}' already exists`);
  // Everything that can be checked is checked before anything changes.
  const request = await toSetRequest(cfg);
  await hooks(ctx, cfg.interface.preUp);
  say(ctx, `wireweave ${ifname}`);
  const env: NodeJS.ProcessEnv = { ...process.env, WG_PROCESS_FOREGROUND: '' };
  // A discovery member without Address gets addresses derived from its key (docs/mesh.md §4).
  const addresses = meshAddresses(nodeCrypto, cfg);
  delete env.WIREWEAVE_MESH;
  if (cfg.mesh) env.WIREWEAVE_MESH = meshEnvValue(cfg.mesh, addresses);
  const code = await runInterfaceCommand([ifname], ctx.io, env);
  if (code !== 0) throw new QuickError(`could not create interface ${ifname}`);
  try {
    say(ctx, `wireweave setconf ${ifname} ${ctx.file}`);
    await configure(ifname, request);
    for (const a of addresses) {
      const text = `${formatIp(a.bytes)}/${a.bits}`;
      await cmd(ctx, ['ip', `-${a.family}`, 'address', 'add', text, 'dev', ifname]);
    }
    await cmd(ctx, ['ip', 'link', 'set', 'mtu', String(cfg.interface.mtu ?? DEFAULT_MTU), 'up', 'dev', ifname]);
    if (cfg.interface.dns.length || cfg.interface.dnsSearch.length) await setDns(ctx);
    if (table.kind !== 'off') {
      for (const p of prefixes) {
        if (p.bits === 0 && table.kind === 'auto') continue;
        const t = table.kind === 'id' ? String(table.id) : table.kind === 'name' ? table.name : null;
        const exists = t ? '' : (await cmd(ctx, ['ip', `-${p.family}`, 'route', 'show', 'dev', ifname, 'match', formatPrefix(p)], { quiet: true })).stdout.trim();
        if (!exists) await cmd(ctx, ['ip', `-${p.family}`, 'route', 'add', formatPrefix(p), 'dev', ifname, ...(t ? ['table', t] : [])]);
      }
      if (needsDefault) {
        for (const family of [4, 6] as const) if (prefixes.some((p) => p.bits === 0 && p.family === family)) await addDefault(ctx, family);
      }
    }
    await hooks(ctx, cfg.interface.postUp);
  } catch (err) {
    // As wg-quick's trap does: undo the firewall and policy rules as well as the link.
    const fwmark = needsDefault ? (await uapiGet(ifname).catch(() => null))?.fwmark ?? 0 : 0;
    await cmd(ctx, ['ip', 'link', 'delete', 'dev', ifname], { allowFail: true });
    await removePolicyRouting(ctx, fwmark);
    await removeFirewall(ctx);
    throw err;
  }
}

/** uapiSet, with a refusal told in words ("address already in use"), as wg says it, not as an errno number. */
async function configure(ifname: string, request: SetRequest): Promise<void> {
  try {
    await uapiSet(ifname, request);
  } catch (err) {
    if (!(err instanceof UapiError)) throw err;
    const why = errnoText(err.errno);
    if (err.errno === Errno.EADDRINUSE && request.listenPort) {
      throw new QuickError(`cannot configure ${ifname}: ListenPort ${request.listenPort}: ${why} (another program has that UDP port)`);
    }
    throw new QuickError(`cannot configure ${ifname}: ${why}`);
  }
}

/** wg-quick's add_default: route everything through the tunnel except the tunnel's own packets. */
async function addDefault(ctx: Ctx, family: 4 | 6): Promise<void> {
  const state = await uapiGet(ctx.ifname);
  let table = state.fwmark;
  if (!table) {
    // The first table number from 51820 with no routes in it, as wg-quick picks it.
    table = 51820;
    while (
      (await cmd(ctx, ['ip', '-4', 'route', 'show', 'table', String(table)], { quiet: true, allowFail: true })).stdout.trim() ||
      (await cmd(ctx, ['ip', '-6', 'route', 'show', 'table', String(table)], { quiet: true, allowFail: true })).stdout.trim()
    ) table++;
    say(ctx, `wireweave set ${ctx.ifname} fwmark ${table}`);
    await configure(ctx.ifname, { fwmark: table, replacePeers: false, peers: [] });
  }
  const any = family === 4 ? '0.0.0.0/0' : '::/0';
  await cmd(ctx, ['ip', `-${family}`, 'route', 'add', any, 'dev', ctx.ifname, 'table', String(table)]);
  await cmd(ctx, ['ip', `-${family}`, 'rule', 'add', 'not', 'fwmark', String(table), 'table', String(table)]);
  await cmd(ctx, ['ip', `-${family}`, 'rule', 'add', 'table', 'main', 'suppress_prefixlength', '0']);
  const addresses = (await cmd(ctx, ['ip', '-o', `-${family}`, 'addr', 'show', 'dev', ctx.ifname], { quiet: true, allowFail: true })).stdout;
  const script = defaultRouteFirewall(ctx.ifname, family, table, addresses);
  if (family === 4) await cmd(ctx, ['sysctl', '-q', 'net.ipv4.conf.all.src_valid_mark=1'], { allowFail: true });
  await nft(ctx, script);
}

/**
 * The nftables script wg-quick's add_default loads for one address family: a table
 * `wg-quick-IFNAME` whose preraw chain drops packets for the interface's own addresses that
 * arrive on another interface from a non-local source (nobody on the LAN can reach into the
 * tunnel's address), and whose mangle chains copy the fwmark of the tunnel's UDP packets into
 * conntrack and back, so that replies to them also bypass the tunnel (rp_filter with
 * src_valid_mark). `addresses` is `ip -o -4|-6 addr show dev IFNAME`. Same text as wg-quick's.
 */
export function defaultRouteFirewall(ifname: string, family: 4 | 6, table: number, addresses: string): string {
  const pf = family === 4 ? 'ip' : 'ip6';
  const t = `${pf} wg-quick-${ifname}`;
  const lines = [
    `add table ${t}`,
    `add chain ${t} preraw { type filter hook prerouting priority -300; }`,
    `add chain ${t} premangle { type filter hook prerouting priority -150; }`,
    `add chain ${t} postmangle { type filter hook postrouting priority -150; }`,
  ];
  for (const line of addresses.split('\n')) {
    // wg-quick's [[ $line =~ .*inet6?\ ([0-9a-f:.]+)/[0-9]+.* ]]
    const m = /.*inet6? ([0-9a-f:.]+)\/[0-9]+/.exec(line);
    if (m) lines.push(`add rule ${t} preraw iifname != "${ifname}" ${pf} daddr ${m[1]} fib saddr type != local drop`);
  }
  lines.push(`add rule ${t} postmangle meta l4proto udp mark ${table} ct mark set mark `);
  lines.push(`add rule ${t} premangle meta l4proto udp meta mark set ct mark `);
  return lines.join('\n') + '\n';
}

/** `nft -f -` with `script` on stdin. A missing nft is an error: the table is a security boundary. */
async function nft(ctx: { io: QuickIo }, script: string): Promise<void> {
  say(ctx, 'nft -f -');
  const result = await new Promise<{ code: number; stderr: string }>((resolve) => {
    const child = spawn('nft', ['-f', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { if (stderr.length < 4096) stderr += d.toString(); });
    child.on('error', (err: NodeJS.ErrnoException) => resolve({ code: err.code === 'ENOENT' ? 127 : 1, stderr: err.message }));
    child.on('close', (c) => resolve({ code: c ?? 1, stderr }));
    child.stdin.on('error', () => { /* reported by close */ });
    child.stdin.end(script);
  });
  if (result.code === 127) {
    throw new QuickError('nft (nftables) is not installed: a default route through the tunnel needs the firewall table wg-quick installs; install nftables, or set Table = off and route yourself');
  }
  if (result.code !== 0) throw new QuickError(`\`nft -f -' failed: ${result.stderr.trim()}`);
}

/** wg-quick's remove_firewall (nft part): deletes every `wg-quick-IFNAME` table, of any family. */
async function removeFirewall(ctx: Ctx): Promise<void> {
  const tables = await cmd(ctx, ['nft', 'list', 'tables'], { quiet: true, allowFail: true }).catch(() => null);
  if (!tables) return;
  const doomed = tables.stdout.split('\n').map((l) => l.trim()).filter((l) => l.endsWith(` wg-quick-${ctx.ifname}`));
  if (doomed.length) await nft(ctx, doomed.map((t) => `delete ${t}`).join('\n') + '\n').catch(() => undefined);
}

/** The policy rules add_default installed, as wg-quick's del_if removes them. */
async function removePolicyRouting(ctx: Ctx, fwmark: number): Promise<void> {
  if (!fwmark) return;
  const table = String(fwmark);
  for (const family of [4, 6] as const) {
    const rules = (await cmd(ctx, ['ip', `-${family}`, 'rule', 'show'], { quiet: true, allowFail: true })).stdout;
    if (rules.includes(`lookup ${table}`)) {
      await cmd(ctx, ['ip', `-${family}`, 'rule', 'delete', 'table', table], { allowFail: true });
      await cmd(ctx, ['ip', `-${family}`, 'rule', 'delete', 'table', 'main', 'suppress_prefixlength', '0'], { allowFail: true });
    }
  }
}

async function setDns(ctx: Ctx): Promise<void> {
  const body = [
    ...ctx.cfg.interface.dns.map((d) => `nameserver ${d}`),
    ...(ctx.cfg.interface.dnsSearch.length ? [`search ${ctx.cfg.interface.dnsSearch.join(' ')}`] : []),
  ].join('\n') + '\n';
  say(ctx, `resolvconf -a tun.${ctx.ifname} -m 0 -x`);
  const ok = await new Promise<boolean>((resolve) => {
    const child = spawn('resolvconf', ['-a', `tun.${ctx.ifname}`, '-m', '0', '-x'], { stdio: ['pipe', 'inherit', 'inherit'] });
    child.on('error', () => resolve(false));
    child.on('exit', (c) => resolve(c === 0));
    child.stdin.end(body);
  });
  if (!ok) throw new QuickError('DNS is set in the configuration but resolvconf is missing or failed');
}

async function down(ctx: Ctx): Promise<void> {
  const { cfg, ifname } = ctx;
  if (!linkExists(ifname)) throw new QuickError(`\`${ifname}' is not a WireGuard interface`);
  // wg-quick's cmd_down: PreDown first, then SaveConfig (a hook may still change the state).
  await hooks(ctx, cfg.interface.preDown);
  if (cfg.interface.saveConfig) await saveConfig(ctx);
  const state = await uapiGet(ifname).catch(() => null);
  await cmd(ctx, ['ip', 'link', 'delete', 'dev', ifname]);
  await clearSocket(ctx);
  if (cfg.interface.dns.length || cfg.interface.dnsSearch.length) {
    await cmd(ctx, ['resolvconf', '-d', `tun.${ifname}`, '-f'], { allowFail: true });
  }
  await removePolicyRouting(ctx, state?.fwmark ?? 0);
  await removeFirewall(ctx);
  await hooks(ctx, cfg.interface.postDown);
}

/**
 * The daemon exits once its link is gone and removes its socket, except when it ran without
 * root (`--user`): /var/run/wireguard is root's. Then the stale socket is removed here, once
 * nobody answers on it.
 */
async function clearSocket(ctx: Ctx): Promise<void> {
  const found = await removeStaleSocket(ctx.ifname).catch(() => 'none' as const);
  if (found === 'removed') {
    say(ctx, `rm ${socketPath(ctx.ifname)} (left by the daemon, which ran without root)`);
    // Its mesh status socket, if it had one, was left for the same reason.
    fs.rmSync(meshStatusPath(ctx.ifname, path.dirname(socketPath(ctx.ifname))), { force: true });
  }
  else if (found === 'live') ctx.io.stderr.write(`Warning: something still answers on ${socketPath(ctx.ifname)}; it was left in place\n`);
}

/** SaveConfig: write the running configuration back, keeping wg-quick's own keys. */
async function saveConfig(ctx: Ctx): Promise<void> {
  const state = await uapiGet(ctx.ifname);
  const cfg: WgQuickConfig = {
    interface: { ...ctx.cfg.interface, privateKey: state.privateKey ?? undefined, listenPort: state.listenPort || undefined, fwmark: state.fwmark || undefined },
    ...(ctx.cfg.mesh ? { mesh: ctx.cfg.mesh } : {}),
    // With Network, a peer the file does not list is a discovered member: found again, not saved.
    peers: state.peers.filter((p) => !ctx.cfg.mesh?.network || ctx.cfg.peers.some((c) => encodeBase64(c.publicKey) === encodeBase64(p.publicKey))).map((p) => {
      // A mesh peer's endpoint (a relay slot or whatever path it has now) is found again, not saved.
      const meshPeer = ctx.cfg.mesh !== undefined && ctx.cfg.peers.some((c) => !c.endpoint && encodeBase64(c.publicKey) === encodeBase64(p.publicKey));
      const [host, port] = p.endpoint && !meshPeer ? splitEndpoint(p.endpoint) : [undefined, undefined];
      return {
        publicKey: p.publicKey, presharedKey: p.presharedKey ?? undefined, allowedIps: p.allowedIps,
        endpoint: host !== undefined ? { host, port: port! } : undefined,
        persistentKeepalive: p.persistentKeepalive || undefined,
      };
    }),
  };
  say(ctx, `saving configuration to ${ctx.file}`);
  const tmp = path.join(path.dirname(ctx.file), `.${path.basename(ctx.file)}.tmp`);
  fs.writeFileSync(tmp, formatWgQuickConfig(cfg), { mode: 0o600 });
  fs.renameSync(tmp, ctx.file);
}

function splitEndpoint(text: string): [string, number] {
  const i = text.lastIndexOf(':');
  return [text.slice(0, i).replace(/^\[|\]$/g, ''), Number(text.slice(i + 1))];
}

const USAGE = 'Usage: wireweave [ up | down ] [ CONFIG_FILE | INTERFACE ]\n';

const QUICK_HELP = `${USAGE}
Like wg-quick(8). CONFIG_FILE is a configuration file whose name is the interface
name followed by \`.conf'; INTERFACE alone means /etc/wireguard/INTERFACE.conf.
The file is what \`wg setconf' reads ([Interface] PrivateKey, ListenPort, FwMark;
[Peer] PublicKey, PresharedKey, AllowedIPs, Endpoint, PersistentKeepalive), plus
these [Interface] keys of wg-quick's:

  Address      one or more addresses (with /prefix) for the interface; repeatable
  DNS          servers (and search domains) handed to resolvconf while up
  MTU          the interface MTU (default ${DEFAULT_MTU})
  Table        routing table for the AllowedIPs routes: auto (default), off, or
               a table number or name
  PreUp, PostUp, PreDown, PostDown
               bash commands run at each step; %i is the interface name
  SaveConfig   true: write the running configuration back to the file at down

and wireweave's own [Mesh] section (wg and wg-quick refuse it):

  Hub          ws:// or wss:// URLs of mesh hubs, tried in order; repeatable
  Relay        auto (default), always or never: whether a [Peer] without an
               Endpoint may go through the hub's relay; such peers are found
               by public key through the hub, and reached directly when a
               direct path answers
  Network      discovery: members of this network (a name) find each other
               and are added as peers without [Peer] sections
  NetworkSecret  shared by the network's members (16+ bytes; wireweave genkey)
  Name         this member's name (default the host name)
  Prefix4, Prefix6  the network's ranges (default 100.96.0.0/16 and a /64 of
               fd00::/8 from the network); without Address, the interface's
               addresses are derived from its public key inside them

up:   runs PreUp, creates the interface (a wireweave daemon serving
      /var/run/wireguard/INTERFACE.sock, which wg also drives), sets keys and
      peers, adds the addresses, sets the MTU and the link up, sets DNS, adds a
      route per allowed IP, and runs PostUp. AllowedIPs of 0.0.0.0/0 or ::/0 get
      wg-quick's fwmark policy routing and its nftables table wg-quick-INTERFACE
      (drops packets for the tunnel's addresses arriving on other interfaces;
      keeps the tunnel's own UDP on its fwmark). Anything that fails undoes it.
down: saves the configuration if SaveConfig is true, runs PreDown, deletes the
      interface (the daemon exits), removes DNS, the policy rules and the
      nftables table, and runs PostDown.

Both need root or CAP_NET_ADMIN. Without either, \`wireweave proxy CONFIG_FILE'
and \`wireweave forward CONFIG_FILE' run the same file as a rootless tunnel.
`;

/** Root, or CAP_NET_ADMIN in the effective set (bit 12 of /proc/self/status CapEff). */
function canAdministerNetwork(): boolean {
  if (process.geteuid?.() === 0) return true;
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    return m !== null && (BigInt(`0x${m[1]}`) & (1n << 12n)) !== 0n;
  } catch {
    return false;
  }
}

export async function quick(action: 'up' | 'down', args: string[], io: QuickIo): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    io.stdout.write(QUICK_HELP);
    return 0;
  }
  const option = args.find((a) => a.startsWith('-'));
  if (option !== undefined) {
    const shown = /^--?[A-Za-z0-9][A-Za-z0-9-]{0,31}$/.test(option) ? ` \`${option}'` : '';
    io.stderr.write(`wireweave: unknown option${shown} for ${action}; it takes only a CONFIG_FILE or INTERFACE (see 'wireweave ${action} --help')\n`);
    return 1;
  }
  if (args.length !== 1) {
    io.stderr.write(USAGE);
    return 1;
  }
  if (!canAdministerNetwork()) {
    io.stderr.write(
      `wireweave: ${action} needs root or CAP_NET_ADMIN (it ${action === 'up' ? 'creates' : 'deletes'} a network interface); run it with sudo, ` +
        `or use 'wireweave proxy ${args[0]}' or 'wireweave forward ${args[0]}' for a rootless tunnel\n`,
    );
    return 1;
  }
  try {
    const ctx = load(args[0]!, io);
    if (action === 'up') await up(ctx);
    else await down(ctx);
    return 0;
  } catch (err) {
    if (err instanceof QuickError || (err as { code?: string }).code === 'ERR_CONFIG' || (err as { name?: string }).name === 'UapiError') {
      io.stderr.write(`wireweave: ${(err as Error).message}\n`);
      return 1;
    }
    throw err;
  }
}
