/**
 * A LinuxUdpBind (or a Device on a LinuxUdpBind and a MemoryTun) in its own process, for
 * bind-linux.interop.test.ts: started with `ip netns exec NS node --import tsx <this file>` so
 * its sockets live in that namespace. Driven by JSON lines on stdin, one answer line on stdout
 * per command ({ id, ok, ... } or { id, error }), plus unsolicited event lines:
 *   { event: 'recv', from: { address, port, text, localAddress }, data }     (bind mode; data as text)
 *   { event: 'tunWrite', packet }                                           (device mode; hex)
 *   { event: 'sourceCleared', localAddress, text, clearedLocal, errno }     (the kernel refused a source)
 * Commands:
 *   { cmd: 'open', port }                     → { port }
 *   { cmd: 'send', address, port, localAddress?, data }
 *   { cmd: 'reply', data }                    sends to the endpoint the last datagram came from
 *   { cmd: 'stats' }                          → { stats }
 *   { cmd: 'device', privateKey, listenPort } creates and starts the device (MemoryTun) → { port }
 *   { cmd: 'ipcSet', text }                   UAPI set on the device
 *   { cmd: 'inject', packet }                 (hex) into the device's MemoryTun
 *   { cmd: 'state' }                          → { peers: [{ publicKey, endpoint }] }
 *   { cmd: 'exit' }                           closes everything and exits
 * It exits by itself when stdin closes (the test went away).
 */
import readline from 'node:readline';
import { LinuxUdpBind } from '../../src/device/linux/bind.ts';
import type { BindEndpoint } from '../../src/device/bind.ts';
import { Device } from '../../src/device/device.ts';
import { MemoryTun } from '../../src/device/tun-memory.ts';

interface Command {
  id: number;
  cmd: string;
  port?: number;
  address?: string;
  localAddress?: string;
  data?: string;
  privateKey?: string;
  listenPort?: number;
  text?: string;
  packet?: string;
}

const bind = new LinuxUdpBind({
  onError: (err) => out({ event: 'error', message: err.message }),
  onSourceCleared: (e, cleared, errno) => out({ event: 'sourceCleared', localAddress: e.localAddress, text: e.text, clearedLocal: cleared.localAddress ?? null, errno }),
});
let last: BindEndpoint | null = null;
let device: Device | null = null;
let tun: MemoryTun | null = null;

function out(o: object): void {
  process.stdout.write(JSON.stringify(o) + '\n');
}

async function handle(c: Command): Promise<object> {
  switch (c.cmd) {
    case 'open': {
      const port = await bind.open(c.port ?? 0, (d, from) => {
        last = from;
        out({ event: 'recv', from: { address: from.address, port: from.port, text: from.text, localAddress: from.localAddress ?? null }, data: Buffer.from(d).toString() });
      });
      return { port };
    }
    case 'send': {
      const to = c.localAddress ? bind.endpointWithSource(c.address!, c.port!, c.localAddress) : bind.endpointFor(c.address!, c.port!);
      bind.send(Buffer.from(c.data!), to);
      return {};
    }
    case 'reply':
      if (!last) throw new Error('nothing received yet');
      bind.send(Buffer.from(c.data!), last);
      return { to: { text: last.text, localAddress: last.localAddress ?? null } };
    case 'stats':
      return { stats: bind.stats };
    case 'device': {
      tun = new MemoryTun({ name: 'wwchild0', poison: false });
      tun.onWrite = (p) => { out({ event: 'tunWrite', packet: Buffer.from(p).toString('hex') }); };
      device = new Device({ tun, bind });
      await device.ipcSet(`private_key=${c.privateKey}\nlisten_port=${c.listenPort}\n`);
      await device.up();
      return { port: device.getState().listenPort };
    }
    case 'ipcSet':
      await device!.ipcSet(c.text!);
      return {};
    case 'inject':
      tun!.inject(Buffer.from(c.packet!, 'hex'));
      return {};
    case 'state':
      return { peers: device!.getState().peers.map((p) => ({ publicKey: Buffer.from(p.publicKey).toString('hex'), endpoint: p.endpoint })), stats: bind.stats };
    case 'exit':
      await shutdown();
      return {};
    default:
      throw new Error(`unknown command ${c.cmd}`);
  }
}

async function shutdown(): Promise<void> {
  if (device) await device.close();
  await bind.close();
  setImmediate(() => process.exit(0));
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let c: Command;
  try {
    c = JSON.parse(line) as Command;
  } catch {
    return;
  }
  handle(c).then(
    (r) => out({ id: c.id, ok: true, ...r }),
    (err: unknown) => out({ id: c.id, error: err instanceof Error ? err.message : String(err) }),
  );
});
rl.on('close', () => void shutdown());
