/** Shared set-up for the TCP tests: a listener on B, a client on A, events recorded. */
import type { Connection } from '../../../src/netstack/stack/tcp/connection.ts';
import type { StackConfig, TcpConnection, TcpErrorCode } from '../../../src/netstack/stack/types.ts';
import { concat, twoHosts } from './wire.ts';
import type { Wire, WireConditions } from './wire.ts';

export interface Recorder {
  connected: boolean;
  data: Uint8Array[];
  ended: boolean;
  closed: boolean;
  error: TcpErrorCode | undefined;
  drains: number;
  /** Release delivered bytes at once (the application keeps up). */
  autoRelease: boolean;
  received(): Uint8Array;
}

export function record(conn: TcpConnection, wire: Wire, autoRelease = true): Recorder {
  const r: Recorder = {
    connected: false, data: [], ended: false, closed: false, error: undefined, drains: 0, autoRelease,
    received: () => concat(r.data),
  };
  conn.events = {
    onConnect: () => { r.connected = true; },
    onData: (d) => { r.data.push(d); if (r.autoRelease) conn.release(d.length, wire.now); },
    onEnd: () => { r.ended = true; },
    onDrain: () => { r.drains++; },
    onClose: (e) => { r.closed = true; r.error = e?.code; },
  };
  return r;
}

export function connected(options: {
  seed?: number; conditions?: WireConditions; a?: Partial<StackConfig>; b?: Partial<StackConfig>; v6?: boolean; autoRelease?: boolean;
} = {}) {
  const { wire, a, b } = twoHosts(options);
  const listener = b.stack.tcpListen(80);
  let server: Connection | undefined;
  let serverLog: Recorder | undefined;
  listener.onConnection = (c) => { server = c as Connection; serverLog = record(c, wire, options.autoRelease ?? true); };
  const client = a.stack.tcpConnect({ address: options.v6 ? 'fd00::2' : '10.0.0.2', port: 80 }, wire.now) as Connection;
  const clientLog = record(client, wire, options.autoRelease ?? true);
  wire.runWhile(() => !server || client.state !== 'ESTABLISHED', 60_000);
  if (!server || !serverLog) throw new Error('no connection');
  return { wire, a, b, listener, client, clientLog, server: server as Connection, serverLog: serverLog as Recorder };
}

/** Writes all of `data`, continuing on drain; calls `done` after the last byte was accepted. */
export function writeAll(conn: TcpConnection, data: Uint8Array, wire: Wire, done?: () => void): void {
  let off = 0;
  const pump = () => {
    while (off < data.length) {
      const n = conn.write(data.subarray(off), wire.now);
      off += n;
      if (n === 0) return;
    }
    const d = done;
    done = undefined;
    d?.();
  };
  const prev = conn.events.onDrain;
  conn.events.onDrain = () => { prev?.(); pump(); };
  pump();
}
