/**
 * The kubelet's part (and the scheduler's) in `twill lab up --kubernetes`: one process per lab,
 * `twill lab kubelet LAB`, started by `up` and ended by `down`. It watches Pods on the lab's API
 * server and does for them what a kubelet with a CNI-configured runtime does (Kubernetes'
 * "Pod Lifecycle"; the CNI calls as in the CNI spec's runtime section):
 *
 *   - a Pod with no node is bound to the lab's Twill node with the fewest pods (a Binding, as
 *     kube-scheduler posts one);
 *   - a Pod bound to a Twill node of the lab gets a sandbox, a network namespace
 *     `tw-<lab>-<namespace>.<name>`, then the CNI plugin's ADD run in the node's namespace as a
 *     runtime runs it (dist/cni/twill, so the pod's address comes from that node's agent), and
 *     then its status: phase Running, Ready, hostIP, and podIP/podIPs from the CNI result;
 *   - a Pod being deleted (deletionTimestamp set: `kubectl delete` gives it a grace period) gets
 *     DEL, loses its sandbox, and is deleted for good with a grace period of 0, as a kubelet
 *     does once the pod has stopped; a Pod gone from the API loses its sandbox likewise.
 *
 * Nothing runs in a pod's sandbox: the containers' images are not pulled. What it has wired is
 * kept in <lab>/pods.json (`twill lab status` and `ping` read it), so a restarted kubelet
 * knows its sandboxes and tears down those whose Pods went meanwhile. Pods are handled one at a
 * time in event order; a failed step is logged and tried again with a backoff (0.5 s doubling to
 * 8 s) while the Pod exists, as a kubelet retries a sandbox.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { KubernetesStore } from '../datastore/kubernetes.js';
import { DatastoreError, type StoredObject } from '../datastore/types.js';
import {
  cniExec,
  forceDeletePod,
  LabError,
  type LabPodState,
  type LabState,
  mustState,
  nodeNameOf,
  nsPrefix,
  readKubeletPods,
  readState,
  writeJsonAtomic,
} from './lab.js';

interface PodSpec {
  nodeName?: string;
}

/** The sandbox of pod NAMESPACE/NAME in lab LAB. */
export function sandboxOf(lab: string, namespace: string, name: string): string {
  return `${nsPrefix(lab)}${namespace}.${name}`;
}

function ip(args: string[]): void {
  try {
    execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    throw new LabError(`ip ${args.join(' ')}: ${String((e as { stderr?: Buffer }).stderr ?? e).trim()}`);
  }
}

const log = (msg: string) => process.stdout.write(`${new Date().toISOString()} ${msg}\n`);

export class LabKubelet {
  /** Sandboxes made, by pod uid. */
  private readonly wired: Map<string, LabPodState>;
  /** The latest of each Pod the watch has delivered, by uid. */
  private readonly seen = new Map<string, StoredObject>();
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly root: string,
    private readonly lab: string,
    private readonly dir: string,
    private readonly store: KubernetesStore,
  ) {
    this.wired = new Map(readKubeletPods(dir).flatMap((p) => (p.uid ? [[p.uid, p] as const] : [])));
  }

  start(): void {
    this.store.watch(
      'Pod',
      (e) => {
        if (e.type === 'synced') return this.enqueue('resync', () => this.collect());
        const uid = e.object.metadata.uid!;
        const what = `${e.object.metadata.namespace}/${e.object.metadata.name}`;
        if (e.type === 'deleted') {
          this.seen.delete(uid);
          this.enqueue(what, () => this.teardown(uid));
        } else {
          this.seen.set(uid, e.object);
          this.enqueue(what, () => this.sync(uid), uid);
        }
      },
      {
        onError: (err) => {
          log(`pod watch ended: ${err.message}; starting again`);
          setTimeout(() => this.start(), 1000);
        },
      },
    );
  }

  /** Retries of a Pod whose last step failed (an agent not ready yet: CNI code 11), by uid. */
  private readonly retries = new Map<string, number>();

  /** One step after the others; a failed sync of `uid` is tried again, 0.5 s doubling to 8 s. */
  private enqueue(what: string, step: () => Promise<void>, uid?: string): void {
    this.chain = this.chain
      .then(step)
      .then(() => {
        if (uid) this.retries.delete(uid);
      })
      .catch((e: Error) => {
        log(`${what}: ${e.message}`);
        if (!uid) return;
        const n = (this.retries.get(uid) ?? 0) + 1;
        this.retries.set(uid, n);
        setTimeout(
          () => this.seen.has(uid) && this.enqueue(what, () => this.sync(uid), uid),
          Math.min(8000, 250 * 2 ** n),
        );
      });
  }

  private save(): void {
    writeJsonAtomic(join(this.dir, 'pods.json'), [...this.wired.values()]);
  }

  private state(): LabState {
    return mustState(this.root, this.lab);
  }

  /** Sandboxes whose Pods are gone (deleted while no kubelet ran). */
  private async collect(): Promise<void> {
    for (const uid of [...this.wired.keys()]) if (!this.seen.has(uid)) await this.teardown(uid);
  }

  private async sync(uid: string): Promise<void> {
    const pod = this.seen.get(uid);
    if (!pod) return;
    const { name, namespace = 'default' } = pod.metadata;
    const key = { name, namespace };
    if (pod.metadata.deletionTimestamp) {
      await this.teardown(uid);
      await forceDeletePod(this.store, key, uid);
      log(`${namespace}/${name}: deleted`);
      return;
    }
    const state = this.state();
    const spec = (pod.spec ?? {}) as PodSpec;
    if (!spec.nodeName) return this.bind(pod, state);
    const node = state.nodes.find((n) => n.role === 'twill' && n.agent && nodeNameOf(n) === spec.nodeName);
    if (!node) return;
    let wired = this.wired.get(uid);
    if (!wired) {
      const ns = sandboxOf(this.lab, namespace, name);
      if (!existsSync(`/run/netns/${ns}`)) {
        ip(['netns', 'add', ns]);
        ip(['-n', ns, 'link', 'set', 'lo', 'up']);
      }
      const containerID = `lab-${uid}`;
      let out: string;
      try {
        out = cniExec(node, 'ADD', { ns, containerID, namespace, name });
      } catch (e) {
        ip(['netns', 'del', ns]);
        throw new LabError(`CNI ADD on ${node.name} failed: ${(e as Error).message}`);
      }
      const res = JSON.parse(out) as { ips: { address: string }[] };
      const address = res.ips[0]!.address.split('/')[0]!;
      wired = {
        name,
        namespace,
        uid,
        node: node.name,
        ns,
        containerID,
        address,
        labels: pod.metadata.labels ?? {},
      };
      this.wired.set(uid, wired);
      this.save();
      log(`${namespace}/${name}: ${address} on ${node.name}`);
    }
    const status = (pod.status ?? {}) as { podIP?: string; phase?: string };
    if (status.podIP !== wired.address || status.phase !== 'Running')
      await this.writeStatus(uid, key, wired.address, node.address);
  }

  /** The scheduler's part: the lab's Twill node with the fewest pods. */
  private async bind(pod: StoredObject, state: LabState): Promise<void> {
    const nodes = state.nodes.filter((n) => n.role === 'twill' && n.agent).map(nodeNameOf);
    if (nodes.length === 0) return;
    const load = new Map(nodes.map((n) => [n, 0]));
    for (const p of this.seen.values()) {
      const n = (p.spec as PodSpec | undefined)?.nodeName;
      if (n !== undefined && load.has(n)) load.set(n, load.get(n)! + 1);
    }
    const target = [...load.entries()].sort((a, b) => a[1] - b[1] || a[0].localeCompare(b[0]))[0]![0];
    const { name, namespace = 'default' } = pod.metadata;
    const r = await this.store.call('POST', `/api/v1/namespaces/${namespace}/pods/${name}/binding`, {
      apiVersion: 'v1',
      kind: 'Binding',
      metadata: { name, namespace },
      target: { apiVersion: 'v1', kind: 'Node', name: target },
    });
    if (r.status >= 300 && r.status !== 409)
      throw new LabError(`binding to ${target}: ${r.status} ${JSON.stringify(r.body)}`);
    log(`${namespace}/${name}: bound to ${target}`);
  }

  private async writeStatus(
    uid: string,
    key: { name: string; namespace: string },
    address: string,
    hostIP: string | undefined,
  ): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const cur = await this.store.get({ kind: 'Pod', ...key });
      if (!cur || cur.metadata.uid !== uid) return;
      const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
      const old = (cur.status ?? {}) as { startTime?: string };
      const cond = (type: string) => ({ type, status: 'True', lastTransitionTime: now });
      try {
        await this.store.updateStatus({
          ...cur,
          status: {
            ...old,
            phase: 'Running',
            ...(hostIP ? { hostIP, hostIPs: [{ ip: hostIP }] } : {}),
            podIP: address,
            podIPs: [{ ip: address }],
            startTime: old.startTime ?? now,
            conditions: ['PodScheduled', 'Initialized', 'ContainersReady', 'Ready'].map(cond),
            // Nothing runs in a lab pod: its containers are reported running as a pause would be.
            containerStatuses: (
              (cur.spec as { containers?: { name: string; image?: string }[] })?.containers ?? []
            ).map((c) => ({
              name: c.name,
              image: c.image ?? '',
              imageID: '',
              ready: true,
              started: true,
              restartCount: 0,
              state: { running: { startedAt: old.startTime ?? now } },
            })),
          },
        });
        return;
      } catch (e) {
        if (!(e instanceof DatastoreError) || e.code !== 'Conflict') throw e;
      }
    }
    throw new LabError(`${key.namespace}/${key.name}: status kept conflicting`);
  }

  private async teardown(uid: string): Promise<void> {
    const p = this.wired.get(uid);
    if (!p) return;
    const node = readState(this.root, this.lab)?.nodes.find((n) => n.name === p.node);
    if (node && existsSync(`/run/netns/${node.ns}`))
      try {
        cniExec(node, 'DEL', {
          ns: p.ns,
          containerID: p.containerID,
          namespace: p.namespace ?? 'default',
          name: p.name,
        });
      } catch (e) {
        log(`${p.namespace}/${p.name}: CNI DEL on ${node.name}: ${(e as Error).message}`);
      }
    if (existsSync(`/run/netns/${p.ns}`)) ip(['netns', 'del', p.ns]);
    this.wired.delete(uid);
    this.save();
    log(`${p.namespace}/${p.name}: sandbox removed`);
  }
}

/** `twill lab kubelet LAB`: runs until SIGTERM. */
export async function runKubelet(root: string, lab: string): Promise<void> {
  const state = mustState(root, lab);
  if (!state.kubernetes) throw new LabError(`lab ${lab} is not in Kubernetes mode`);
  const { KubernetesStore } = await import('../datastore/kubernetes.js');
  const store = KubernetesStore.open({ kubeconfig: state.kubernetes.cp.kubeconfig });
  new LabKubelet(root, lab, state.dir, store).start();
  log(`kubelet for lab ${lab} started`);
  await new Promise<void>((resolve) => {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => resolve());
  });
  await store.close();
}
