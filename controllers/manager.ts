import { hostname } from 'node:os';
import type { Sandbox } from '../crds/sandbox.js';
import type { SandboxNode } from '../crds/sandboxnode.js';
import type { Logger } from '../lib/log.js';
import { AgentClient } from './agentclient/client.js';
import { ApiError, type KubeClient } from '../lib/kube/client.js';
import { keyOf, NODE_LEASE_LABEL, paths, type KubeObject } from '../lib/kube/resources.js';
import { AgentCertificateSigner } from './certs/signer.js';
import { ClientCertificate, ensureCA, publishCABundle } from './certs/authority.js';
import { EventRecorder } from '../lib/kube/events.js';
import { HealthServer } from '../lib/kube/health-server.js';
import { Informer } from './informer/informer.js';
import { LeaderElector } from './leaderelection/lease.js';
import type { LeaseObject } from './leaderelection/lease.js';
import { ControllerMetrics } from './metrics/metrics.js';
import { LeaseTracker } from './nodes/health.js';
import { NodeMonitor } from './nodes/monitor.js';
import { WorkQueue } from './queue/queue.js';
import { AgentResync } from './reconcile/resync.js';
import { SandboxReconciler } from './reconcile/sandbox.js';
import { findCondition } from '../lib/kube/conditions.js';
import { StreamsServer } from './streams/server.js';

export const CONTROLLER_NAME = 'sandbox';

export interface ManagerConfig {
  namespace: string;
  identity: string;
  leaderElection: boolean;
  lease: { leaseDurationMs: number; renewDeadlineMs: number; retryPeriodMs: number };
  workers: number;
  nodeLostGraceMs: number;
  resyncMs: number;
  healthHost: string;
  healthPort: number;
  /** Provided certificates (files), or undefined to use the CA kept in a Secret. */
  tlsFiles?: { ca: string; cert: string; key: string };
  agentServiceAccount: string;
  certDays: number;
  relistMs: number;
  /** Where every replica serves the kubectl-sandpit streams (controllers/streams/); absent: not served. */
  streams?: { host: string; port: number };
}

export const defaultIdentity = () => `${hostname()}_${process.pid}`;

/**
 * Wires the controller: caches run in every replica (a standby is warm when
 * it takes over); the queue workers, the node monitor, the agent resync and
 * the certificate signer run only on the leader.
 */
export class Manager {
  readonly metrics = new ControllerMetrics();
  readonly health: HealthServer;
  readonly queue: WorkQueue;
  readonly sandboxes: Informer<Sandbox>;
  readonly nodes: Informer<SandboxNode>;
  readonly leaseInformer: Informer<LeaseObject & KubeObject>;
  readonly leases = new LeaseTracker();
  #elector: LeaderElector | undefined;
  #reconciler: SandboxReconciler | undefined;
  #agents: AgentClient | undefined;
  #stopping = false;
  #workers: Promise<void>[] = [];
  #background: { stop(): void }[] = [];
  #streams: StreamsServer | undefined;

  constructor(
    readonly client: KubeClient,
    readonly cfg: ManagerConfig,
    readonly log: Logger,
  ) {
    this.health = new HealthServer(this.metrics.registry);
    this.queue = new WorkQueue({ observer: this.metrics.queueObserver(CONTROLLER_NAME) });
    this.metrics.trackLongestRunning(CONTROLLER_NAME, () => this.queue.longestRunningSeconds());
    this.metrics.maxConcurrent.set({ controller: CONTROLLER_NAME }, cfg.workers);
    const restarts = (resource: string) => (reason: string) => {
      this.metrics.informerRestarts.inc({ resource });
      log.debug({ resource, reason }, 'Informer restarting');
    };
    const common = { relistMs: cfg.relistMs };
    this.sandboxes = new Informer(
      client,
      { path: paths.sandboxes(), onRestart: restarts('sandboxes'), ...common },
      log,
    );
    this.nodes = new Informer(
      client,
      { path: paths.sandboxNodes(), onRestart: restarts('sandboxnodes'), ...common },
      log,
    );
    // Node health must not age while the controller cannot see the leases (see LeaseTracker).
    const leaseRestarts = restarts('leases');
    this.leaseInformer = new Informer(
      client,
      {
        path: paths.leases(cfg.namespace),
        labelSelector: NODE_LEASE_LABEL,
        onRestart: (reason) => {
          this.leases.blind();
          leaseRestarts(reason);
        },
        onRelist: () => this.leases.seeing(),
        ...common,
      },
      log,
    );
  }

  async start(): Promise<void> {
    const { cfg, log } = this;
    this.#wireHandlers();
    for (const inf of [this.sandboxes, this.nodes, this.leaseInformer]) inf.start();
    this.health.addLiveness('ping', () => undefined);
    this.health.addReadiness('informers-synced', () =>
      [this.sandboxes, this.nodes, this.leaseInformer].every((i) => i.synced) ? undefined : 'caches not synced yet',
    );
    const staleLimit = 3 * 60_000;
    this.health.addReadiness('api-server-contact', () => {
      const stale = Math.max(this.sandboxes.staleMs, this.nodes.staleMs);
      return stale > staleLimit ? `no answer from the API server for ${Math.round(stale / 1000)} s` : undefined;
    });
    const port = await this.health.listen(cfg.healthHost, cfg.healthPort);
    log.info({ port }, 'Serving /healthz, /readyz and /metrics');
    if (cfg.streams) await this.#serveStreams(cfg.streams);

    if (!cfg.leaderElection) return this.#lead();
    this.#elector = new LeaderElector(
      this.client,
      { namespace: cfg.namespace, name: 'sandpit-controller', identity: cfg.identity, ...cfg.lease },
      log,
    );
    this.metrics.leaderStatus.set({ name: 'sandpit-controller' }, 0);
    void this.#elector.run({
      onStarted: () => {
        this.metrics.leaderStatus.set({ name: 'sandpit-controller' }, 1);
        this.#lead().catch((err: Error) => {
          log.fatal({ err: err.message }, 'Could not start leading; exiting so another replica takes over');
          process.exit(1);
        });
      },
      onStopped: () => {
        this.metrics.leaderStatus.set({ name: 'sandpit-controller' }, 0);
        log.fatal('Lost leadership; exiting so that no two replicas ever write at once');
        process.exit(1);
      },
    });
  }

  /** Streams are served by every replica, leader or not: they only read the caches and dial agents. */
  async #serveStreams(addr: { host: string; port: number }): Promise<void> {
    const { cfg, client, log } = this;
    const certificate = cfg.tlsFiles
      ? new ClientCertificate({ files: cfg.tlsFiles })
      : new ClientCertificate({ ca: await ensureCA(client, cfg.namespace, log), days: cfg.certDays });
    this.#streams = new StreamsServer({
      client,
      sandbox: (key) => this.sandboxes.get(key),
      node: (name) => this.nodes.get(name),
      certificate,
      log: log.child({ component: 'streams' }),
    });
    const port = await this.#streams.listen(addr.host, addr.port, cfg.namespace);
    log.info({ host: addr.host, port }, 'Serving kubectl-sandpit streams');
  }

  get isLeader(): boolean {
    return this.#elector ? this.#elector.isLeader : !this.#stopping;
  }

  async #lead(): Promise<void> {
    const { cfg, log, client } = this;
    let certificate: ClientCertificate;
    if (cfg.tlsFiles) {
      certificate = new ClientCertificate({ files: cfg.tlsFiles });
    } else {
      const ca = await ensureCA(client, cfg.namespace, log);
      await publishCABundle(client, cfg.namespace, ca.cert);
      certificate = new ClientCertificate({ ca, days: cfg.certDays });
      const signer = new AgentCertificateSigner(client, ca, cfg.agentServiceAccount, cfg.certDays, log);
      signer.start();
      this.#background.push(signer);
    }
    await certificate.get(); // issue it now, not on the first sandbox's critical path
    this.#agents = new AgentClient(certificate);
    const events = new EventRecorder(client, 'sandpit.dev/controller', cfg.identity, log);
    this.#reconciler = new SandboxReconciler({
      client,
      agents: this.#agents,
      sandboxes: this.sandboxes,
      nodes: this.nodes,
      leases: this.leases,
      events,
      log,
      nodeLostGraceMs: cfg.nodeLostGraceMs,
      onBound: (s) => {
        const created = Date.parse(s.metadata.creationTimestamp ?? '');
        if (created) this.metrics.scheduleToBoundSeconds.observe((Date.now() - created) / 1000);
      },
    });
    await Promise.all([this.sandboxes.waitForSync(), this.nodes.waitForSync(), this.leaseInformer.waitForSync()]);
    const monitor = new NodeMonitor(client, this.nodes, this.leases, cfg.nodeLostGraceMs, events, log, (node) =>
      this.#enqueueNode(node),
    );
    monitor.start();
    const resync = new AgentResync(this.#agents, this.sandboxes, this.nodes, this.#reconciler, log, (k) =>
      this.queue.add(k),
    );
    resync.start(cfg.resyncMs);
    this.#background.push(monitor, resync);
    for (const s of this.sandboxes.list()) this.queue.add(keyOf(s));
    for (let i = 0; i < cfg.workers; i++) this.#workers.push(this.#work());
    log.info({ workers: cfg.workers }, 'Started reconciling sandboxes');
  }

  #wireHandlers(): void {
    this.sandboxes.on({
      upsert: (obj, old) => {
        const key = keyOf(obj);
        this.#observeReady(obj, old);
        if (old && this.#reconciler?.isOwnContinuedWrite(obj)) return;
        if (!old || old.metadata.resourceVersion === obj.metadata.resourceVersion || specOrLifecycleChanged(old, obj))
          this.queue.add(key);
      },
      deleted: (obj) => this.#reconciler?.forget(obj.metadata.uid ?? ''),
    });
    this.nodes.on({
      upsert: (node, old) => {
        // Only the sandboxes still waiting for a node care that one's count of sandboxes moved (room may have been freed).
        const waitingOnly =
          old !== undefined &&
          old.metadata.resourceVersion !== node.metadata.resourceVersion &&
          !nodeChangeMatters(old, node);
        this.#enqueueNode(node.metadata.name ?? '', waitingOnly);
      },
      deleted: (node) => {
        this.leases.forget(node.metadata.name ?? '');
        this.#enqueueNode(node.metadata.name ?? '');
      },
    });
    this.leaseInformer.on({
      upsert: (lease) => this.leases.observe(lease.metadata.name ?? '', lease.spec),
      deleted: () => undefined,
    });
  }

  /** Wakes the sandboxes a node change can matter to: those still waiting for a node, and (unless `waitingOnly`) those on it. */
  #enqueueNode(node: string, waitingOnly = false): void {
    for (const s of this.sandboxes.list()) {
      if (!s.status?.nodeName || (!waitingOnly && s.status.nodeName === node)) this.queue.add(keyOf(s));
    }
  }

  #observeReady(obj: Sandbox, old: Sandbox | undefined): void {
    const now = findCondition(obj.status?.conditions, 'Ready')?.status === 'True';
    const before = findCondition(old?.status?.conditions, 'Ready')?.status === 'True';
    const created = Date.parse(obj.metadata.creationTimestamp ?? '');
    if (now && !before && old && created && obj.metadata.generation === 1)
      this.metrics.applyToReadySeconds.observe((Date.now() - created) / 1000);
  }

  async #work(): Promise<void> {
    const labels = { controller: CONTROLLER_NAME };
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      this.metrics.activeWorkers.inc(labels);
      const end = this.metrics.reconcileTime.startTimer(labels);
      try {
        const result = await this.#reconciler!.reconcile(key);
        this.queue.forget(key);
        if (result.requeueAfterMs !== undefined) {
          this.queue.addAfter(key, result.requeueAfterMs);
          this.metrics.reconcileTotal.inc({ ...labels, result: result.requeueAfterMs ? 'requeue_after' : 'requeue' });
        } else {
          this.metrics.reconcileTotal.inc({ ...labels, result: 'success' });
        }
      } catch (err) {
        this.metrics.reconcileTotal.inc({ ...labels, result: 'error' });
        this.metrics.reconcileErrors.inc(labels);
        const conflict = err instanceof ApiError && err.status === 409;
        const log = conflict ? this.log.debug.bind(this.log) : this.log.warn.bind(this.log);
        log(
          { sandbox: key, err: (err as Error).message, retries: this.queue.failures(key) },
          conflict ? 'Stale cache; retrying' : 'Reconcile failed; retrying with back-off',
        );
        this.queue.addRateLimited(key);
      } finally {
        end();
        this.metrics.activeWorkers.dec(labels);
        this.queue.done(key);
      }
    }
  }

  /** Graceful stop: no new work, in-flight reconciles finish (bounded), the lease is released for a fast handover. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.queue.shutdown();
    for (const b of this.#background) b.stop();
    await Promise.race([Promise.all(this.#workers), new Promise((r) => setTimeout(r, 10_000))]);
    await this.#elector?.release();
    await Promise.all([this.sandboxes.stop(), this.nodes.stop(), this.leaseInformer.stop()]);
    this.#agents?.close();
    await this.#streams?.close();
    await this.health.close();
    this.client.close();
  }
}

/**
 * Whether a SandboxNode change can matter to the sandboxes bound to it. The
 * agent rewrites its status when the count of sandboxes it runs or its image
 * disk usage moves, which during a burst of starts is every status interval;
 * neither changes anything for a bound sandbox, and waking every sandbox of
 * the node for it was one no-op reconcile per sandbox each time.
 */
function nodeChangeMatters(old: SandboxNode, node: SandboxNode): boolean {
  const decisive = (n: SandboxNode) => {
    const { sandboxes: _count, imageDiskUsageBytes: _disk, ...status } = n.status ?? {};
    return JSON.stringify([n.metadata.labels, n.metadata.deletionTimestamp, n.spec, status]);
  };
  return decisive(old) !== decisive(node);
}

/** Status-only writes (the agent reporting) do not need a reconcile; spec, deletion, finalizers and binding do. */
function specOrLifecycleChanged(old: Sandbox, obj: Sandbox): boolean {
  return (
    old.metadata.generation !== obj.metadata.generation ||
    old.metadata.deletionTimestamp !== obj.metadata.deletionTimestamp ||
    JSON.stringify(old.metadata.finalizers) !== JSON.stringify(obj.metadata.finalizers) ||
    old.status?.nodeName !== obj.status?.nodeName ||
    old.status?.phase !== obj.status?.phase
  );
}
