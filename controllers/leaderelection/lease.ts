import type { Logger } from '../../lib/log.js';
import { isConflict, isNotFound, type KubeClient } from '../../lib/kube/client.js';
import { paths } from '../../lib/kube/resources.js';

export interface LeaseObject {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: {
    holderIdentity?: string | null;
    leaseDurationSeconds?: number;
    acquireTime?: string | null;
    renewTime?: string | null;
    leaseTransitions?: number;
  };
}

export interface LeaderElectionConfig {
  namespace: string;
  name: string;
  identity: string;
  /** How long a non-renewed lease stays valid for others. */
  leaseDurationMs: number;
  /** The leader gives up if it could not renew for this long (must be < leaseDuration). */
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

/** client-go's (and controller-runtime's) defaults: 15 s / 10 s / 2 s. */
export const DEFAULT_TIMINGS = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

/** MicroTime, the format Lease times are in. */
const microTime = (d = new Date()) => d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

/**
 * Lease-based leader election with client-go's semantics: a candidate takes
 * the lease only after it has watched the holder's record stay unchanged for
 * a whole lease duration on its own clock (so clock skew between replicas
 * does not matter), every write is guarded by resourceVersion, and a leader
 * that cannot renew within the renew deadline steps down. release() empties
 * the holder on shutdown so the standby takes over at its next retry instead
 * of waiting out the lease.
 */
export class LeaderElector {
  readonly #client: KubeClient;
  readonly #cfg: LeaderElectionConfig;
  readonly #log: Logger;
  #observed: { record: string; at: number } | undefined;
  #leading = false;
  #stopped = false;
  #lastRenew = 0;
  #lease: LeaseObject | undefined;

  constructor(client: KubeClient, cfg: LeaderElectionConfig, log: Logger) {
    this.#client = client;
    this.#cfg = cfg;
    this.#log = log.child({ lease: `${cfg.namespace}/${cfg.name}`, identity: cfg.identity });
  }

  get isLeader(): boolean {
    return this.#leading;
  }

  /**
   * Runs until stop(): calls onStarted when leadership is won and onStopped
   * when it is lost. A lost leader must stop all work at once — the caller
   * exits the process, as controller-runtime does, so no half-stopped
   * controller keeps writing.
   */
  async run(callbacks: { onStarted: () => void; onStopped: () => void }): Promise<void> {
    while (!this.#stopped) {
      const ok = await this.#tryAcquireOrRenew().catch((err: Error) => {
        this.#log.warn({ err: err.message }, 'Lease update failed');
        return false;
      });
      if (ok && !this.#leading) {
        this.#leading = true;
        this.#log.info('Became leader');
        callbacks.onStarted();
      }
      if (this.#leading && !ok && Date.now() - this.#lastRenew > this.#cfg.renewDeadlineMs) {
        this.#leading = false;
        this.#log.error(
          { renewDeadlineMs: this.#cfg.renewDeadlineMs },
          'Lost leadership: could not renew the lease within the renew deadline',
        );
        callbacks.onStopped();
        return;
      }
      await new Promise((r) =>
        setTimeout(r, this.#cfg.retryPeriodMs * (this.#leading ? 1 : 0.8 + Math.random() * 0.4)),
      );
    }
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const now = new Date();
    const spec = (transitions: number, acquire: string | null | undefined): LeaseObject['spec'] => ({
      holderIdentity: this.#cfg.identity,
      leaseDurationSeconds: Math.ceil(this.#cfg.leaseDurationMs / 1000),
      acquireTime: acquire ?? microTime(now),
      renewTime: microTime(now),
      leaseTransitions: transitions,
    });
    let lease: LeaseObject;
    try {
      lease = await this.#client.get<LeaseObject>(paths.lease(this.#cfg.namespace, this.#cfg.name));
    } catch (err) {
      if (!isNotFound(err)) throw err;
      const created = await this.#client.create<LeaseObject>(paths.leases(this.#cfg.namespace), {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: this.#cfg.name, namespace: this.#cfg.namespace },
        spec: spec(0, undefined),
      });
      this.#accepted(created);
      return true;
    }
    const s = lease.spec;
    const record = JSON.stringify([s.holderIdentity, s.renewTime, s.leaseDurationSeconds]);
    if (this.#observed?.record !== record) this.#observed = { record, at: Date.now() };
    const holder = s.holderIdentity ?? '';
    const mine = holder === this.#cfg.identity;
    const expired = Date.now() - this.#observed.at > (s.leaseDurationSeconds ?? 15) * 1000;
    if (!mine && holder !== '' && !expired) return false;
    const next: LeaseObject = {
      ...lease,
      spec: spec((s.leaseTransitions ?? 0) + (mine ? 0 : 1), mine ? s.acquireTime : undefined),
    };
    try {
      this.#accepted(await this.#client.replace<LeaseObject>(paths.lease(this.#cfg.namespace, this.#cfg.name), next));
      return true;
    } catch (err) {
      if (isConflict(err)) return false; // someone else wrote first; look again next period
      throw err;
    }
  }

  #accepted(lease: LeaseObject): void {
    this.#lease = lease;
    this.#lastRenew = Date.now();
    const s = lease.spec;
    this.#observed = {
      record: JSON.stringify([s.holderIdentity, s.renewTime, s.leaseDurationSeconds]),
      at: Date.now(),
    };
  }

  /** Stops campaigning; if leading, empties the holder so a standby takes over at once. */
  async release(): Promise<void> {
    this.#stopped = true;
    if (!this.#leading || !this.#lease) return;
    this.#leading = false;
    const lease = this.#lease;
    try {
      await this.#client.replace(paths.lease(this.#cfg.namespace, this.#cfg.name), {
        ...lease,
        spec: {
          ...lease.spec,
          holderIdentity: null,
          leaseDurationSeconds: 1,
          renewTime: microTime(),
          acquireTime: null,
        },
      });
      this.#log.info('Released the lease');
    } catch (err) {
      this.#log.warn(
        { err: (err as Error).message },
        'Could not release the lease; the standby takes over once it expires',
      );
    }
  }
}
