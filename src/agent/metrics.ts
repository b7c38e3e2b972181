/**
 * The agent's Prometheus metrics (text exposition format 0.0.4, through prom-client), served on
 * /metrics by health.ts. What an operator asks of a BGP node that Calico does not answer
 * (calico#2369):
 *
 *   twill_bgp_sessions{state}                 sessions by FSM state (every state, 0 included)
 *   twill_bgp_updates_received_total          UPDATE messages in, all peers
 *   twill_bgp_updates_sent_total              UPDATE messages out, all peers
 *   twill_bgp_prefixes_received               prefixes held from peers (Adj-RIB-In), all peers
 *   twill_bgp_prefixes_advertised             prefixes advertised, all peers
 *   twill_bgp_peer_up{peer}                   1 when Established         } per peer, only while
 *   twill_bgp_peer_prefixes_received{peer}                               } the peer count is at
 *   twill_bgp_peer_prefixes_advertised{peer}                             } most the limit
 *   twill_bgp_route_changes_total             best-route changes handed to the kernel
 *   twill_route_apply_seconds                 route reconciler applies (histogram)
 *   twill_routes_installed{owner}             routes the reconciler wants, by owner
 *   twill_policy_apply_seconds                iptables/ipset applies (histogram)
 *   twill_ipam_addresses{state}               this node's block addresses: in_use, free
 *   twill_ipam_blocks                         blocks affine to this node
 *   twill_ipam_assigns_total{reads}           addresses assigned: reads from the watches, or
 *                                             from the datastore (ipam/read-cache.ts)
 *   twill_datastore_watch_failures{kind}      failures in a row of each kind's watch, 0 while
 *                                             it works (a missing CRD, an unreachable server)
 *   twill_bfd_sessions{state}, twill_bfd_transitions_total  when the speaker has BFD
 *   process_* and nodejs_*                    prom-client's defaults, less nodejs_active_*_total
 *                                             gauges (promtool's lint rejects them) and the
 *                                             event loop delay histogram's (below)
 *
 * The event loop: prom-client samples its delay on a libuv timer, every 10 ms unless told
 * otherwise. That timer woke an idle agent 100 times a second and cost it 5.5 ms of CPU a second,
 * three quarters of all it spent idle (strace: 200 epoll_pwait calls a second, every other one
 * with a 10 ms timeout), and every agent of a cluster pays it. The gauges it feeds,
 * nodejs_eventloop_lag_{min,max,mean,stddev,p50,p90,p99}_seconds, read the sampling interval
 * plus the delay (0.01 s on a loop that never waits). So the sampler is given an interval it
 * never reaches and its gauges are left out. nodejs_eventloop_lag_seconds stays: it is taken at
 * each scrape (how long a setImmediate waits) and costs nothing between scrapes.
 *
 * Per-peer series grow with the mesh (n nodes, n-1 series each, per metric): above
 * `peerLimit` peers they are dropped entirely, and the totals remain.
 *
 * Values that the agent already holds (sessions, prefix counts, IPAM use) are read at scrape
 * time from a `MetricsSource`, so nothing is updated on the hot path.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { SpeakerStatus } from '../bgp/status.js';
import { sessionCounters } from '../bgp/session.js';

/** The longest interval the sampler takes, 2^31 - 1 ms (24.8 days): it never wakes. */
const SAMPLER_NEVER_MS = 2 ** 31 - 1;

const STATES = ['Idle', 'Connect', 'Active', 'OpenSent', 'OpenConfirm', 'Established'] as const;

export interface MetricsSource {
  speaker(): SpeakerStatus | undefined;
  ipam(): { inUse: number; free: number; blocks: number };
  /** Addresses assigned so far, by where the allocator read the IPAM state from. */
  ipamAssigns?(): { watch: number; store: number };
  /** Every watched kind, with its failures in a row (0 while its watch works). */
  watches?(): Record<string, number>;
  routes(): Record<string, number>;
  /** BFD sessions by state and transitions so far, when BFD runs. */
  bfd?(): { byState: Record<string, number>; transitions: number } | undefined;
}

export class AgentMetrics {
  readonly registry = new Registry();
  readonly routeApply: Histogram;
  readonly policyApply: Histogram;
  readonly routeChanges: Counter;

  constructor(source: MetricsSource, opts: { peerLimit: number }) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: SAMPLER_NEVER_MS });
    for (const name of [
      // Gauges named like counters: promtool's lint rejects them, and the handle count says little.
      'nodejs_active_handles_total',
      'nodejs_active_requests_total',
      'nodejs_active_resources_total',
      // The delay sampler's, which never samples (see the top of this file).
      ...['min', 'max', 'mean', 'stddev', 'p50', 'p90', 'p99'].map(
        (s) => `nodejs_eventloop_lag_${s}_seconds`,
      ),
    ])
      this.registry.removeSingleMetric(name);
    const buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
    this.routeApply = new Histogram({
      name: 'twill_route_apply_seconds',
      help: 'Duration of route reconciler applies (kernel writes through netlink).',
      buckets,
      registers,
    });
    this.policyApply = new Histogram({
      name: 'twill_policy_apply_seconds',
      help: 'Duration of NetworkPolicy applies (iptables-restore and ipset).',
      buckets,
      registers,
    });
    this.routeChanges = new Counter({
      name: 'twill_bgp_route_changes_total',
      help: 'Best-route changes handed to the route reconciler.',
      registers,
    });
    new Gauge({
      name: 'twill_bgp_sessions',
      help: 'BGP sessions by FSM state.',
      labelNames: ['state'],
      registers,
      collect() {
        const st = source.speaker();
        for (const s of STATES) this.set({ state: s }, st ? st.peers.filter((p) => p.state === s).length : 0);
      },
    });
    new Counter({
      name: 'twill_bgp_updates_received_total',
      help: 'BGP UPDATE messages received from all peers.',
      registers,
      collect() {
        this.reset();
        this.inc(sessionCounters.updatesIn);
      },
    });
    new Counter({
      name: 'twill_bgp_updates_sent_total',
      help: 'BGP UPDATE messages sent to all peers.',
      registers,
      collect() {
        this.reset();
        this.inc(sessionCounters.updatesOut);
      },
    });
    const sum = (f: (p: SpeakerStatus['peers'][number]) => number) => {
      const st = source.speaker();
      return st ? st.peers.reduce((n, p) => n + f(p), 0) : 0;
    };
    new Gauge({
      name: 'twill_bgp_prefixes_received',
      help: 'Prefixes held from all peers (Adj-RIB-In).',
      registers,
      collect() {
        this.set(sum((p) => p.prefixesReceived));
      },
    });
    new Gauge({
      name: 'twill_bgp_prefixes_advertised',
      help: 'Prefixes advertised to all peers.',
      registers,
      collect() {
        this.set(sum((p) => p.prefixesAdvertised));
      },
    });
    const perPeer = (name: string, help: string, f: (p: SpeakerStatus['peers'][number]) => number) =>
      new Gauge({
        name,
        help: `${help} Omitted above ${opts.peerLimit} peers.`,
        labelNames: ['peer'],
        registers,
        collect() {
          this.reset();
          const st = source.speaker();
          if (!st || st.peers.length > opts.peerLimit) return;
          for (const p of st.peers) this.set({ peer: p.address }, f(p));
        },
      });
    perPeer('twill_bgp_peer_up', 'Whether the session with the peer is Established.', (p) =>
      p.state === 'Established' ? 1 : 0,
    );
    perPeer('twill_bgp_peer_prefixes_received', 'Prefixes held from the peer.', (p) => p.prefixesReceived);
    perPeer(
      'twill_bgp_peer_prefixes_advertised',
      'Prefixes advertised to the peer.',
      (p) => p.prefixesAdvertised,
    );
    new Gauge({
      name: 'twill_routes_installed',
      help: 'Kernel routes the reconciler wants, by owner (pods, blocks, bgp).',
      labelNames: ['owner'],
      registers,
      collect() {
        for (const [owner, n] of Object.entries(source.routes())) this.set({ owner }, n);
      },
    });
    new Gauge({
      name: 'twill_ipam_addresses',
      help: "Addresses in this node's blocks, by state (in_use, free).",
      labelNames: ['state'],
      registers,
      collect() {
        const u = source.ipam();
        this.set({ state: 'in_use' }, u.inUse);
        this.set({ state: 'free' }, u.free);
      },
    });
    new Gauge({
      name: 'twill_ipam_blocks',
      help: 'IPAM blocks affine to this node.',
      registers,
      collect() {
        this.set(source.ipam().blocks);
      },
    });
    if (source.ipamAssigns) {
      const assigns = source.ipamAssigns.bind(source);
      new Counter({
        name: 'twill_ipam_assigns_total',
        help: "Addresses assigned, by where the IPAM state was read: the agent's watches, or the datastore.",
        labelNames: ['reads'],
        registers,
        collect() {
          const a = assigns();
          this.reset();
          this.inc({ reads: 'watch' }, a.watch);
          this.inc({ reads: 'datastore' }, a.store);
        },
      });
    }
    if (source.watches) {
      const watches = source.watches.bind(source);
      new Gauge({
        name: 'twill_datastore_watch_failures',
        help: 'Failures in a row of the datastore watch of each kind; 0 while it works.',
        labelNames: ['kind'],
        registers,
        collect() {
          this.reset();
          for (const [kind, n] of Object.entries(watches())) this.set({ kind }, n);
        },
      });
    }
    if (source.bfd) {
      const bfd = source.bfd.bind(source);
      new Gauge({
        name: 'twill_bfd_sessions',
        help: 'BFD sessions by state.',
        labelNames: ['state'],
        registers,
        collect() {
          const b = bfd();
          for (const s of ['AdminDown', 'Down', 'Init', 'Up']) this.set({ state: s }, b?.byState[s] ?? 0);
        },
      });
      new Counter({
        name: 'twill_bfd_transitions_total',
        help: 'BFD session state changes.',
        registers,
        collect() {
          this.reset();
          this.inc(bfd()?.transitions ?? 0);
        },
      });
    }
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
