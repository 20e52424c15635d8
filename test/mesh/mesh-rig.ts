/**
 * Helpers of the mesh interop tests: a hub in node H of a rig whose bridge ports are isolated
 * (so the peers reach H and never each other), wg-quick files with [Mesh] in a private
 * directory, and polling.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRig, genKeyPair, WIREWEAVE_BIN } from '../support/netns.ts';
import type { KeyPair, Rig, RigNode, Spawned } from '../support/netns.ts';
import { until as poll } from '../support/until.ts';

export interface MeshSide { node: RigNode; keys: KeyPair; ifname: string; file: string }

/** Polls every 250 ms: these wait on processes in namespaces. */
export const until = <T>(what: string, f: () => Promise<T | undefined | false>, ms: number): Promise<T> => poll(what, f, ms, 250);

/** Isolated bridge ports talk to the bridge (H) and to non-isolated ports only, never to each other. */
export async function isolate(rig: Rig, nodes: readonly RigNode[]): Promise<void> {
  const h = rig.nodes[0]!;
  for (const n of nodes) await rig.execOk(h, ['ip', 'link', 'set', 'dev', `p${n.label.toLowerCase()}`, 'type', 'bridge_slave', 'isolated', 'on']);
}

/**
 * `wireweave hub` in H on `port`, once it listens. Started exactly as README's quick start says
 * (`wireweave hub --listen 8443`), and dialled as its config writes the hub (`ws://HOST:PORT`).
 */
export async function startHub(rig: Rig, port: number): Promise<{ proc: Spawned; url: string }> {
  const h = rig.nodes[0]!;
  const proc = rig.spawnIn(h, [WIREWEAVE_BIN, 'hub', '--listen', String(port)]);
  await until('the hub to listen', async () => /listening on/.test(proc.stderr()) || !proc.running(), 20_000);
  assert.ok(proc.running(), `the hub exited: ${proc.stderr()}`);
  return { proc, url: `ws://${h.addr4}:${port}` };
}

/** A private 0700 directory for config files; remove it with fs.rmSync when done. */
export function confDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ww-mesh-'));
  fs.chmodSync(dir, 0o700);
  return dir;
}

/** Writes IFNAME.conf (0600) into `dir` and records it on the side. */
export function writeConf(dir: string, side: MeshSide, text: string): void {
  side.file = path.join(dir, `${side.ifname}.conf`);
  fs.writeFileSync(side.file, text, { mode: 0o600 });
}

/** [Interface] with the side's tunnel addresses, [Mesh] with `hub`, and `peers` sections as given. */
export function meshConf(self: MeshSide, hub: string, peers: string[], extra: string[] = []): string {
  return [
    '[Interface]',
    `PrivateKey = ${self.keys.privateKey}`,
    `Address = ${self.node.tun4}/24, ${self.node.tun6}/64`,
    ...extra,
    '',
    '[Mesh]',
    `Hub = ${hub}`,
    'Relay = auto',
    '',
    ...peers,
  ].join('\n');
}

export interface MeshLab {
  rig: Rig;
  hub: { proc: Spawned; url: string };
  /** A private directory for config files and scripts, removed by `destroy`. */
  dir: string;
  /** One per side asked for, in order, in nodes B, C, … (H, node A, is the hub's). */
  sides: MeshSide[];
  /** Deletes the sides' interfaces (their daemons end with them), the namespaces and `dir`. */
  destroy(): Promise<void>;
}

/**
 * What every mesh interop test starts with: a rig of H plus one node per side, `wireweave hub`
 * in H on `port`, a fresh key pair and a run-unique interface name (`ifname` is the tag) per
 * side; `isolated` sides reach H and never each other. Config files are the test's to write
 * (meshConf, meshPeer, writeConf), since each test's differ.
 */
export async function meshLab(opts: { name: string; port: number; sides: { ifname: string; isolated: boolean }[] }): Promise<MeshLab> {
  const rig = await createRig({ name: opts.name, nodes: 1 + opts.sides.length });
  let dir = '';
  const sides: MeshSide[] = [];
  const destroy = async () => {
    for (const s of sides) await rig.exec(s.node, ['ip', 'link', 'del', s.ifname]);
    await rig.destroy();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    opts.sides.forEach((o, i) => sides.push({ node: rig.nodes[i + 1]!, keys: genKeyPair(), ifname: rig.ifname(o.ifname), file: '' }));
    await isolate(rig, sides.filter((_, i) => opts.sides[i]!.isolated).map((s) => s.node));
    dir = confDir();
    const hub = await startHub(rig, opts.port);
    return { rig, hub, dir, sides, destroy };
  } catch (e) {
    await destroy();
    throw e;
  }
}

/** A [Peer] without Endpoint: a mesh peer. */
export function meshPeer(peer: MeshSide): string {
  return ['[Peer]                # no Endpoint: found through the hub', `PublicKey = ${peer.keys.publicKey}`,
    `AllowedIPs = ${peer.node.tun4}/32, ${peer.node.tun6}/128`, ''].join('\n');
}
