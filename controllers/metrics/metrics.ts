import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { QueueObserver } from '../queue/queue.js';

/*
 * Metrics under controller-runtime's names and labels, so the dashboards and
 * alerts people already run for Go operators work on sandpit unchanged.
 */

export class ControllerMetrics {
  readonly registry = new Registry();
  readonly reconcileTotal: Counter<'controller' | 'result'>;
  readonly reconcileErrors: Counter<'controller'>;
  readonly terminalErrors: Counter<'controller'>;
  readonly reconcileTime: Histogram<'controller'>;
  readonly activeWorkers: Gauge<'controller'>;
  readonly maxConcurrent: Gauge<'controller'>;
  readonly leaderStatus: Gauge<'name'>;
  readonly informerRestarts: Counter<'resource'>;
  readonly scheduleToBoundSeconds: Histogram;
  readonly applyToReadySeconds: Histogram;
  readonly #depth: Gauge<'name' | 'controller'>;
  readonly #adds: Counter<'name' | 'controller'>;
  readonly #retries: Counter<'name' | 'controller'>;
  readonly #queueDuration: Histogram<'name' | 'controller'>;
  readonly #workDuration: Histogram<'name' | 'controller'>;
  readonly #longest: Gauge<'name' | 'controller'>;
  readonly #probes = new Map<string, () => number>();

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    const buckets = [
      0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.25, 1.5, 1.75,
      2, 2.5, 3, 3.5, 4, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60,
    ];
    const qBuckets = [1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 1, 10, 100, 1000];
    this.reconcileTotal = new Counter({
      name: 'controller_runtime_reconcile_total',
      help: 'Total number of reconciliations per controller',
      labelNames: ['controller', 'result'],
      registers,
    });
    this.reconcileErrors = new Counter({
      name: 'controller_runtime_reconcile_errors_total',
      help: 'Total number of reconciliation errors per controller',
      labelNames: ['controller'],
      registers,
    });
    this.terminalErrors = new Counter({
      name: 'controller_runtime_terminal_reconcile_errors_total',
      help: 'Total number of terminal reconciliation errors per controller',
      labelNames: ['controller'],
      registers,
    });
    this.reconcileTime = new Histogram({
      name: 'controller_runtime_reconcile_time_seconds',
      help: 'Length of time per reconciliation per controller',
      labelNames: ['controller'],
      buckets,
      registers,
    });
    this.activeWorkers = new Gauge({
      name: 'controller_runtime_active_workers',
      help: 'Number of currently used workers per controller',
      labelNames: ['controller'],
      registers,
    });
    this.maxConcurrent = new Gauge({
      name: 'controller_runtime_max_concurrent_reconciles',
      help: 'Maximum number of concurrent reconciles per controller',
      labelNames: ['controller'],
      registers,
    });
    this.leaderStatus = new Gauge({
      name: 'leader_election_master_status',
      help: 'Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master',
      labelNames: ['name'],
      registers,
    });
    this.informerRestarts = new Counter({
      name: 'sandpit_informer_restarts_total',
      help: 'Informer list/watch restarts after an error, per resource',
      labelNames: ['resource'],
      registers,
    });
    this.scheduleToBoundSeconds = new Histogram({
      name: 'sandpit_sandbox_schedule_seconds',
      help: 'Seconds from Sandbox creation to its binding to a node',
      buckets,
      registers,
    });
    this.applyToReadySeconds = new Histogram({
      name: 'sandpit_sandbox_start_seconds',
      help: 'Seconds from Sandbox creation until the controller first sees it Ready',
      buckets,
      registers,
    });
    const q = (name: string, help: string) => ({ name, help, labelNames: ['name', 'controller'] as const, registers });
    this.#depth = new Gauge(q('workqueue_depth', 'Current depth of workqueue'));
    this.#adds = new Counter(q('workqueue_adds_total', 'Total number of adds handled by workqueue'));
    this.#retries = new Counter(q('workqueue_retries_total', 'Total number of retries handled by workqueue'));
    this.#queueDuration = new Histogram({
      ...q('workqueue_queue_duration_seconds', 'How long in seconds an item stays in workqueue before being requested'),
      buckets: qBuckets,
    });
    this.#workDuration = new Histogram({
      ...q('workqueue_work_duration_seconds', 'How long in seconds processing an item from workqueue takes'),
      buckets: qBuckets,
    });
    const probes = this.#probes;
    this.#longest = new Gauge({
      ...q(
        'workqueue_longest_running_processor_seconds',
        'How many seconds has the longest running processor for workqueue been running',
      ),
      collect() {
        for (const [controller, probe] of probes) this.set({ name: controller, controller }, probe());
      },
    });
  }

  /** The observer a WorkQueue reports into, labelled like controller-runtime (name = controller = the controller's name). */
  queueObserver(controller: string): QueueObserver {
    const l = { name: controller, controller };
    return {
      depth: (n) => this.#depth.set(l, n),
      added: () => this.#adds.inc(l),
      retried: () => this.#retries.inc(l),
      queued: (s) => this.#queueDuration.observe(l, s),
      worked: (s) => this.#workDuration.observe(l, s),
    };
  }

  /** Registers a collect-time probe for the longest running processor. */
  trackLongestRunning(controller: string, probe: () => number): void {
    this.#probes.set(controller, probe);
    this.#longest.set({ name: controller, controller }, 0);
  }
}
