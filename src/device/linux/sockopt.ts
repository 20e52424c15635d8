/**
 * SO_MARK on node:dgram sockets (Linux), for fwmark: wg-quick's default-route setup marks the
 * tunnel's own UDP packets so they bypass the tunnel. Node exposes neither setsockopt nor the
 * socket's fd publicly; the fd is read from the handle dgram keeps internally.
 */
import type dgram from 'node:dgram';
import { WireweaveError } from '../../core/errors.ts';
import { errnoName } from '../errno.ts';
import { libc } from './libc.ts';
import { SO_MARK, SOL_SOCKET } from './socket-abi.ts';

/** The OS file descriptor behind a bound dgram socket, or -1. */
export function dgramFd(socket: dgram.Socket): number {
  const state = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'state symbol');
  const handle = state ? (socket as unknown as Record<symbol, { handle?: { fd?: number } }>)[state]?.handle : undefined;
  return typeof handle?.fd === 'number' ? handle.fd : -1;
}

/** Sets SO_MARK (needs CAP_NET_ADMIN); throws with errno text on failure. */
export function setSocketMark(socket: dgram.Socket, mark: number): void {
  const fd = dgramFd(socket);
  if (fd < 0) throw new WireweaveError('ERR_SOCKET_FD', 'cannot find the socket file descriptor');
  const lib = libc();
  if (lib.setsockopt(fd, SOL_SOCKET, SO_MARK, Uint32Array.of(mark >>> 0), 4) !== 0) {
    const name = errnoName(lib.errno());
    throw new WireweaveError(name, `setsockopt(SO_MARK) failed: ${name}`);
  }
}
