/**
 * Address text helpers for the netstack layer: IP literals (no DNS here) and the
 * `host:port` / `[v6]:port` forms the CLI and the proxies read.
 */
import { isIP } from 'node:net';

/** 4 or 6 for an IP literal ("10.0.0.1", "fd00::1", "[fd00::1]" is not one), else 0. */
export function ipFamily(text: string): 0 | 4 | 6 {
  const f = isIP(text);
  return f === 4 ? 4 : f === 6 ? 6 : 0;
}

/** Removes one pair of surrounding brackets: "[fd00::1]" → "fd00::1". */
export function unbracket(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** "host:port" with "[v6]:port"; port 1–65535 (0 too when `allowZero`). Null when malformed. */
export function splitHostPort(text: string, allowZero = false): { host: string; port: number } | null {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  if (!m) return null;
  const port = Number(m[3]);
  if (port > 65535 || (port === 0 && !allowZero)) return null;
  return { host: m[1] ?? m[2]!, port };
}

/** A port number in text: 1–65535 (0 too when `allowZero`), else null. */
export function parsePort(text: string, allowZero = false): number | null {
  if (!/^\d{1,5}$/.test(text)) return null;
  const port = Number(text);
  return port > 65535 || (port === 0 && !allowZero) ? null : port;
}

/** "1.2.3.4:80" or "[fd00::1]:80". */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
