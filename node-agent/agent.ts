import { Registry, collectDefaultMetrics } from 'prom-client';
import type { KubeClient } from '../lib/kube/client.js';
import { HealthServer } from '../lib/kube/health-server.js';
import type { Logger } from '../lib/log.js';
import { AgentCertificates, type CertificateSource } from './api/certificates.js';
import { AgentRouter } from './api/router.js';
import { MtlsServer } from './api/server.js';
import { runtimeBackend } from './api/streams/backend.js';
import { StreamRouter } from './api/streams/router.js';
import type { SandboxSupervisor } from './runtime/supervisor.js';
import type { SandboxRuntime } from './contracts.js';
import { allocatable, detectFacts } from './registration/facts.js';
import { PressureTracker, type Thresholds } from './registration/pressure.js';
import { takeReadings, type ReadingPaths } from './registration/readings.js';
import { NodeRegistration } from './registration/registration.js';
import { StatusReporter } from './status/reporter.js';
import { EventRecorder } from '../lib/kube/events.js';

export interface AgentConfig {
  node: string;
  namespace: string;
  listenHost: string;
  listenPort: number;
  /** Address the controller dials (the node IP); the endpoint is https://<advertise>:<port>. */
  advertiseAddress: string;
  healthHost: string;
  healthPort: number;
  leaseDurationSeconds: number;
  maxSandboxes: number;
  reserved: { milliCpu: number; memory: number };
  labels: Record<string, string>;
  /** Node pressure conditions: thresholds, how long one stays True after the pressure ends, what to read. */
  pressure?: { thresholds: Thresholds; transitionMs: number; paths: ReadingPaths };
  certificates: CertificateSource;
  version: string;
  sandboxCIDR?: string;
  statusIntervalMs: number;
}

const optional = <K extends string, V>(key: K, v: V | undefined) =>
  v === undefined ? {} : ({ [key]: v } as Record<K, V>);

/**
 * The node agent: the mTLS API the controller drives, the SandboxNode and
 * heartbeat Lease, and the status reporter, all over one SandboxRuntime
 * handed in at construction. The agent never owns sandboxes' lives: stopping
 * it stops serving and heartbeating, while sandboxes keep running and are
 * re-adopted by the next agent through the runtime.
 */
export class Agent {
  readonly health: HealthServer;
  readonly registry = new Registry();
  #server: MtlsServer | undefined;
  #streams: StreamRouter | undefined;
  #registration: NodeRegistration | undefined;
  #reporter: StatusReporter | undefined;
  #renewTimer: NodeJS.Timeout | undefined;
  endpoint = '';

  constructor(
    readonly runtime: SandboxRuntime,
    readonly client: KubeClient,
    readonly cfg: AgentConfig,
    readonly log: Logger,
  ) {
    collectDefaultMetrics({ register: this.registry });
    this.health = new HealthServer(this.registry);
  }

  async start(): Promise<void> {
    const { cfg, log } = this;
    const certs = new AgentCertificates(this.client, cfg.node, cfg.certificates, log);
    const tls = await certs.obtain();
    const router = new AgentRouter(this.runtime, cfg.node, log, (sbx) => this.#reporter?.know(sbx));
    this.#server = new MtlsServer(tls, (req, res) => router.handle(req, res), log);
    // Streams need the concrete runtime (exec, log files, cgroups); a runtime module without one answers 501.
    const concrete = (this.runtime as { runtime?: SandboxSupervisor }).runtime;
    this.#streams = new StreamRouter(
      concrete ? runtimeBackend(concrete) : undefined,
      log.child({ component: 'streams' }),
    );
    this.#server.onUpgrade((req, socket, head) => this.#streams!.upgrade(req, socket, head));
    const port = await this.#server.listen(cfg.listenHost, cfg.listenPort);
    const host = cfg.advertiseAddress.includes(':') ? `[${cfg.advertiseAddress}]` : cfg.advertiseAddress;
    this.endpoint = `https://${host}:${port}`;
    log.info({ endpoint: this.endpoint }, 'Agent API serving with mutual TLS');

    this.#renewTimer = setInterval(() => {
      if (!certs.dueForRenewal) return;
      certs
        .obtain()
        .then((fresh) => {
          this.#server?.setTLS(fresh);
          log.info('Rotated the agent serving certificate (no restart)');
        })
        .catch((err: Error) =>
          log.warn({ err: err.message }, 'Certificate renewal failed; the current one stays until the next try'),
        );
    }, 60_000);
    this.#renewTimer.unref();

    const facts = detectFacts(cfg.maxSandboxes);
    const pressure = cfg.pressure && new PressureTracker(cfg.pressure.thresholds, cfg.pressure.transitionMs);
    const paths = cfg.pressure?.paths;
    const pressureConditions =
      pressure && paths
        ? () =>
            pressure.conditions(
              takeReadings(paths, (what, err) =>
                log.warn(
                  { err: err.message, step: `read ${what}` },
                  'Node pressure reading failed; its condition is Unknown',
                ),
              ),
            )
        : undefined;
    this.#registration = new NodeRegistration(
      this.client,
      {
        node: cfg.node,
        namespace: cfg.namespace,
        leaseDurationSeconds: cfg.leaseDurationSeconds,
        labels: cfg.labels,
        statusIntervalMs: cfg.statusIntervalMs,
      },
      () => ({
        capacity: facts.capacity,
        allocatable: allocatable(facts.capacity, cfg.reserved),
        endpoint: this.endpoint,
        agentVersion: cfg.version,
        kernelVersion: facts.kernelVersion,
        cgroupMode: facts.cgroupMode,
        hostIP: cfg.advertiseAddress,
        sandboxes: this.runtime.list().length,
        ...optional('imageDiskUsageBytes', this.runtime.imageDiskUsageBytes?.()),
        ...(cfg.sandboxCIDR ? { sandboxCIDR: cfg.sandboxCIDR } : {}),
      }),
      log,
      pressureConditions,
    );
    // Heartbeat and Ready first: statuses reported while the controller still thinks the node is away
    // would be overwritten with Unknown.
    await this.#registration.start();
    // Events name the agent as kubelet's name the kubelet: reportingController plus the node as instance.
    this.#reporter = new StatusReporter(
      this.client,
      cfg.node,
      this.runtime,
      log,
      new EventRecorder(this.client, 'sandpit.dev/agent', cfg.node, log),
    );
    this.#reporter.start();

    this.health.addLiveness('ping', () => undefined);
    this.health.addReadiness('serving', () => (this.#server ? undefined : 'agent API not serving'));
    await this.health.listen(cfg.healthHost, cfg.healthPort);
  }

  /** Stops serving and heartbeating. Sandboxes are left running. */
  async stop(): Promise<void> {
    clearInterval(this.#renewTimer);
    this.#reporter?.stop();
    this.#registration?.stop();
    this.#streams?.close();
    await this.#server?.close();
    await this.health.close();
  }
}
