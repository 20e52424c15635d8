/**
 * Socket numbers and struct layouts of the Linux UDP bind, identical on x86_64 and arm64 Linux
 * (LP64, little-endian; asm-generic socket.h numbers, the generic struct layouts):
 *   struct sockaddr_in  (16): u16 sin_family @0 (host order), u16 sin_port @2 (big-endian),
 *                             u8 sin_addr[4] @4, u8 zero[8] @8
 *   struct sockaddr_in6 (28): u16 sin6_family @0, u16 sin6_port @2 (BE), u32 sin6_flowinfo @4,
 *                             u8 sin6_addr[16] @8, u32 sin6_scope_id @24
 *   struct iovec        (16): void *iov_base @0, size_t iov_len @8
 *   struct msghdr       (56): void *msg_name @0, socklen_t msg_namelen @8, (pad 4),
 *                             struct iovec *msg_iov @16, size_t msg_iovlen @24,
 *                             void *msg_control @32, size_t msg_controllen @40, int msg_flags @48, (pad 4)
 *   struct mmsghdr      (64): struct msghdr msg_hdr @0, unsigned msg_len @56, (pad 4)
 *   struct cmsghdr      (16): size_t cmsg_len @0, int cmsg_level @8, int cmsg_type @12, data @16;
 *                             CMSG_ALIGN = 8, CMSG_LEN(n) = 16 + n, CMSG_SPACE(n) = 16 + align8(n)
 */

export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_DGRAM = 2;
export const SOCK_NONBLOCK = 0x800;
export const SOCK_CLOEXEC = 0x80000;
export const SOL_SOCKET = 1;
export const SO_SNDBUF = 7;
export const SO_RCVBUF = 8;
export const SO_SNDBUFFORCE = 32;
export const SO_RCVBUFFORCE = 33;
export const SO_MARK = 36;
/** Each datagram carries the socket's cumulative count of datagrams dropped for want of buffer space (a u32). */
export const SO_RXQ_OVFL = 40;
export const IPPROTO_IP = 0;
export const IPPROTO_IPV6 = 41;
export const IPV6_V6ONLY = 26;

export const SOCKADDR_IN = 16;
export const SOCKADDR_IN6 = 28;
export const MMSGHDR = 64;
export const IOVEC = 16;
export const CMSG_HDR = 16;

// Offsets in struct msghdr (and so in struct mmsghdr), in bytes.
export const MSG_NAME = 0;
export const MSG_NAMELEN = 8;
export const MSG_IOV = 16;
export const MSG_IOVLEN = 24;
export const MSG_CONTROL = 32;
export const MSG_CONTROLLEN = 40;
export const MSG_FLAGS = 48;
/** struct mmsghdr's msg_len: bytes received. */
export const MMSG_LEN = 56;

/** CMSG_SPACE(n): a control message with n data bytes, padded to 8. */
export function cmsgSpace(n: number): number {
  return CMSG_HDR + ((n + 7) & ~7);
}
