import { hostname } from 'node:os';
import type { Logger } from '../lib/log.js';
import type { KubeClient } from '../lib/kube/client.js';
import { keyOf } from '../lib/kube/resources.js';
import { EventRecorder } from '../lib/kube/events.js';
import { HealthServer } from '../lib/kube/health-server.js';
import { AgentClient } from './agentclient/client.js';
import { AgentCertificateSigner } from './certs/signer.js';
import { ClientCertificate, ensureCA, publishCABundle } from './certs/authority.js';
import { ControllerCaches } from './informer/caches.js';
import { LeaderElector } from './leaderelection/lease.js';
import { ControllerMetrics } from './metrics/metrics.js';
import { applyToReadySeconds, scheduleSeconds } from './metrics/sandbox-timings.js';
import { NodeMonitor } from './nodes/monitor.js';
import { WorkQueue } from './queue/queue.js';
import { runWorker } from './queue/worker.js';
import { AgentResync } from './reconcile/resync.js';
import { SandboxReconciler } from './reconcile/sandbox.js';
import { queueOnChanges } from './reconcile/triggers.js';
import { StreamsServer } from './streams/server.js';

const CONTROLLER_NAME = 'sandbox';
const LEASE_NAME = 'sandpit-controller';

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
 * it takes over), and so do the health server and the streams; the queue
 * workers, the node monitor, the agent resync and the certificate signer run
 * only on the leader.
 */
export class Manager {
  readonly metrics = new ControllerMetrics();
  readonly health: HealthServer;
  readonly queue: WorkQueue;
  readonly caches: ControllerCaches;
  #elector: LeaderElector | undefined;
  #reconciler: SandboxReconciler | undefined;
  #agents: AgentClient | undefined;
  #enqueueNode: (node: string) => void = () => undefined;
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
    const onRestart = (resource: string, reason: string) => {
      this.metrics.informerRestarts.inc({ resource });
      log.debug({ resource, reason }, 'Informer restarting');
    };
    this.caches = new ControllerCaches(client, { namespace: cfg.namespace, relistMs: cfg.relistMs, onRestart }, log);
  }

  async start(): Promise<void> {
    const { cfg, log, caches } = this;
    ({ enqueueNode: this.#enqueueNode } = queueOnChanges(
      caches,
      this.queue,
      () => this.#reconciler,
      (obj, old) => {
        const seconds = applyToReadySeconds(obj, old);
        if (seconds !== undefined) this.metrics.applyToReadySeconds.observe(seconds);
      },
    ));
    caches.start();
    this.health.addLiveness('ping', () => undefined);
    this.health.addReadiness('informers-synced', () => caches.notSynced());
    this.health.addReadiness('api-server-contact', () => caches.apiServerSilence());
    const port = await this.health.listen(cfg.healthHost, cfg.healthPort);
    log.info({ port }, 'Serving /healthz, /readyz and /metrics');
    if (cfg.streams) await this.#serveStreams(cfg.streams);
    if (cfg.leaderElection) this.#elect();
    else await this.#lead();
  }

  /**
   * Leads while holding the Lease. Losing it ends the process: its workers
   * could otherwise still be writing while the next leader starts, and a
   * fresh process is the one way to be sure nothing of this term goes on.
   */
  #elect(): void {
    const { cfg, log } = this;
    this.#elector = new LeaderElector(
      this.client,
      { namespace: cfg.namespace, name: LEASE_NAME, identity: cfg.identity, ...cfg.lease },
      log,
    );
    this.metrics.leaderStatus.set({ name: LEASE_NAME }, 0);
    void this.#elector.run({
      onStarted: () => {
        this.metrics.leaderStatus.set({ name: LEASE_NAME }, 1);
        this.#lead().catch((err: Error) => {
          log.fatal({ err: err.message }, 'Could not start leading; exiting so another replica takes over');
          process.exit(1);
        });
      },
      onStopped: () => {
        this.metrics.leaderStatus.set({ name: LEASE_NAME }, 0);
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
      sandbox: (key) => this.caches.sandboxes.get(key),
      node: (name) => this.caches.nodes.get(name),
      certificate,
      log: log.child({ component: 'streams' }),
    });
    const port = await this.#streams.listen(addr.host, addr.port, cfg.namespace);
    log.info({ host: addr.host, port }, 'Serving kubectl-sandpit streams');
  }

  /** The leader's client certificate for the agents; with the CA kept in a Secret, also the bundle and the CSR signer. */
  async #leaderCertificate(): Promise<ClientCertificate> {
    const { cfg, log, client } = this;
    if (cfg.tlsFiles) return new ClientCertificate({ files: cfg.tlsFiles });
    const ca = await ensureCA(client, cfg.namespace, log);
    await publishCABundle(client, cfg.namespace, ca.cert);
    const signer = new AgentCertificateSigner(client, ca, cfg.agentServiceAccount, cfg.certDays, log);
    signer.start();
    this.#background.push(signer);
    return new ClientCertificate({ ca, days: cfg.certDays });
  }

  async #lead(): Promise<void> {
    const { cfg, log, client, caches } = this;
    const certificate = await this.#leaderCertificate();
    await certificate.get(); // issue it now, not on the first sandbox's critical path
    const agents = (this.#agents = new AgentClient(certificate));
    const events = new EventRecorder(client, 'sandpit.dev/controller', cfg.identity, log);
    const reconciler = (this.#reconciler = new SandboxReconciler({
      client,
      agents,
      sandboxes: caches.sandboxes,
      nodes: caches.nodes,
      leases: caches.leases,
      events,
      log,
      nodeLostGraceMs: cfg.nodeLostGraceMs,
      onBound: (s) => {
        const seconds = scheduleSeconds(s);
        if (seconds !== undefined) this.metrics.scheduleToBoundSeconds.observe(seconds);
      },
    }));
    await caches.waitForSync();
    const monitor = new NodeMonitor(client, caches.nodes, caches.leases, cfg.nodeLostGraceMs, events, log, (node) =>
      this.#enqueueNode(node),
    );
    monitor.start();
    const resync = new AgentResync(agents, caches.sandboxes, caches.nodes, reconciler, log, (k) => this.queue.add(k));
    resync.start(cfg.resyncMs);
    this.#background.push(monitor, resync);
    for (const s of caches.sandboxes.list()) this.queue.add(keyOf(s));
    for (let i = 0; i < cfg.workers; i++)
      this.#workers.push(runWorker(CONTROLLER_NAME, this.queue, (key) => reconciler.reconcile(key), this.metrics, log));
    log.info({ workers: cfg.workers }, 'Started reconciling sandboxes');
  }

  /** Graceful stop: no new work, in-flight reconciles finish (bounded), the lease is released for a fast handover. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.queue.shutdown();
    for (const b of this.#background) b.stop();
    await Promise.race([Promise.all(this.#workers), new Promise((r) => setTimeout(r, 10_000))]);
    await this.#elector?.release();
    await this.caches.stop();
    this.#agents?.close();
    await this.#streams?.close();
    await this.health.close();
    this.client.close();
  }
}
