/**
 * vitest global setup for the Kubernetes tests: gives the run a folder in which the first test file
 * that needs a control plane starts one (test/k8s/control-plane.ts, sharedControlPlane), and ends
 * that control plane by PID when the run ends, whether its tests passed or not. A run with no
 * Kubernetes test starts nothing.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { stopShared } from './control-plane.js';

export default function setup(project: TestProject): () => Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'twill-k8s-run-'));
  project.provide('twillK8sShared', { dir, ownerPid: process.pid });
  return () => stopShared(dir);
}
