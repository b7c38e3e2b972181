/**
 * The local API: a few read-only JSON endpoints over HTTP/1.1 on a unix socket (the default, so
 * file permissions guard it and it works across network namespaces) or on HOST:PORT. The speaker
 * and later the agent serve it; `twill status` and `twill routes` read it.
 *
 * GET only, no bodies, JSON out; 404 names the endpoints there are. A handler may return a
 * promise. A stale socket file from a previous run is removed before listening.
 *
 * Only root gets in: a unix socket is made 0600 (under a 0077 umask, so it is never open to
 * others); a folder made for it is 0700.
 */
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { dirname } from 'node:path';
import type { ApiAddress } from '../bgp/config.js';

export type Endpoints = Record<string, (query: URLSearchParams) => unknown>;

function replacer(_k: string, v: unknown): unknown {
  return typeof v === 'bigint' ? `0x${v.toString(16).padStart(16, '0')}` : v;
}

export async function serveApi(address: ApiAddress, endpoints: Endpoints): Promise<Server> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://twill');
    const handler = endpoints[url.pathname];
    if (req.method !== 'GET' || !handler) {
      res.writeHead(req.method !== 'GET' ? 405 : 404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: `GET one of ${Object.keys(endpoints).join(', ')}` }));
      return;
    }
    const fail = (err: unknown) => {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: err instanceof Error ? err.message : String(err) }));
    };
    const send = (value: unknown) => {
      try {
        const body = JSON.stringify(value, replacer);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(body);
      } catch (err) {
        fail(err);
      }
    };
    try {
      const value = handler(url.searchParams);
      if (value instanceof Promise) value.then(send, fail);
      else send(value);
    } catch (err) {
      fail(err);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if (address.kind === 'unix') {
      // A folder made here is 0700; one that was there is left as it is (it may be /tmp).
      mkdirSync(dirname(address.path), { recursive: true, mode: 0o700 });
      rmSync(address.path, { force: true });
      const mask = process.umask(0o077);
      server.listen(address.path, () => {
        process.umask(mask);
        chmodSync(address.path, 0o600);
        resolve();
      });
      server.once('error', () => process.umask(mask));
    } else {
      server.listen(address.port, address.host, () => resolve());
    }
  });
  return server;
}

/** GET a JSON endpoint of a running Twill. */
export function getJson(address: ApiAddress, path: string, timeoutMs = 5000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request(
      address.kind === 'unix'
        ? { socketPath: address.path, path }
        : { host: address.host, port: address.port, path },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200) return reject(new Error(`${path}: HTTP ${res.statusCode}: ${text}`));
          try {
            resolve(JSON.parse(text));
          } catch {
            reject(new Error(`${path}: not JSON: ${text.slice(0, 200)}`));
          }
        });
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}
