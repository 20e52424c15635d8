/**
 * The daemon's logger. LOG_LEVEL as wireguard-go reads it: `verbose` (or `debug`), `error` (the
 * default, also for any other value) or `silent`; lines go to stdout. The default line format is
 * wireguard-go's (`DEBUG: (wg0) 2026/11/22 06:48:36 message`), so existing log scraping keeps
 * working; WIREWEAVE_LOG_FORMAT=json writes one JSON object per line instead
 * (`{"time":"…","level":"debug","interface":"wg0","msg":"…"}`) for log collectors.
 *
 * Nothing on the packet path logs at the default level: errors there are counted (and shown by
 * the metrics), and the few receive errors that are logged are rate-limited by the bind.
 */
import type { DeviceLogger } from './device.ts';

export type LogFormat = 'text' | 'json';

/** wireguard-go's rank of a LOG_LEVEL value: 0 silent, 1 error, 2 verbose. */
export function logLevelRank(level: string | undefined): 0 | 1 | 2 {
  const lvl = (level ?? 'error').toLowerCase();
  return lvl === 'verbose' || lvl === 'debug' ? 2 : lvl === 'silent' ? 0 : 1;
}

export function makeLogger(ifname: string, level: string | undefined, out: NodeJS.WritableStream, format: LogFormat = 'text', now: () => Date = () => new Date()): DeviceLogger {
  const rank = logLevelRank(level);
  const line = format === 'json'
    ? (tag: string, msg: string) => {
      out.write(JSON.stringify({ time: now().toISOString(), level: tag === 'ERROR' ? 'error' : 'debug', interface: ifname, msg }) + '\n');
    }
    : (tag: string, msg: string) => {
      const t = now();
      const stamp = `${t.getFullYear()}/${pad(t.getMonth() + 1)}/${pad(t.getDate())} ${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}`;
      // One record per line, whatever the message holds.
      out.write(`${tag}: (${ifname}) ${stamp} ${msg.replace(/\n/g, ' ')}\n`);
    };
  return {
    error: (m) => { if (rank >= 1) line('ERROR', m); },
    verbose: (m) => { if (rank >= 2) line('DEBUG', m); },
  };
}

/** WIREWEAVE_LOG_FORMAT: `json`, else wireguard-go's text lines. */
export function logFormatFrom(value: string | undefined): LogFormat {
  return value?.toLowerCase() === 'json' ? 'json' : 'text';
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}
