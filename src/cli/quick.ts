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
import { formatIp, formatPrefix } from '../device/allowedips.ts';
import type { Prefix } from '../device/config.ts';
import { runInterfaceCommand } from '../device/daemon.ts';
import { isInterfaceName } from '../device/ifname.ts';
import { uapiGet, uapiSet } from '../device/uapi-client.ts';
import type { WgQuickConfig } from '../device/wgquick.ts';
import {
  checkConfigFilePermissions, formatWgQuickConfig, parseWgQuickConfig, toSetRequest, wgQuickInterfaceName,
} from '../device/wgquick.ts';

export interface QuickIo {
  stdout: Writable;
  stderr: Writable;
}

class QuickError extends Error {}

interface Ctx {
  io: QuickIo;
  ifname: string;
  file: string;
  cfg: WgQuickConfig;
}

/** Resolves the CONFIG_FILE|INTERFACE argument like wg-quick. */
export function resolveConfigPath(arg: string): { file: string; ifname: string } {
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
    throw new QuickError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
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
  const code = await runInterfaceCommand([ifname], ctx.io, { ...process.env, WG_PROCESS_FOREGROUND: '' });
  if (code !== 0) throw new QuickError(`could not create interface ${ifname}`);
  try {
    say(ctx, `wireweave setconf ${ifname} ${ctx.file}`);
    await uapiSet(ifname, request);
    for (const a of cfg.interface.addresses) {
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
    await cmd(ctx, ['ip', 'link', 'delete', 'dev', ifname], { allowFail: true });
    throw err;
  }
}

/** wg-quick's add_default: route everything through the tunnel except the tunnel's own packets. */
async function addDefault(ctx: Ctx, family: 4 | 6): Promise<void> {
  const state = await uapiGet(ctx.ifname);
  let mark = state.fwmark;
  let table = mark;
  if (!mark) {
    table = 51820;
    // Find a table number not yet used by a routing rule.
    const rules = (await cmd(ctx, ['ip', `-${family}`, 'rule', 'show'], { quiet: true })).stdout;
    while (rules.includes(`lookup ${table}`) || rules.includes(`fwmark 0x${table.toString(16)}`)) table++;
    mark = table;
    say(ctx, `wireweave set ${ctx.ifname} fwmark ${mark}`);
    await uapiSet(ctx.ifname, { fwmark: mark, replacePeers: false, peers: [] });
  }
  const any = family === 4 ? '0.0.0.0/0' : '::/0';
  await cmd(ctx, ['ip', `-${family}`, 'route', 'add', any, 'dev', ctx.ifname, 'table', String(table)]);
  await cmd(ctx, ['ip', `-${family}`, 'rule', 'add', 'not', 'fwmark', String(table), 'table', String(table)]);
  await cmd(ctx, ['ip', `-${family}`, 'rule', 'add', 'table', 'main', 'suppress_prefixlength', '0']);
  if (family === 4) await cmd(ctx, ['sysctl', '-q', 'net.ipv4.conf.all.src_valid_mark=1'], { allowFail: true });
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
  if (cfg.interface.saveConfig) await saveConfig(ctx);
  await hooks(ctx, cfg.interface.preDown);
  const state = await uapiGet(ifname).catch(() => null);
  await cmd(ctx, ['ip', 'link', 'delete', 'dev', ifname]);
  if (cfg.interface.dns.length || cfg.interface.dnsSearch.length) {
    await cmd(ctx, ['resolvconf', '-d', `tun.${ifname}`, '-f'], { allowFail: true });
  }
  if (state?.fwmark) {
    const table = String(state.fwmark);
    for (const family of [4, 6] as const) {
      const rules = (await cmd(ctx, ['ip', `-${family}`, 'rule', 'show'], { quiet: true, allowFail: true })).stdout;
      if (rules.includes(`lookup ${table}`)) {
        await cmd(ctx, ['ip', `-${family}`, 'rule', 'delete', 'table', table], { allowFail: true });
        await cmd(ctx, ['ip', `-${family}`, 'rule', 'delete', 'table', 'main', 'suppress_prefixlength', '0'], { allowFail: true });
      }
    }
  }
  await hooks(ctx, cfg.interface.postDown);
}

/** SaveConfig: write the running configuration back, keeping wg-quick's own keys. */
async function saveConfig(ctx: Ctx): Promise<void> {
  const state = await uapiGet(ctx.ifname);
  const cfg: WgQuickConfig = {
    interface: { ...ctx.cfg.interface, privateKey: state.privateKey ?? undefined, listenPort: state.listenPort || undefined, fwmark: state.fwmark || undefined },
    peers: state.peers.map((p) => {
      const [host, port] = p.endpoint ? splitEndpoint(p.endpoint) : [undefined, undefined];
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

export async function quick(action: 'up' | 'down', args: string[], io: QuickIo): Promise<number> {
  if (args.length !== 1 || args[0] === '--help' || args[0] === '-h') {
    io.stderr.write(USAGE);
    return args[0] === '--help' || args[0] === '-h' ? 0 : 1;
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
