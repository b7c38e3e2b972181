/**
 * `twill agent [options]`: the node agent (src/agent), as the DaemonSet runs it. Options and
 * their environment variables are in agent/config.ts (`twill agent --help` lists them); a wrong
 * value stops it at start with one line per field, exit code 2.
 *
 * Logs are pino JSON lines on stdout at --log-level. SIGTERM or SIGINT stops it the graceful
 * way (agent.ts `stop`: peers keep our routes, the kernel keeps its routes and rules) and exits
 * 0; if that takes longer than 20 s (a DaemonSet's grace period is 30 s by default) it exits 1.
 */
import { hostname } from 'node:os';
import pino from 'pino';
import { Agent } from '../agent/agent.js';
import { agentUsage, parseAgentConfig } from '../agent/config.js';
import { ConfigError } from '../config/fields.js';
import { setAgentV8Flags } from './agent-v8.js';
import { UsageError } from './usage.js';

export const STOP_DEADLINE_MS = 20_000;

export async function agentCommand(args: string[]): Promise<number> {
  setAgentV8Flags(); // before any of the agent's own code runs (agent-v8.ts)
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(agentUsage());
    return 0;
  }
  let config: ReturnType<typeof parseAgentConfig>;
  try {
    config = parseAgentConfig(args, process.env, hostname());
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(`invalid configuration:\n${err.message}`);
    throw err;
  }
  const log = pino({ level: config.logLevel, base: { node: config.nodename } });
  const fast = process.env.TWILL_TEST_FAST_TIMERS ? { idleHoldMinMs: 200, idleHoldMaxMs: 2000 } : {};
  const agent = new Agent(config, { log, speaker: fast });

  let stopping: Promise<number> | undefined;
  const shutdown = (signal: string): Promise<number> => {
    stopping ??= (async () => {
      log.info({ signal }, 'stopping');
      const deadline = new Promise<number>((resolve) =>
        setTimeout(() => {
          log.error({ ms: STOP_DEADLINE_MS }, 'stop took too long; exiting');
          resolve(1);
        }, STOP_DEADLINE_MS).unref(),
      );
      return Promise.race([agent.stop(`Twill agent stopped (${signal})`).then(() => 0), deadline]);
    })();
    return stopping;
  };
  const done = new Promise<number>((resolve) => {
    process.once('SIGTERM', () => void shutdown('SIGTERM').then(resolve));
    process.once('SIGINT', () => void shutdown('SIGINT').then(resolve));
  });
  try {
    await agent.start();
  } catch (err) {
    log.fatal({ err: (err as Error).message }, 'the agent cannot start');
    await agent.stop().catch(() => {});
    return 1;
  }
  log.info({ address: agent.address }, 'agent started');
  return done;
}
