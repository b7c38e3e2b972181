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
 * until the peers have sent their tables. SIGHUP re-reads the file and hands the speaker the new
 * neighbor list and originated set, which it applies as differences (bgp/reconfig.ts): neighbors
 * added, removed (Cease 6/3) or restarted for new session settings (Cease 6/6), policy changes
 * applied without a reset (a route refresh is asked for new import rules).
 */
import { readFileSync } from 'node:fs';
import pino from 'pino';
import { serveApi } from '../api/http.js';
import { ConfigError, parseSpeakerConfig, type SpeakerConfig } from '../bgp/config.js';
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

  process.on('SIGHUP', () => {
    try {
      const next = load(path);
      speaker.setNeighbors(next.neighbors);
      speaker.setOriginated(next.originate);
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
