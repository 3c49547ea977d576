import type { Sandbox } from '../../crds/sandbox.js';
import type { SandboxNode } from '../../crds/sandboxnode.js';
import { SandpitError } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import { isConflict, isNotFound, type KubeClient } from '../../lib/kube/client.js';
import { paths, splitKey } from '../../lib/kube/resources.js';
import type { EventRecorder } from '../../lib/kube/events.js';
import type { AgentClient } from '../agentclient/client.js';
import type { Informer } from '../informer/informer.js';
import type { LeaseTracker, NodeHealth } from '../nodes/health.js';
import type { AssumeCache } from '../scheduling/assumed.js';
import type { AppliedGenerations } from './applied.js';
import type { StatusPatch } from './status.js';

/*
 * What every step of a sandbox reconcile (bind, apply on the node, react to
 * a lost node, finalize) is handed, and the writes they share. A step that
 * fails throws a SandpitError naming itself; the queue retries the key.
 */

/** What a reconcile asks of the queue: nothing (done), or come back after a while. */
export interface Result {
  requeueAfterMs?: number;
}

export interface ReconcilerDeps {
  client: KubeClient;
  agents: AgentClient;
  sandboxes: Informer<Sandbox>;
  nodes: Informer<SandboxNode>;
  leases: LeaseTracker;
  events: EventRecorder;
  log: Logger;
  nodeLostGraceMs: number;
  onBound?: (sbx: Sandbox) => void;
}

/** One reconcile of one key: the dependencies, what the reconciler remembers, and where to log. */
export interface Step {
  deps: ReconcilerDeps;
  key: string;
  log: Logger;
  assumed: AssumeCache;
  applied: AppliedGenerations;
  health(node: string): NodeHealth;
  /** The Sandbox a write of ours answered, to go on from in this reconcile (see OwnWrites). */
  carryOn(sbx: Sandbox, written: unknown): Sandbox;
}

/** How long a sandbox whose node is NotReady waits before it is looked at again. */
export const NODE_DOWN_RETRY_MS = 5_000;

/** Merge-patches /status guarded by resourceVersion; a conflict means the cache was stale and the key is retried. */
export async function writeStatus(step: Step, sbx: Sandbox, patch: StatusPatch): Promise<unknown> {
  try {
    return await step.deps.client.patch(paths.sandboxStatus(...nsName(step.key)), {
      metadata: { resourceVersion: sbx.metadata.resourceVersion },
      status: patch,
    });
  } catch (err) {
    if (isConflict(err) || isNotFound(err)) throw err;
    throw stepError(err, step.key, 'write status', 'check the API server and the controller RBAC');
  }
}

/** The agent endpoint its SandboxNode registered; none yet is an error of the step `find agent`. */
export function agentEndpoint(step: Step, node: string): string {
  const endpoint = step.deps.nodes.get(node)?.status?.endpoint;
  if (!endpoint) {
    throw new SandpitError({
      step: 'find agent',
      sandbox: step.key,
      message: `SandboxNode ${node} has no status.endpoint`,
      hint: 'the agent has not registered yet',
    });
  }
  return endpoint;
}

/** Wraps what a step's effect threw into a SandpitError naming the sandbox and the step; an agent's reason is kept. */
export function stepError(err: unknown, sandbox: string, step: string, hint: string): SandpitError {
  return new SandpitError({
    step,
    sandbox,
    message: (err as Error).message,
    hint,
    reason: err instanceof SandpitError ? err.reason : undefined,
    cause: err,
  });
}

export const nsName = (key: string): [string, string] => {
  const { namespace, name } = splitKey(key);
  return [namespace, name];
};

/** The object an Event is about. */
export const sbxRef = (s: Sandbox) => ({ apiVersion: s.apiVersion, kind: s.kind, metadata: s.metadata });
