/**
 * The `wireweave` daemon against wireguard-go, end to end: wireweave in namespace A,
 * wireguard-go in namespace B, joined by a veth pair (test/support/netns.ts), both configured
 * with the real `wg` tool, preshared key set. Pings (IPv4/IPv6, flood), a hashed TCP transfer
 * each way, UDP, an IPv6 underlay, `wg show dump`, roaming, allowed-IPs source filtering, the
 * `wg` subcommands against wireweave, and the daemon's exit when its interface goes away.
 *
 * Needs root, /dev/net/tun, wireguard-go, wg, ip, ping, sysctl; skipped with the reason
 * otherwise, except under CI (process.env.CI set), where that fails.
 */
import { describePair } from '../support/netns.ts';

describePair('wireweave (A) <-> wireguard-go (B) in network namespaces', 'wireweave', 'wireguard-go', [
  'ping IPv4 and IPv6 through the tunnel, both ways',
  'flood ping both ways, at most 1% loss',
  'TCP transfer with sha256 check: 100 MB A -> B, 20 MB B -> A',
  'UDP datagrams through the tunnel, content checked',
  'wg show dump: handshake, transfer, endpoints, preshared key',
  'IPv6 underlay: endpoints on the veth IPv6 addresses',
  'multi-homed: A answers from the address B talks to',
  "roaming: A's underlay address changes, B follows",
  'allowed-IPs source filtering: a spoofed source is dropped',
  'wg show/showconf/set/setconf/syncconf against the A daemon',
  'the daemon exits when its interface is deleted',
]);
