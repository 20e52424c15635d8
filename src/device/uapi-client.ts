/**
 * A UAPI client: talks to a running interface's socket in /var/run/wireguard exactly as `wg`
 * does, so `wireweave up/down/show` need neither wg nor wg-quick.
 */
import net from 'node:net';
import path from 'node:path';
import { WireweaveError } from '../core/errors.ts';
import type { DeviceState, SetRequest } from './config.ts';
import { Errno, UapiError } from './config.ts';
import { DEFAULT_SOCKET_DIR } from './uapi-server.ts';
import { formatSetRequest, parseGetResponse } from './uapi.ts';

export function socketPath(ifname: string, dir = DEFAULT_SOCKET_DIR): string {
  return path.join(dir, `${ifname}.sock`);
}

/** Sends one request and resolves with the whole answer (up to the blank line after errno). */
export function uapiRequest(ifname: string, request: string, dir?: string, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath(ifname, dir));
    let answer = '';
    const timer = setTimeout(() => { socket.destroy(); reject(new WireweaveError('ERR_UAPI_TIMEOUT', `no answer from ${ifname} within ${timeoutMs} ms`)); }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(request));
    socket.on('data', (chunk: string) => {
      answer += chunk;
      // Only the tail can hold the terminator: testing the whole answer on every chunk was
      // quadratic for a large `get` (10,000 peers is ~2 MB).
      if (/(^|\n)errno=-?\d+\n\n$/.test(answer.slice(-40))) { clearTimeout(timer); socket.end(); resolve(answer); }
    });
    socket.on('error', (err) => { clearTimeout(timer); reject(err); });
    socket.on('close', () => { clearTimeout(timer); reject(new WireweaveError('ERR_UAPI_CLOSED', `${ifname}: connection closed before an answer`)); });
  });
}

export async function uapiGet(ifname: string, dir?: string): Promise<DeviceState> {
  return parseGetResponse(await uapiRequest(ifname, 'get=1\n\n', dir));
}

export async function uapiSet(ifname: string, request: SetRequest, dir?: string): Promise<void> {
  const answer = await uapiRequest(ifname, `set=1\n${formatSetRequest(request)}\n`, dir);
  const m = /errno=(-?\d+)/.exec(answer);
  const errno = m ? Number(m[1]) : -Errno.EIO;
  if (errno !== 0) throw new UapiError(Math.abs(errno), `${ifname} refused the configuration (errno=${errno})`);
}
