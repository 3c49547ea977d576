import { randomBytes } from 'node:crypto';
import type { Logger } from '../../lib/log.js';
import type { KubeClient } from './client.js';
import { paths } from './resources.js';

export interface EventTarget {
  apiVersion: string;
  kind: string;
  metadata: { name?: string; namespace?: string; uid?: string; resourceVersion?: string };
}

interface Recent {
  name: string;
  count: number;
  at: number;
}

const microTime = () => new Date().toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
/** Events repeated within this window become a series on the first event instead of new objects. */
const SERIES_WINDOW_MS = 10 * 60_000;

/**
 * Writes events.k8s.io/v1 Events for transitions (Scheduled, FailedScheduling,
 * NodeLost, ...), so `kubectl describe sbx` and `kubectl events` tell the
 * story. A repeat of the same reason and note becomes a series count on the
 * existing Event. Recording is best effort: a failed Event never fails a reconcile.
 */
export class EventRecorder {
  readonly #recent = new Map<string, Recent>();

  constructor(
    readonly client: KubeClient,
    readonly controller: string,
    readonly instance: string,
    readonly log: Logger,
  ) {}

  record(target: EventTarget, type: 'Normal' | 'Warning', reason: string, note: string, action = reason): void {
    void this.#write(target, type, reason, note, action).catch((err: Error) =>
      this.log.debug({ err: err.message, reason }, 'Could not record an Event'),
    );
  }

  async #write(target: EventTarget, type: string, reason: string, note: string, action: string): Promise<void> {
    const ns = target.metadata.namespace || 'default';
    const key = `${target.metadata.uid}|${type}|${reason}|${note}`;
    const prev = this.#recent.get(key);
    if (prev && Date.now() - prev.at < SERIES_WINDOW_MS) {
      prev.count += 1;
      prev.at = Date.now();
      await this.client.patch(`${paths.events(ns)}/${prev.name}`, {
        series: { count: prev.count, lastObservedTime: microTime() },
      });
      return;
    }
    if (this.#recent.size > 4096) this.#recent.clear();
    const name = `${target.metadata.name}.${randomBytes(8).toString('hex')}`;
    this.#recent.set(key, { name, count: 1, at: Date.now() });
    await this.client.create(paths.events(ns), {
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { name, namespace: ns },
      eventTime: microTime(),
      reportingController: this.controller,
      reportingInstance: this.instance,
      action,
      reason,
      note: note.slice(0, 1024),
      type,
      regarding: {
        apiVersion: target.apiVersion,
        kind: target.kind,
        name: target.metadata.name,
        namespace: target.metadata.namespace,
        uid: target.metadata.uid,
        resourceVersion: target.metadata.resourceVersion,
      },
    });
  }
}
