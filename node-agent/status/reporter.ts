import { API_VERSION } from '../../crds/common.js';
import type { Sandbox } from '../../crds/sandbox.js';
import { isConflict, isNotFound, type KubeClient } from '../../lib/kube/client.js';
import { paths } from '../../lib/kube/resources.js';
import { SandpitError } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import { describeSandbox, type SandboxObservation, type SandboxRuntime } from '../contracts.js';
import type { EventRecorder } from '../../lib/kube/events.js';
import { desiredStatusPatch, givenUp } from '../../protocol/status-patch.js';
import { statusEvents } from './events.js';

const MAX_CONFLICT_RETRIES = 5;
/**
 * Every how many periodic re-reports each Sandbox is read back from the API
 * server; the others compare with what our last write returned. A write from
 * a stale object fails with a conflict and rereads, so someone else's change
 * is still found at the next write; only a sandbox with nothing new to write
 * waits this many rounds for it. Reading every sandbox every round was one
 * GET per sandbox per minute, for as long as it runs.
 */
const VERIFY_EVERY = 5;
/**
 * How long the progress of a sandbox still being created (phase Pending) is
 * held back: a create that finishes sooner is written once, as Running,
 * instead of two or three times on the way (the controller has already said
 * Creating when it bound the sandbox); a slow one (a long image pull) still
 * shows its progress after this long. Ready is never delayed.
 */
const PENDING_HOLD_MS = 1_000;

/**
 * Writes what the runtime observes into each Sandbox's status subresource.
 * Level-based: only the latest observation per sandbox is written (bursts
 * coalesce), nothing is written when the status already says it, a conflict
 * rereads and retries, and every sandbox is re-reported periodically (read
 * back from the API server every VERIFY_EVERY rounds) and at start-up, so a
 * restarted agent or a missed write heals itself.
 */
export class StatusReporter {
  readonly #pending = new Map<string, SandboxObservation>();
  readonly #inFlight = new Set<string>();
  /** The Sandbox as our last write left it, so the next write needs no GET; dropped on conflict and every VERIFY_EVERY resyncs. */
  readonly #known = new Map<string, Sandbox>();
  readonly #held = new Map<string, NodeJS.Timeout>();
  /** Sandboxes queued by the periodic re-report, which also writes a usage that moved (event-driven writes do not). */
  readonly #refresh = new Set<string>();
  #unsubscribe: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #idle: (() => void)[] = [];
  #rounds = 0;

  constructor(
    readonly client: KubeClient,
    readonly node: string,
    readonly runtime: SandboxRuntime,
    readonly log: Logger,
    /** Records what each write changed (Started, BackOff, OOMKilled, ...) as Events; none without it. */
    readonly events?: EventRecorder,
  ) {}

  start(resyncMs = 60_000): void {
    const offChange = this.runtime.onChange((obs) => this.report(obs));
    // What no status write shows (a container restarted for its new definition, a sandbox recreated for an edit).
    const events = this.events;
    const offNotice = events
      ? this.runtime.onNotice?.((ref, n) =>
          events.record(
            {
              apiVersion: API_VERSION,
              kind: 'Sandbox',
              metadata: { namespace: ref.namespace, name: ref.name, uid: ref.uid },
            },
            n.type,
            n.reason,
            n.note,
          ),
        )
      : undefined;
    this.#unsubscribe = () => {
      offChange();
      offNotice?.();
    };
    this.reportAll();
    this.#timer = setInterval(() => this.reportAll(), resyncMs);
    this.#timer.unref();
  }

  stop(): void {
    this.#unsubscribe?.();
    clearInterval(this.#timer);
    for (const t of this.#held.values()) clearTimeout(t);
    this.#held.clear();
  }

  /**
   * Takes a Sandbox the controller handed over (it sends the object as its
   * binding left it) as what the API server holds, so the first status write
   * needs no GET. Only when nothing newer is known: one that went stale
   * meanwhile costs a conflict, a read and a retry, as before.
   */
  know(sbx: Sandbox): void {
    const uid = sbx.metadata.uid;
    if (!uid || !sbx.metadata.resourceVersion || sbx.status?.nodeName !== this.node || this.#known.has(uid)) return;
    this.#known.set(uid, sbx);
  }

  reportAll(): void {
    // Now and then the periodic re-report compares with what the API server holds, not with our memory.
    if (this.#rounds++ % VERIFY_EVERY === 0) this.#known.clear();
    this.#refresh.clear();
    for (const obs of this.runtime.list()) {
      this.#refresh.add(obs.ref.uid);
      this.report(obs);
    }
  }

  report(obs: SandboxObservation): void {
    const uid = obs.ref.uid;
    this.#pending.set(uid, obs);
    if (this.#inFlight.has(uid)) return; // the running drain picks it up
    if (obs.status.phase === 'Pending') {
      if (!this.#held.has(uid)) {
        const t = setTimeout(() => {
          this.#held.delete(uid);
          if (this.#pending.has(uid) && !this.#inFlight.has(uid)) void this.#drain(uid);
        }, PENDING_HOLD_MS);
        t.unref();
        this.#held.set(uid, t);
      }
      return;
    }
    clearTimeout(this.#held.get(uid));
    this.#held.delete(uid);
    void this.#drain(uid);
  }

  /** Resolves once no write is pending or in flight (used by shutdown and tests). */
  settled(): Promise<void> {
    if (this.#pending.size === 0 && this.#inFlight.size === 0) return Promise.resolve();
    return new Promise((r) => this.#idle.push(r));
  }

  async #drain(uid: string): Promise<void> {
    this.#inFlight.add(uid);
    try {
      for (let obs = this.#pending.get(uid); obs; obs = this.#pending.get(uid)) {
        this.#pending.delete(uid);
        const usage = this.#refresh.delete(uid);
        await this.write(obs, usage).catch((err: Error) =>
          this.log.warn(
            { sandbox: describeSandbox(obs!.ref), step: 'write status', err: err.message },
            'Status write failed; the next report retries',
          ),
        );
      }
    } finally {
      this.#inFlight.delete(uid);
      if (this.#pending.size === 0 && this.#inFlight.size === 0) for (const r of this.#idle.splice(0)) r();
    }
  }

  /**
   * Writes one observation; returns whether a write happened. `usage`: whether
   * a usage that moved is reason enough to write (the periodic re-report); on
   * the way to Running it was a second write a few ms after the first.
   */
  write(obs: SandboxObservation, usage = true): Promise<boolean> {
    const events = this.events;
    const onWritten = events
      ? (before: Sandbox, after: Sandbox) => {
          for (const e of statusEvents(before.status, after.status ?? {}))
            events.record(after, e.type, e.reason, e.note);
        }
      : undefined;
    return writeSandboxStatus(this.client, this.node, obs, this.#known, { usage, onWritten });
  }
}

/**
 * Writes one observation into the Sandbox status, guarded by resourceVersion
 * and retried on conflict; returns whether a write happened. It never writes
 * a sandbox bound to another node (the admission policy would refuse anyway).
 * With `known`, the object our previous write returned stands in for a GET
 * (a sandbox's start is several writes in a row); a conflict rereads it.
 */
export async function writeSandboxStatus(
  client: KubeClient,
  node: string,
  obs: SandboxObservation,
  known?: Map<string, Sandbox>,
  opts: { usage?: boolean; onWritten?: (before: Sandbox, after: Sandbox) => void } = {},
): Promise<boolean> {
  const { namespace, name, uid } = obs.ref;
  for (let attempt = 0; ; attempt++) {
    let sbx = attempt === 0 ? known?.get(uid) : undefined;
    if (!sbx) {
      try {
        sbx = await client.get<Sandbox>(paths.sandbox(namespace, name));
      } catch (err) {
        if (isNotFound(err)) return forget(known, uid); // deleted; the controller's resync removes it from the node
        throw err;
      }
    }
    if (sbx.metadata.uid !== uid) return forget(known, uid); // same name, another sandbox
    const bound = sbx.status?.nodeName;
    if (bound && bound !== node) return forget(known, uid);
    if (givenUp(sbx.status)) return forget(known, uid);
    const patch = desiredStatusPatch(sbx, obs, node, opts);
    if (!patch) {
      known?.set(uid, sbx); // what we read stands in for the next read, as a write's answer does
      return false;
    }
    try {
      const written = await client.patch<Sandbox>(paths.sandboxStatus(namespace, name), {
        metadata: { resourceVersion: sbx.metadata.resourceVersion },
        status: patch,
      });
      known?.set(uid, written);
      opts.onWritten?.(sbx, written);
      return true;
    } catch (err) {
      known?.delete(uid);
      if (isNotFound(err)) return false; // deleted between our read and our write
      if (isConflict(err) && attempt < MAX_CONFLICT_RETRIES) continue;
      throw new SandpitError({
        step: 'write status',
        sandbox: describeSandbox(obs.ref),
        message: (err as Error).message,
        hint: 'check the agent RBAC and the sandpit admission policy',
        cause: err,
      });
    }
  }
}

function forget(known: Map<string, Sandbox> | undefined, uid: string): false {
  known?.delete(uid);
  return false;
}
