/**
 * `fetch` through the tunnel: a WHATWG Response from node:http / node:https, whose connection is
 * a TunnelSocket (TLS on top with tls.connect({ socket })). The host name is resolved by the
 * tunnel's DNS when the socket is opened, so nothing about the request leaves the host directly.
 *
 * Follows redirects (up to 20, as fetch does) unless `redirect` is 'manual' or 'error', decodes
 * gzip/deflate/br bodies as fetch does, and honours `signal`.
 */
import http from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import { Readable } from 'node:stream';
import tls from 'node:tls';
import zlib from 'node:zlib';
import { ipFamily, unbracket } from './addr.ts';
import { netError } from './errors.ts';

/** Opens a TCP connection through the tunnel (host may be a name: the tunnel resolves it). */
export type TunnelDialer = (host: string, port: number) => Duplex;

export interface TunnelFetchInit extends RequestInit {
  /** Extra options for TLS (ca, rejectUnauthorized, ...). */
  tls?: tls.ConnectionOptions;
}

const MAX_REDIRECTS = 20;

export async function tunnelFetch(dial: TunnelDialer, input: string | URL | Request, init: TunnelFetchInit = {}): Promise<Response> {
  let request = new Request(input, init);
  const body = request.body ? Buffer.from(await request.arrayBuffer()) : undefined;
  let bodyForRedirect = body;
  for (let hops = 0; ; hops++) {
    const { response, location } = await once(dial, request, bodyForRedirect, init.tls);
    if (location === undefined || request.redirect === 'manual') return response;
    if (request.redirect === 'error') {
      await response.body?.cancel();
      throw new TypeError(`fetch ${request.url}: redirected to ${location} and redirect is 'error'`);
    }
    if (hops >= MAX_REDIRECTS) {
      await response.body?.cancel();
      throw new TypeError(`fetch ${request.url}: more than ${MAX_REDIRECTS} redirects`);
    }
    await response.body?.cancel();
    const next = new URL(location, request.url);
    // 303 (and 301/302 after POST) become a GET without a body, as fetch specifies.
    const toGet = response.status === 303 ? request.method !== 'HEAD' : (response.status === 301 || response.status === 302) && request.method === 'POST';
    const headers = new Headers(request.headers);
    if (toGet) { for (const h of ['content-type', 'content-length', 'content-encoding', 'content-language', 'content-location']) headers.delete(h); bodyForRedirect = undefined; }
    if (next.origin !== new URL(request.url).origin) { headers.delete('authorization'); headers.delete('cookie'); }
    request = new Request(next, { method: toGet ? 'GET' : request.method, headers, signal: request.signal, redirect: request.redirect });
  }
}

function once(
  dial: TunnelDialer,
  request: Request,
  body: Buffer | undefined,
  tlsOptions: tls.ConnectionOptions | undefined,
): Promise<{ response: Response; location?: string }> {
  const url = new URL(request.url);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return Promise.reject(new TypeError(`fetch: only http: and https: URLs are supported, not ${url.protocol}`));
  }
  const secure = url.protocol === 'https:';
  const host = unbracket(url.hostname);
  const port = url.port ? Number(url.port) : secure ? 443 : 80;
  const headers: Record<string, string> = {};
  request.headers.forEach((value, key) => { headers[key] = value; });
  headers['host'] ??= url.host;
  headers['accept'] ??= '*/*';
  headers['accept-encoding'] ??= 'gzip, deflate, br';
  headers['user-agent'] ??= 'wireweave';
  if (body) headers['content-length'] = String(body.length);

  return new Promise((resolve, reject) => {
    const signal = request.signal;
    if (signal.aborted) { reject(signal.reason ?? netError('ABORT_ERR', 'aborted')); return; }
    const createConnection = () => {
      const raw = dial(host, port);
      if (!secure) return raw;
      return tls.connect({ ...tlsOptions, socket: raw, servername: ipFamily(host) ? undefined : host, ALPNProtocols: ['http/1.1'] });
    };
    const options: http.RequestOptions = {
      method: request.method,
      path: url.pathname + url.search,
      headers,
      // Without an agent, http uses createConnection for this one request (agent: false would
      // make a fresh Agent that dials with node:net instead).
      createConnection: createConnection as unknown as http.RequestOptions['createConnection'],
    };
    const req = (secure ? https : http).request(options);
    const onAbort = () => req.destroy(signal.reason instanceof Error ? signal.reason : netError('ABORT_ERR', 'the request was aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    let incoming: http.IncomingMessage | undefined;
    req.on('error', (err) => {
      signal.removeEventListener('abort', onAbort);
      // node:http reports a reset during a body delimited by the close as an error of the
      // request, and then ends the response as if the close were clean: fail the body instead.
      if (incoming && !incoming.complete) incoming.destroy(err);
      reject(err);
    });
    req.on('response', (res) => {
      incoming = res;
      res.on('end', () => signal.removeEventListener('abort', onAbort));
      res.on('error', () => signal.removeEventListener('abort', onAbort));
      const status = res.statusCode ?? 0;
      const responseHeaders = new Headers();
      for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
        try { responseHeaders.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!); } catch { /* a header fetch cannot represent */ }
      }
      const nullBody = request.method === 'HEAD' || status === 101 || status === 204 || status === 205 || status === 304;
      let stream: Readable = res;
      const encoding = (res.headers['content-encoding'] ?? '').trim().toLowerCase();
      if (!nullBody && (encoding === 'gzip' || encoding === 'x-gzip' || encoding === 'deflate' || encoding === 'br')) {
        const decoder = encoding === 'br' ? zlib.createBrotliDecompress() : encoding === 'deflate' ? zlib.createInflate() : zlib.createGunzip();
        res.on('error', (err) => decoder.destroy(err));
        stream = res.pipe(decoder);
      }
      if (nullBody) res.resume();
      const response = new Response(nullBody ? null : (Readable.toWeb(stream) as ReadableStream<Uint8Array>), {
        status: status >= 200 && status <= 599 ? status : 502,
        statusText: res.statusMessage ?? '',
        headers: responseHeaders,
      });
      Object.defineProperty(response, 'url', { value: request.url });
      const location = status >= 300 && status < 400 && status !== 304 ? res.headers.location : undefined;
      resolve({ response, location });
    });
    req.end(body);
  });
}
