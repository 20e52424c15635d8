/**
 * The libc functions the Linux TUN, the Linux UDP bind and their worker threads call, through
 * koffi (prebuilt FFI: Node has no ioctl, recvmmsg, sendmsg with control messages or poll on a
 * TUN fd). One loader for all of them; each thread that calls it gets its own function objects.
 *
 * Signatures and layouts are identical on x86_64 and arm64 Linux (LP64, asm-generic numbers).
 * Pointers handed to the kernel inside structs are addresses in a SharedArrayBuffer (its memory
 * never moves), obtained through memmove(p, p, 0), which returns its argument.
 */
import koffi from 'koffi';
import type { LibraryHandle } from 'koffi';
import { WireweaveError } from '../../core/errors.ts';

export interface Libc {
  open(path: string, flags: number, mode: number): number;
  /** ioctl with a pointer argument (a struct ifreq). */
  ioctl(fd: number, request: number, arg: Uint8Array): number;
  /** ioctl with an integer argument (TUNSETOFFLOAD). */
  ioctlValue(fd: number, request: number, value: number): number;
  socket(domain: number, type: number, protocol: number): number;
  setsockopt(fd: number, level: number, name: number, value: Int32Array | Uint32Array, len: number): number;
  getsockopt(fd: number, level: number, name: number, value: Int32Array, len: Uint32Array): number;
  bind(fd: number, addr: Uint8Array, len: number): number;
  getsockname(fd: number, addr: Uint8Array, len: Uint32Array): number;
  /** `msg`: the address of a struct msghdr (see addressOf). */
  sendmsg(fd: number, msg: number, flags: number): number;
  /** `vec`, `timeout`: addresses (0 for no timeout). */
  recvmmsg(fd: number, vec: number, vlen: number, flags: number, timeout: number): number;
  read(fd: number, buf: Uint8Array, len: number): number;
  write(fd: number, buf: Uint8Array, len: number): number;
  poll(fds: Uint8Array, nfds: number, timeout: number): number;
  eventfd(initval: number, flags: number): number;
  close(fd: number): number;
  if_nametoindex(name: string): number;
  /** The address of a SharedArrayBuffer-backed array's first byte. */
  addressOf(buf: Uint8Array): number;
  /** errno of the last failed call on this thread. */
  errno(): number;
}

export const EFD_NONBLOCK = 0x800;
export const EFD_CLOEXEC = 0x80000;
export const O_CLOEXEC = 0x80000;
/** struct pollfd { int fd; short events; short revents } */
export const POLLFD_SIZE = 8;
export const POLLIN = 0x1;
/** POLLERR | POLLHUP | POLLNVAL: the fd is gone (a deleted TUN reports them). */
export const POLLBAD = 0x8 | 0x10 | 0x20;

let cached: Libc | undefined;

function load(): LibraryHandle {
  try {
    return koffi.load('libc.so.6');
  } catch {
    return koffi.load(null); // musl and other libcs: the symbols are reachable from the process itself
  }
}

/** This thread's libc functions; throws off Linux. */
export function libc(): Libc {
  if (cached) return cached;
  if (process.platform !== 'linux') throw new WireweaveError('ERR_PLATFORM', `Linux I/O is not available on ${process.platform}`);
  const lib = load();
  const ioctl = lib.func('int ioctl(int fd, unsigned long request, ...)');
  const memmove = lib.func('uintptr_t memmove(void *dst, const void *src, size_t n)');
  cached = {
    open: lib.func('int open(const char *path, int flags, int mode)'),
    ioctl: (fd, request, arg) => ioctl(fd, request, 'void *', arg) as number,
    ioctlValue: (fd, request, value) => ioctl(fd, request, 'unsigned long', value) as number,
    socket: lib.func('int socket(int domain, int type, int protocol)'),
    setsockopt: lib.func('int setsockopt(int fd, int level, int name, const void *value, uint32_t len)'),
    getsockopt: lib.func('int getsockopt(int fd, int level, int name, _Inout_ void *value, _Inout_ uint32_t *len)'),
    bind: lib.func('int bind(int fd, const void *addr, uint32_t len)'),
    getsockname: lib.func('int getsockname(int fd, _Inout_ void *addr, _Inout_ uint32_t *len)'),
    sendmsg: lib.func('long sendmsg(int fd, uintptr_t msg, int flags)'),
    recvmmsg: lib.func('int recvmmsg(int fd, uintptr_t vec, unsigned int vlen, int flags, uintptr_t timeout)'),
    read: lib.func('long read(int fd, void *buf, size_t len)'),
    write: lib.func('long write(int fd, const void *buf, size_t len)'),
    poll: lib.func('int poll(void *fds, unsigned long nfds, int timeout)'),
    eventfd: lib.func('int eventfd(unsigned int initval, int flags)'),
    close: lib.func('int close(int fd)'),
    if_nametoindex: lib.func('unsigned int if_nametoindex(const char *ifname)'),
    addressOf: (buf) => Number(memmove(buf, buf, 0)),
    errno: () => koffi.errno(),
  };
  return cached;
}

/** Wakes a thread poll()ing `fd` (an eventfd): adds 1 to its 8-byte counter. */
export function wake(lib: Libc, fd: number): void {
  const one = new Uint8Array(8);
  one[0] = 1;
  lib.write(fd, one, 8);
}
