/**
 * `twill speaker --config FILE`: a standalone BGP speaker, like gobgpd or bird. It peers with the
 * configured neighbors, originates the configured prefixes to each, keeps what they send, and
 * serves `twill status` on the local API. It never writes the kernel.
 *
 * A bad configuration fails at start with one line per wrong field. SIGTERM or SIGINT sends every
 * peer Cease 6/2 with an RFC 8203 message and exits; SIGHUP re-reads the file and applies
 * neighbor additions, removals (Cease 6/3) and the originated set without touching sessions
 * that did not change.
 */
import { readFileSync } from 'node:fs';
import pino from 'pino';
import { serveApi } from '../api/http.js';
import { ConfigError, type NeighborConfig, parseSpeakerConfig, type SpeakerConfig } from '../bgp/config.js';
import { Speaker } from '../bgp/speaker.js';
import { formatPrefix } from '../net/addr.js';
import { UsageError } from './usage.js';

function load(path: string): SpeakerConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${path}: ${(err as Error).message}`);
  }
  try {
    return parseSpeakerConfig(text, path);
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(`invalid configuration:\n${err.message}`);
    throw err;
  }
}

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (v === undefined || v.startsWith('--')) throw new UsageError(`${name} needs a value`);
  return v;
}

export async function speakerCommand(args: string[]): Promise<number> {
  const path = flag(args, '--config');
  if (!path) throw new UsageError('usage: twill speaker --config FILE [--log-level LEVEL]');
  const config = load(path);
  const log = pino({
    level: flag(args, '--log-level') ?? process.env.TWILL_LOG_LEVEL ?? 'info',
    base: { component: 'speaker' },
  });
  const timers = process.env.TWILL_TEST_FAST_TIMERS ? { idleHoldMinMs: 200, idleHoldMaxMs: 2000 } : {};
  const speaker = new Speaker(config, log, timers);
  await speaker.start();
  const api = await serveApi(config.api.listen, {
    '/status': () => speaker.status(),
    '/routes': () =>
      speaker.received().map((p) => ({
        peer: p.peer,
        routes: p.routes.map((r) => ({
          prefix: formatPrefix(r.prefix),
          nextHops: r.nextHops,
          attrs: r.attrs,
        })),
      })),
  });
  log.info({ api: config.api.listen }, 'API listening');

  let current = config;
  process.on('SIGHUP', () => {
    try {
      const next = load(path);
      const key = (n: NeighborConfig) => JSON.stringify(n);
      const before = new Map(current.neighbors.map((n) => [n.address, key(n)]));
      const after = new Map(next.neighbors.map((n) => [n.address, n]));
      for (const [addr, k] of before) {
        const n = after.get(addr);
        if (!n || key(n) !== k)
          speaker.removeNeighbor(addr, n ? 'neighbor configuration changed' : undefined);
      }
      for (const [addr, n] of after) if (before.get(addr) !== key(n)) speaker.addNeighbor(n);
      speaker.setOriginated(next.originate);
      current = next;
      log.info({}, 'configuration reloaded');
    } catch (err) {
      log.error({ err: (err as Error).message }, 'configuration not reloaded; keeping the running one');
    }
  });

  return new Promise<number>((resolve) => {
    const shutdown = (sig: string) => {
      log.info({ signal: sig }, 'shutting down');
      void speaker.stop(`Twill speaker stopped (${sig})`).then(() => {
        api.close();
        resolve(0);
      });
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
  });
}
