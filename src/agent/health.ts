/**
 * The agent's health and metrics port (HTTP/1.1, GET only), as kubelet probes and Prometheus
 * expect it:
 * - /livez: 200 while the process serves requests (its event loop turns);
 * - /readyz: 200 when `readiness()` says ready, else 503 with the reasons, one per line;
 * - /metrics: the Prometheus text format (metrics.ts).
 *
 * It listens on 127.0.0.1:9099 by default (the DaemonSet's probes use that address on the
 * host network), so neither health nor metrics answer on the node's other addresses unless
 * configured to.
 *
 * Readiness (calico-node's rule for BGP): the datastore is in sync and the dataplane has been
 * applied once; with peers configured, in the first 30 s every one must be Established, after
 * that at least one (a node that lost one neighbour still routes through the others). With no
 * peers configured the BGP part holds.
 */
import { createServer, type Server } from 'node:http';
import type { HostPort } from './config.js';

export interface ReadinessInput {
  inSync: boolean;
  dataplaneApplied: boolean;
  /** Since the agent started. */
  uptimeMs: number;
  peers: readonly { address: string; state: string }[];
}

export const ALL_PEERS_WINDOW_MS = 30_000;

export function readiness(i: ReadinessInput): { ready: boolean; reasons: string[] } {
  const reasons: string[] = [];
  if (!i.inSync) reasons.push('the datastore is not in sync yet');
  if (!i.dataplaneApplied) reasons.push('the dataplane has not been applied yet');
  const down = i.peers.filter((p) => p.state !== 'Established');
  if (i.peers.length > 0) {
    if (i.uptimeMs < ALL_PEERS_WINDOW_MS && down.length > 0)
      reasons.push(`BGP not established with ${down.map((p) => p.address).join(', ')}`);
    else if (down.length === i.peers.length) reasons.push('BGP established with no peer');
  }
  return { ready: reasons.length === 0, reasons };
}

export interface HealthHandlers {
  ready(): { ready: boolean; reasons: string[] };
  metrics(): Promise<{ contentType: string; body: string }>;
}

export async function serveHealth(listen: HostPort, h: HealthHandlers): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/livez') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const r = h.ready();
      res
        .writeHead(r.ready ? 200 : 503, { 'content-type': 'text/plain' })
        .end(r.ready ? 'ok\n' : `${r.reasons.join('\n')}\n`);
    } else if (path === '/metrics') {
      h.metrics().then(
        (m) => res.writeHead(200, { 'content-type': m.contentType }).end(m.body),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
      );
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('GET /livez, /readyz or /metrics\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}
