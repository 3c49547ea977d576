import { FINALIZER } from '../../crds/common.js';
import type { KubeClient } from '../../lib/kube/client.js';

interface Finalizable {
  metadata: { finalizers?: string[]; resourceVersion?: string; deletionTimestamp?: string };
}

export const hasFinalizer = (o: Finalizable) => (o.metadata.finalizers ?? []).includes(FINALIZER);

/** The finalizer list with ours added, or undefined when it is already there. Pure. */
export function withFinalizer(o: Finalizable): string[] | undefined {
  const list = o.metadata.finalizers ?? [];
  return list.includes(FINALIZER) ? undefined : [...list, FINALIZER];
}

/** The finalizer list without ours, or undefined when it is not there. Pure. */
export function withoutFinalizer(o: Finalizable): string[] | undefined {
  const list = o.metadata.finalizers ?? [];
  return list.includes(FINALIZER) ? list.filter((f) => f !== FINALIZER) : undefined;
}

/**
 * Writes a new finalizer list guarded by the resourceVersion we computed it
 * from: a merge patch that carries metadata.resourceVersion fails with 409
 * if anyone wrote in between, so another controller's finalizer added
 * meanwhile is never clobbered. The caller requeues on conflict.
 */
export async function writeFinalizers<T>(
  client: KubeClient,
  path: string,
  o: Finalizable,
  finalizers: string[],
): Promise<T> {
  return client.patch<T>(path, { metadata: { finalizers, resourceVersion: o.metadata.resourceVersion } });
}
