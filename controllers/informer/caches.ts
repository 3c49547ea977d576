import type { Sandbox } from '../../crds/sandbox.js';
import type { SandboxNode } from '../../crds/sandboxnode.js';
import type { Logger } from '../../lib/log.js';
import type { KubeClient } from '../../lib/kube/client.js';
import { NODE_LEASE_LABEL, paths, type KubeObject } from '../../lib/kube/resources.js';
import type { LeaseObject } from '../leaderelection/lease.js';
import { LeaseTracker } from '../nodes/health.js';
import { Informer } from './informer.js';

/** How long the caches may go without an answer from the API server before the replica reports not ready. */
const API_SERVER_SILENCE_LIMIT_MS = 3 * 60_000;

/**
 * The controller's view of the cluster: Sandboxes, SandboxNodes and the
 * agents' node Leases, each an informer, plus the Lease tracker that times
 * node health on our clock. They run in every replica, so a standby that
 * takes over has warm caches.
 */
export class ControllerCaches {
  readonly sandboxes: Informer<Sandbox>;
  readonly nodes: Informer<SandboxNode>;
  readonly nodeLeases: Informer<LeaseObject & KubeObject>;
  readonly leases = new LeaseTracker();

  constructor(
    client: KubeClient,
    opts: { namespace: string; relistMs: number; onRestart: (resource: string, reason: string) => void },
    log: Logger,
  ) {
    const common = { relistMs: opts.relistMs };
    this.sandboxes = new Informer(
      client,
      { path: paths.sandboxes(), onRestart: (r) => opts.onRestart('sandboxes', r), ...common },
      log,
    );
    this.nodes = new Informer(
      client,
      { path: paths.sandboxNodes(), onRestart: (r) => opts.onRestart('sandboxnodes', r), ...common },
      log,
    );
    // Node health must not age while the controller cannot see the leases (see LeaseTracker).
    this.nodeLeases = new Informer(
      client,
      {
        path: paths.leases(opts.namespace),
        labelSelector: NODE_LEASE_LABEL,
        onRestart: (reason) => {
          this.leases.blind();
          opts.onRestart('leases', reason);
        },
        onRelist: () => this.leases.seeing(),
        ...common,
      },
      log,
    );
    this.nodeLeases.on({
      upsert: (lease) => this.leases.observe(lease.metadata.name ?? '', lease.spec),
      deleted: () => undefined,
    });
    this.nodes.on({ upsert: () => undefined, deleted: (node) => this.leases.forget(node.metadata.name ?? '') });
  }

  get #all() {
    return [this.sandboxes, this.nodes, this.nodeLeases] as const;
  }

  start(): void {
    for (const inf of this.#all) inf.start();
  }

  async waitForSync(): Promise<void> {
    await Promise.all(this.#all.map((i) => i.waitForSync()));
  }

  async stop(): Promise<void> {
    await Promise.all(this.#all.map((i) => i.stop()));
  }

  /** Readiness `informers-synced`: why not yet, or undefined. */
  notSynced(): string | undefined {
    return this.#all.every((i) => i.synced) ? undefined : 'caches not synced yet';
  }

  /** Readiness `api-server-contact`: why the caches are stale, or undefined. */
  apiServerSilence(): string | undefined {
    const stale = Math.max(this.sandboxes.staleMs, this.nodes.staleMs);
    return stale > API_SERVER_SILENCE_LIMIT_MS
      ? `no answer from the API server for ${Math.round(stale / 1000)} s`
      : undefined;
  }
}
