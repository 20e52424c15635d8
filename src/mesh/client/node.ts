/** The Node edge of the hub client: `ws` as its WebSocket, Node's timers. */
import { WebSocket } from 'ws';
import type { Timers, WebSocketFactory, WebSocketLike } from './hub-client.ts';
import { MAX_FRAME } from '../protocol/frames.ts';

export const nodeWebSocket: WebSocketFactory = (url, protocol) =>
  new WebSocket(url, protocol, { perMessageDeflate: false, maxPayload: MAX_FRAME, handshakeTimeout: 10_000 }) as unknown as WebSocketLike;

export const nodeTimers: Timers = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};
