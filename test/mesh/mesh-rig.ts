/**
 * Helpers of the mesh interop tests: a hub in node H of a rig whose bridge ports are isolated
 * (so the peers reach H and never each other), wg-quick files with [Mesh] in a private
 * directory, and polling.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WIREWEAVE_BIN } from '../support/netns.ts';
import type { KeyPair, Rig, RigNode, Spawned } from '../support/netns.ts';

export interface MeshSide { node: RigNode; keys: KeyPair; ifname: string; file: string }

export async function until<T>(what: string, f: () => Promise<T | undefined | false>, ms: number): Promise<T> {
  const end = Date.now() + ms;
  let last: T | undefined | false;
  while (Date.now() < end) {
    last = await f();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.fail(`timed out waiting for ${what} (last: ${String(last)})`);
}

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

/** A [Peer] without Endpoint: a mesh peer. */
export function meshPeer(peer: MeshSide): string {
  return ['[Peer]                # no Endpoint: found through the hub', `PublicKey = ${peer.keys.publicKey}`,
    `AllowedIPs = ${peer.node.tun4}/32, ${peer.node.tun6}/128`, ''].join('\n');
}
