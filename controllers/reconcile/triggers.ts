import type { Sandbox } from '../../crds/sandbox.js';
import type { SandboxNode } from '../../crds/sandboxnode.js';
import { keyOf } from '../../lib/kube/resources.js';
import type { ControllerCaches } from '../informer/caches.js';
import type { WorkQueue } from '../queue/queue.js';
import type { SandboxReconciler } from './sandbox.js';

/*
 * Which watch events wake which sandboxes. A reconcile looks at the whole
 * object, so an event only has to say "look again"; what these decide is
 * when looking again can find anything new, because with thousands of
 * sandboxes every needless reconcile is CPU the real ones wait for.
 */

/**
 * Whether an update of a Sandbox needs a reconcile. Status-only writes (the
 * agent reporting) do not; spec, deletion, finalizers, binding and phase do,
 * and so does a resync event (same resourceVersion), which is how a relist
 * retries what a missed event left.
 */
export function sandboxUpdateNeedsReconcile(old: Sandbox, obj: Sandbox): boolean {
  return (
    old.metadata.resourceVersion === obj.metadata.resourceVersion ||
    old.metadata.generation !== obj.metadata.generation ||
    old.metadata.deletionTimestamp !== obj.metadata.deletionTimestamp ||
    JSON.stringify(old.metadata.finalizers) !== JSON.stringify(obj.metadata.finalizers) ||
    old.status?.nodeName !== obj.status?.nodeName ||
    old.status?.phase !== obj.status?.phase
  );
}

/**
 * Whether a SandboxNode change can matter to the sandboxes bound to it. The
 * agent rewrites its status when the count of sandboxes it runs or its image
 * disk usage moves, which during a burst of starts is every status interval;
 * neither changes anything for a bound sandbox, and waking every sandbox of
 * the node for it was one no-op reconcile per sandbox each time.
 */
export function nodeChangeMatters(old: SandboxNode, node: SandboxNode): boolean {
  const decisive = (n: SandboxNode) => {
    const { sandboxes: _count, imageDiskUsageBytes: _disk, ...status } = n.status ?? {};
    return JSON.stringify([n.metadata.labels, n.metadata.deletionTimestamp, n.spec, status]);
  };
  return decisive(old) !== decisive(node);
}

/**
 * Whether a node update wakes only the sandboxes still waiting for a node:
 * any change may have freed room for them, but only a decisive one (or a
 * resync, or the node's first sighting) concerns those bound to it.
 */
export const wakesWaitingOnly = (old: SandboxNode | undefined, node: SandboxNode): boolean =>
  old !== undefined && old.metadata.resourceVersion !== node.metadata.resourceVersion && !nodeChangeMatters(old, node);

/** The sandboxes a change of `node` can matter to: those still waiting for a node, and (unless `waitingOnly`) those on it. */
export function sandboxesToWake(sandboxes: readonly Sandbox[], node: string, waitingOnly: boolean): string[] {
  return sandboxes
    .filter((s) => !s.status?.nodeName || (!waitingOnly && s.status.nodeName === node))
    .map((s) => keyOf(s));
}

/**
 * Connects the caches to the queue. `reconciler` is there only while this
 * replica leads; before that, events still keep the caches and are queued
 * for the reconciles that start with the leadership.
 */
export function queueOnChanges(
  caches: ControllerCaches,
  queue: WorkQueue,
  reconciler: () => SandboxReconciler | undefined,
  onSandbox: (obj: Sandbox, old: Sandbox | undefined) => void,
): { enqueueNode(node: string): void } {
  const enqueueNode = (node: string, waitingOnly = false) => {
    for (const key of sandboxesToWake(caches.sandboxes.list(), node, waitingOnly)) queue.add(key);
  };
  caches.sandboxes.on({
    upsert: (obj, old) => {
      onSandbox(obj, old);
      if (old && reconciler()?.isOwnContinuedWrite(obj)) return;
      if (!old || sandboxUpdateNeedsReconcile(old, obj)) queue.add(keyOf(obj));
    },
    deleted: (obj) => reconciler()?.forget(obj.metadata.uid ?? ''),
  });
  caches.nodes.on({
    upsert: (node, old) => enqueueNode(node.metadata.name ?? '', wakesWaitingOnly(old, node)),
    deleted: (node) => enqueueNode(node.metadata.name ?? ''),
  });
  return { enqueueNode: (node) => enqueueNode(node) };
}
