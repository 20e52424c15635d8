/** Every fuzz target, by name, in the order a full run takes them. */
import type { FuzzTarget } from '../harness.ts';
import { deviceBindTarget } from './device-bind.ts';
import { deviceTunTarget } from './device-tun.ts';
import { dnsTarget } from './dns.ts';
import { netstackTarget } from './netstack.ts';
import { proxyTarget } from './proxy.ts';
import { uapiConnTarget } from './uapi-conn.ts';
import { uapiSetTarget } from './uapi-set.ts';
import { wgQuickTarget } from './wgquick.ts';
import { wireTarget } from './wire.ts';

export const TARGETS: readonly FuzzTarget<never>[] = [
  wireTarget,
  uapiSetTarget,
  uapiConnTarget,
  wgQuickTarget,
  deviceTunTarget,
  deviceBindTarget,
  netstackTarget,
  proxyTarget,
  dnsTarget,
] as unknown as FuzzTarget<never>[];

export function targetByName(name: string): FuzzTarget<never> | undefined {
  return TARGETS.find((t) => t.name === name);
}
