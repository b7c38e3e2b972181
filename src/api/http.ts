/**
 * The local API: a few read-only JSON endpoints over HTTP/1.1 on a unix socket (the default, so
 * file permissions guard it and it works across network namespaces) or on HOST:PORT. The speaker
 * and later the agent serve it; `twill status` and `twill routes` read it.
 *
 * GET only, no bodies, JSON out; 404 names the endpoints there are. A stale socket file from a
 * previous run is removed before listening.
 */
import { mkdirSync, rmSync } from 'node:fs';
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
    try {
      const body = JSON.stringify(handler(url.searchParams), replacer);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(body);
    } catch (err) {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: err instanceof Error ? err.message : String(err) }));
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if (address.kind === 'unix') {
      mkdirSync(dirname(address.path), { recursive: true });
      rmSync(address.path, { force: true });
      server.listen(address.path, () => resolve());
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
