import type { Sandbox } from '../../crds/sandbox.js';
import {
  sandboxIdFor,
  type SandboxNotice,
  type SandboxObservation,
  type SandboxRef,
  type SandboxRuntime,
} from '../contracts.js';
import {
  classifyCreateFailure,
  creatingObservation,
  failureObservation,
  retryDelayMs,
  type CreateFailure,
} from '../status/failures.js';
import { DiskUsageCache } from './disk-usage.js';
import { identify, observe, refOf } from './observe.js';
import { sleepOrWake, type Pending } from './pending.js';
import { editInPlace } from './edit-in-place.js';
import { diffSpec } from './spec-diff.js';
import type { SandboxSupervisor } from './supervisor.js';
import type { SandboxRecord } from './record.js';

/*
 * The runtime as the agent API drives it (node-agent/contracts.ts): keyed by
 * Kubernetes UID, level-based. The same generation is a no-op; a new one
 * restarts the containers whose definition changed, recreates the sandbox
 * when the edit needs a new one (an Event names the fields: spec-diff.ts),
 * and freezes/thaws for `paused`.
 */

/** How long a failed pull reads ErrImagePull before ImagePullBackOff (the status writer holds a Pending write 1 s). */
const BACKOFF_SHOWN_AFTER_MS = 3_000;

export class RuntimeService implements SandboxRuntime {
  readonly runtime: SandboxSupervisor;
  readonly #listeners = new Set<(obs: SandboxObservation) => void>();
  readonly #noticeListeners = new Set<(ref: SandboxRef, notice: SandboxNotice) => void>();
  /** Sandboxes being removed: their containers' exits on the way out are not news for the cluster. */
  readonly #removing = new Set<string>();
  readonly #diskUsage: DiskUsageCache | undefined;
  /** Sandboxes accepted and not yet created: being created, backing off, or failed for good (until a new generation). */
  readonly #pending = new Map<string, Pending>();
  readonly #backoff: { initialMs: number; maxMs: number };

  constructor(
    runtime: SandboxSupervisor,
    imageStore?: { diskUsage(): { total: number } },
    opts: { retryBackoff?: { initialMs: number; maxMs: number } } = {},
  ) {
    this.runtime = runtime;
    this.#diskUsage = imageStore && new DiskUsageCache(imageStore);
    this.#backoff = opts.retryBackoff ?? { initialMs: 10_000, maxMs: 300_000 };
    runtime.subscribe((rec) => {
      if (rec.phase === 'Deleting' || this.#removing.has(rec.id)) return;
      this.#emit(observe(runtime, rec));
    });
  }

  /**
   * Accepts a Sandbox and answers at once with what the node has of it;
   * whatever takes time (removing the old generation, pulling, creating)
   * runs in the background (#work), with progress and failures reported
   * through onChange, as kubelet works a Pod. The same generation is a no-op;
   * a change of `paused` alone freezes or thaws on the spot.
   */
  async apply(sandbox: Sandbox): Promise<SandboxObservation> {
    const { uid, generation } = identify(sandbox);
    const id = sandboxIdFor(uid);
    const pending = this.#pending.get(id);
    if (pending) {
      if (identify(pending.sandbox).generation !== generation) {
        pending.sandbox = sandbox;
        pending.failures = 0;
        pending.obs = creatingObservation(refOf(sandbox), sandbox.spec, generation);
        if (!this.#editsInPlace(this.runtime.get(id), sandbox)) this.#emit(pending.obs);
        pending.wake();
        if (!pending.worker) this.#startWork(id, pending);
      }
      return this.get(uid)!;
    }
    const rec = this.runtime.get(id);
    if (rec && this.#converged(rec, sandbox)) {
      // The applied generation is news even when no runtime record changed with it (observedGeneration follows).
      const obs = observe(this.runtime, rec);
      this.#emit(obs);
      return obs;
    }
    const p: Pending = {
      sandbox,
      failures: 0,
      obs: creatingObservation(refOf(sandbox), sandbox.spec, generation),
      cancelled: false,
      wake: () => undefined,
    };
    // An edit the running sandbox takes in place (spec-diff.ts) keeps answering with that sandbox meanwhile.
    this.#pending.set(id, p);
    this.#startWork(id, p);
    return this.get(uid)!;
  }

  /**
   * Whether the record already is the sandbox asked for, after freezing or
   * thawing it when only `paused` differs (no recreate for that).
   */
  #converged(rec: SandboxRecord, sandbox: Sandbox): boolean {
    const { generation } = identify(sandbox);
    if ((rec.generation ?? 0) === generation) return true;
    const diff = diffSpec(rec.spec, sandbox.spec);
    if (diff.recreateReasons.length || diff.restartContainers.length) return false;
    // Fields read when they are used (restart policy, deadline, grace, pull secrets) take effect as they are.
    rec.spec = sandbox.spec;
    rec.generation = generation;
    if (diff.pauseChange !== undefined) this.runtime.pause(rec.id, diff.pauseChange);
    return true;
  }

  /** Whether the sandbox asked for is the running one with some containers restarted (no new sandbox). */
  #editsInPlace(rec: SandboxRecord | undefined, sandbox: Sandbox): boolean {
    return !!rec && rec.phase !== 'Deleting' && diffSpec(rec.spec, sandbox.spec).recreateReasons.length === 0;
  }

  #startWork(id: string, p: Pending): void {
    p.worker = this.#work(id, p).finally(() => {
      delete p.worker;
      if (this.#pending.get(id) === p && p.done) this.#pending.delete(id);
    });
  }

  /**
   * Drives one sandbox to its desired generation: removes an older one,
   * creates, and on failure reports it (status/failures.ts). What a retry may
   * fix is retried with kubelet's back-off (10 s doubling to 5 min; a pull
   * failure shows ImagePullBackOff while it waits); what cannot waits for a
   * new generation (apply wakes it) or a removal (cancelled). Every failed
   * attempt is torn down by the runtime: nothing is left on the node.
   */
  async #work(id: string, p: Pending): Promise<void> {
    while (!p.cancelled) {
      const want = p.sandbox;
      const { generation } = identify(want);
      const old = this.runtime.get(id);
      if (old && old.phase !== 'Deleting' && this.#converged(old, want)) {
        p.done = true;
        this.#emit(observe(this.runtime, old));
        return;
      }
      if (old && this.#editsInPlace(old, want)) {
        try {
          await editInPlace(this.runtime, old, want, (ref, notice) => this.#notice(ref, notice));
          if (p.cancelled || p.sandbox !== want) continue;
          p.done = true;
          this.#emit(observe(this.runtime, old));
          return;
        } catch (err) {
          // The old runs go on: say why the edit did not take, and retry what a retry may fix.
          const report = (failure: CreateFailure) =>
            this.#notice(old.ref, { type: 'Warning', reason: 'Failed', note: `${failure.reason}: ${failure.message}` });
          if (await this.#afterFailure(p, want, err, report)) continue;
          return;
        }
      }
      if (old) {
        const reasons = diffSpec(old.spec, want.spec).recreateReasons;
        if (old.phase !== 'Deleting')
          this.#notice(old.ref, {
            type: 'Normal',
            reason: 'SandboxChanged',
            note: `Sandbox spec changed (${reasons.join(', ')}), it will be killed and re-created`,
          });
        await this.#delete(id); // recreated below; the old generation's exits are not reported
      }
      if (p.cancelled) return;
      if (p.sandbox !== want) continue;
      try {
        const rec = await this.runtime.create(want);
        if (want.spec.paused) this.runtime.pause(id, true);
        if (p.cancelled || p.sandbox !== want) continue; // removed (remove() deletes it) or changed meanwhile (recreated)
        p.done = true;
        this.#emit(observe(this.runtime, rec));
        return;
      } catch (err) {
        const report = (failure: CreateFailure, opts?: { backingOff: true }) => {
          p.obs = failureObservation(refOf(want), want.spec, generation, failure, opts);
          this.#emit(p.obs);
        };
        // until a new generation (apply starts the work again) or a removal
        if (!(await this.#afterFailure(p, want, err, report, true))) return;
      }
    }
  }

  /**
   * After a failed attempt at `want`: reports it and waits out the back-off.
   * True when the work goes on (a retry, or a newer generation asked for
   * meanwhile); false when it stops (removed, or a failure no retry fixes).
   * With `showBackOff`, a pull failure reads ImagePullBackOff between
   * attempts, once ErrImagePull has had its own write.
   */
  async #afterFailure(
    p: Pending,
    want: Sandbox,
    err: unknown,
    report: (failure: CreateFailure, opts?: { backingOff: true }) => void,
    showBackOff = false,
  ): Promise<boolean> {
    if (p.cancelled) return false;
    if (p.sandbox !== want) return true;
    const failure = classifyCreateFailure(err);
    p.failures++;
    report(failure);
    if (!failure.retryable) return false;
    const delay = retryDelayMs(p.failures, this.#backoff.initialMs, this.#backoff.maxMs);
    const shown =
      showBackOff && failure.reason === 'ErrImagePull' ? Math.min(BACKOFF_SHOWN_AFTER_MS, delay / 2) : undefined;
    await sleepOrWake(p, delay, shown === undefined ? undefined : [shown, () => report(failure, { backingOff: true })]);
    return true;
  }

  #emit(obs: SandboxObservation): void {
    for (const fn of this.#listeners) fn(obs);
  }

  /** Cancels a pending create (waiting for one under way to end), then stops and removes everything of the sandbox. */
  async remove(uid: string): Promise<void> {
    const id = sandboxIdFor(uid);
    const p = this.#pending.get(id);
    if (p) {
      p.cancelled = true;
      p.wake();
      await p.worker;
      if (this.#pending.get(id) === p) this.#pending.delete(id);
    }
    await this.#delete(id);
  }

  async #delete(id: string): Promise<void> {
    this.#removing.add(id);
    try {
      await this.runtime.delete(id);
    } finally {
      this.#removing.delete(id);
    }
  }

  /**
   * A sandbox being deleted is already gone as far as the agent API is
   * concerned; one still to be created (or whose create failed) answers
   * with its pending observation.
   */
  get(uid: string): SandboxObservation | undefined {
    const id = sandboxIdFor(uid);
    const rec = this.runtime.get(id);
    const p = this.#pending.get(id);
    if (
      rec &&
      rec.phase !== 'Deleting' &&
      (!p || (rec.generation ?? 0) === identify(p.sandbox).generation || this.#editsInPlace(rec, p.sandbox))
    )
      return observe(this.runtime, rec);
    return p?.obs;
  }

  list(): SandboxObservation[] {
    const ids = new Set([
      ...this.runtime
        .list()
        .filter((r) => r.phase !== 'Deleting')
        .map((r) => r.id),
      ...this.#pending.keys(),
    ]);
    return [...ids].flatMap((id) => {
      const uid =
        this.runtime.get(id)?.ref.uid ?? (this.#pending.get(id) && identify(this.#pending.get(id)!.sandbox).uid);
      const obs = uid ? this.get(uid) : undefined;
      return obs ? [obs] : [];
    });
  }

  /** The image store's size, walked at most once a minute (the walk visits every unpacked file). */
  imageDiskUsageBytes(): number | undefined {
    return this.#diskUsage?.bytes();
  }

  onNotice(listener: (ref: SandboxRef, notice: SandboxNotice) => void): () => void {
    this.#noticeListeners.add(listener);
    return () => this.#noticeListeners.delete(listener);
  }

  #notice(ref: SandboxRef, notice: SandboxNotice): void {
    for (const fn of this.#noticeListeners) fn(ref, notice);
  }

  onChange(listener: (obs: SandboxObservation) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
