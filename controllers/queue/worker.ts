import type { Logger } from '../../lib/log.js';
import { ApiError } from '../../lib/kube/client.js';
import type { ControllerMetrics } from '../metrics/metrics.js';
import type { WorkQueue } from './queue.js';

/** What one reconcile of a key answered: done, or come back after `requeueAfterMs` (0: at once). */
interface ReconcileResult {
  requeueAfterMs?: number;
}

/** controller_runtime_reconcile_total's `result` label for a reconcile that returned (a throw is `error`). */
export function reconcileOutcome(result: ReconcileResult): 'success' | 'requeue' | 'requeue_after' {
  if (result.requeueAfterMs === undefined) return 'success';
  return result.requeueAfterMs ? 'requeue_after' : 'requeue';
}

/**
 * A conflict means the cache was behind our own write: retried like any
 * failure, but it is routine, so it is logged at debug, not as a warning.
 */
export const isStaleCache = (err: unknown): boolean => err instanceof ApiError && err.status === 409;

/**
 * One queue worker, as controller-runtime runs them: take a key, reconcile
 * it, then forget its back-off and requeue it as asked, or on an error
 * requeue it rate-limited. Returns when the queue shuts down.
 */
export async function runWorker(
  controller: string,
  queue: WorkQueue,
  reconcile: (key: string) => Promise<ReconcileResult>,
  metrics: ControllerMetrics,
  log: Logger,
): Promise<void> {
  const labels = { controller };
  for (;;) {
    const key = await queue.get();
    if (key === undefined) return;
    metrics.activeWorkers.inc(labels);
    const end = metrics.reconcileTime.startTimer(labels);
    try {
      const result = await reconcile(key);
      queue.forget(key);
      if (result.requeueAfterMs !== undefined) queue.addAfter(key, result.requeueAfterMs);
      metrics.reconcileTotal.inc({ ...labels, result: reconcileOutcome(result) });
    } catch (err) {
      metrics.reconcileTotal.inc({ ...labels, result: 'error' });
      metrics.reconcileErrors.inc(labels);
      const stale = isStaleCache(err);
      (stale ? log.debug.bind(log) : log.warn.bind(log))(
        { sandbox: key, err: (err as Error).message, retries: queue.failures(key) },
        stale ? 'Stale cache; retrying' : 'Reconcile failed; retrying with back-off',
      );
      queue.addRateLimited(key);
    } finally {
      end();
      metrics.activeWorkers.dec(labels);
      queue.done(key);
    }
  }
}
