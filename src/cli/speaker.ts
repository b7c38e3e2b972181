/**
 * `twill speaker --config FILE [--graceful-restart] [--log-level LEVEL]`: a standalone BGP
 * speaker, like gobgpd or bird. It peers with the configured neighbors, originates the configured
 * prefixes, selects best paths, passes them on by the export rules (eBGP, route reflection), and
 * serves `twill status` and `twill routes` on the local API. It never writes the kernel.
 *
 * A bad configuration fails at start with one line per wrong field. SIGTERM or SIGINT ends every
 * session: with Cease 6/2 and an RFC 8203 message, or — to a peer that negotiated graceful
 * restart — by closing the connection, so the peer keeps our routes while we restart. Start again
 * with `--graceful-restart` (like `bird -R`): the OPEN says we restarted, and nothing is advertised
 * until the peers have sent their tables. SIGHUP re-reads the file: neighbors added or removed
 * (Cease 6/3), policy changes applied without a reset (a route refresh is asked for new import
 * rules), the originated set replaced.
 */
import { readFileSync } from 'node:fs';
import pino from 'pino';
import { serveApi } from '../api/http.js';
import { ConfigError, type NeighborConfig, parseSpeakerConfig, type SpeakerConfig } from '../bgp/config.js';
import { Speaker } from '../bgp/speaker.js';
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

/** The neighbor settings that need a new session when they change (the rest is policy). */
function sessionKey(n: NeighborConfig): string {
  const {
    import: _i,
    export: _e,
    nextHopSelf: _n,
    routeReflectorClient: _r,
    allowasIn: _a,
    maxPrefix: _m,
    description: _d,
    ...rest
  } = n;
  return JSON.stringify(rest);
}

export async function speakerCommand(args: string[]): Promise<number> {
  const path = flag(args, '--config');
  if (!path)
    throw new UsageError('usage: twill speaker --config FILE [--graceful-restart] [--log-level LEVEL]');
  const config = load(path);
  const log = pino({
    level: flag(args, '--log-level') ?? process.env.TWILL_LOG_LEVEL ?? 'info',
    base: { component: 'speaker' },
  });
  const fast = process.env.TWILL_TEST_FAST_TIMERS ? { idleHoldMinMs: 200, idleHoldMaxMs: 2000 } : {};
  const speaker = new Speaker(config, log, { ...fast, restarting: args.includes('--graceful-restart') });
  await speaker.start();
  const api = await serveApi(config.api.listen, {
    '/status': () => speaker.status(),
    '/routes': (q) => speaker.routes(q.get('prefix') ?? undefined),
  });
  log.info({ api: config.api.listen }, 'API listening');

  let current = config;
  process.on('SIGHUP', () => {
    try {
      const next = load(path);
      const before = new Map(current.neighbors.map((n) => [n.address, n]));
      const after = new Map(next.neighbors.map((n) => [n.address, n]));
      for (const [addr, old] of before) {
        const n = after.get(addr);
        if (!n) speaker.removeNeighbor(addr);
        else if (sessionKey(n) !== sessionKey(old))
          speaker.removeNeighbor(addr, 'neighbor configuration changed');
      }
      for (const [addr, n] of after) {
        const old = before.get(addr);
        if (!old || sessionKey(n) !== sessionKey(old)) speaker.addNeighbor(n);
        else if (JSON.stringify(n) !== JSON.stringify(old)) speaker.updateNeighborPolicy(n);
      }
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
