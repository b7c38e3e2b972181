/**
 * `--datastore` as users write it, for every command that reads the cluster's truth (the agent,
 * `twill ipam`, the lab): `file:DIR` opens the embedded file store in DIR; `kubernetes` opens the
 * API server through a kubeconfig (`--kubeconfig`, else KUBECONFIG or ~/.kube/config, else the
 * in-cluster ServiceAccount). Anything else is an error that says which forms exist.

 */
import { openFileDatastore, parseFileSpec } from './file.js';
import { type Datastore, DatastoreError } from './types.js';

export interface OpenOptions {
  kubeconfig?: string;
  /** A file store must already exist (commands that only read it). */
  mustExist?: boolean;
}

export const DATASTORE_FORMS = 'file:DIR or kubernetes';

export async function openDatastore(spec: string, options: OpenOptions = {}): Promise<Datastore> {
  const dir = parseFileSpec(spec);
  if (dir !== undefined) return openFileDatastore(dir, options.mustExist ? { mustExist: true } : {});
  if (spec === 'kubernetes') {
    // Loaded only when used: the Kubernetes client is most of a process's start-up and memory.
    const { KubernetesStore } = await import('./kubernetes.js');
    return KubernetesStore.open(options.kubeconfig === undefined ? {} : { kubeconfig: options.kubeconfig });
  }
  throw new DatastoreError('Invalid', `--datastore ${JSON.stringify(spec)}: expected ${DATASTORE_FORMS}`);
}
