/**
 * What the in-process agent tests share: a logger that says nothing, and the configuration of an
 * agent named `a` on a fixed loopback address whose sockets and sysctls live in `dir`.
 */
import { join } from 'node:path';
import type { AgentLogger } from '../../src/agent/agent.js';
import type { AgentConfig } from '../../src/agent/config.js';

export const silent: AgentLogger = {
  trace: () => {},
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => silent,
};

export function unitConfig(dir: string): AgentConfig {
  return {
    nodename: 'a',
    datastore: 'file:/nonexistent',
    kubeconfig: undefined,
    ip: { kind: 'fixed', address: '127.0.0.1' },
    asn: 64512,
    bgpPort: 0,
    pool: undefined,
    logLevel: 'silent',
    healthListen: undefined,
    apiSocket: join(dir, 'api.sock'),
    cniSocket: join(dir, 'cni.sock'),
    procSysNet: join(dir, 'net'),
    routeRefreshMs: 3_600_000,
    metricsPeerLimit: 100,
    leakGraceMs: 3_600_000,
    emptyBlockReleaseMs: 3_600_000,
  };
}
