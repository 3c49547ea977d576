import { parseQuantity } from '../../crds/quantity.js';
import type { ConditionInput } from '../../lib/kube/conditions.js';

/*
 * Node pressure as kubelet reports it (MemoryPressure, DiskPressure,
 * PIDPressure on the Node), decided from readings and thresholds as plain
 * data. The agent does not evict anything: a condition that is True only
 * keeps the controller from placing new sandboxes on the node. Readings are
 * taken elsewhere (readings.ts); nothing here does I/O.
 */

/** Kubelet's eviction signal names, so an operator's `--eviction-hard` knowledge carries over. */
export const SIGNALS = [
  'memory.available',
  'nodefs.available',
  'nodefs.inodesFree',
  'imagefs.available',
  'imagefs.inodesFree',
  'pid.available',
] as const;
export type Signal = (typeof SIGNALS)[number];

/** "Pressure when the available amount is under this": an absolute amount or a percentage of capacity. */
export type Threshold = { quantity: number; text: string } | { percent: number; text: string };
export type Thresholds = Partial<Record<Signal, Threshold>>;

/** An amount available and the capacity it is a part of (bytes, inodes or PIDs). */
export interface Reading {
  available: number;
  capacity: number;
}
/** A missing reading could not be taken (its condition goes Unknown); null means the signal does not apply here (a filesystem without a fixed inode count). */
export type Readings = Partial<Record<Signal, Reading | null>>;

export type PressureType = 'MemoryPressure' | 'DiskPressure' | 'PIDPressure';
export const PRESSURE_TYPES: readonly PressureType[] = ['MemoryPressure', 'DiskPressure', 'PIDPressure'];

const SIGNALS_OF: Record<PressureType, readonly Signal[]> = {
  MemoryPressure: ['memory.available'],
  DiskPressure: ['nodefs.available', 'nodefs.inodesFree', 'imagefs.available', 'imagefs.inodesFree'],
  PIDPressure: ['pid.available'],
};

const REASONS: Record<PressureType, { ok: string; pressure: string; what: string }> = {
  MemoryPressure: { ok: 'AgentHasSufficientMemory', pressure: 'AgentHasInsufficientMemory', what: 'memory' },
  DiskPressure: {
    ok: 'AgentHasNoDiskPressure',
    pressure: 'AgentHasDiskPressure',
    what: 'disk space and inodes of the state and image filesystems',
  },
  PIDPressure: { ok: 'AgentHasSufficientPID', pressure: 'AgentHasInsufficientPID', what: 'process IDs' },
};

/**
 * kubelet's hard-eviction defaults on Linux (memory.available<100Mi,
 * nodefs.available<10%, nodefs.inodesFree<5%, imagefs.available<15%), and
 * imagefs.inodesFree<5% and pid.available<5%: kubelet sets no default for
 * those two, but a scheduler that skips starved nodes needs a line somewhere.
 */
export const DEFAULT_THRESHOLDS =
  'memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<15%,imagefs.inodesFree<5%,pid.available<5%';

/**
 * Parses kubelet's `--eviction-hard` syntax (`signal<amount`, comma
 * separated; amount a quantity or a percentage) over `base`: a signal not
 * named keeps its base threshold (unlike kubelet, where setting one drops the
 * other defaults), and `signal<0` turns it off.
 */
export function parseThresholds(text: string, base: Thresholds = {}): Thresholds {
  const out: Thresholds = { ...base };
  for (const part of text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const m = /^([A-Za-z.]+)<(.+)$/.exec(part);
    if (!m)
      throw new Error(
        `pressure threshold "${part}" is not signal<amount (e.g. memory.available<100Mi or nodefs.available<10%)`,
      );
    const signal = m[1] as Signal;
    if (!SIGNALS.includes(signal))
      throw new Error(`pressure threshold "${part}": unknown signal ${m[1]} (one of ${SIGNALS.join(', ')})`);
    const amount = m[2]!.trim();
    if (amount.endsWith('%')) {
      const percent = Number(amount.slice(0, -1));
      if (!Number.isFinite(percent) || percent < 0 || percent > 100)
        throw new Error(`pressure threshold "${part}": a percentage is 0% to 100%`);
      if (percent === 0) delete out[signal];
      else out[signal] = { percent, text: part };
      continue;
    }
    if (signal.endsWith('inodesFree') || signal === 'pid.available') {
      if (!/^\d+$/.test(amount))
        throw new Error(`pressure threshold "${part}": ${signal} takes a count or a percentage`);
    }
    let quantity: number;
    try {
      quantity = parseQuantity(amount);
    } catch {
      throw new Error(`pressure threshold "${part}": ${amount} is not a quantity or a percentage`);
    }
    if (quantity === 0) delete out[signal];
    else out[signal] = { quantity, text: part };
  }
  return out;
}

/** The amount under which `threshold` says pressure, for a reading's capacity. */
export const limitOf = (t: Threshold, capacity: number) => ('percent' in t ? (capacity * t.percent) / 100 : t.quantity);

/** Whether a reading is under its threshold; undefined when there is no threshold for it. */
export function underPressure(reading: Reading, threshold: Threshold | undefined): boolean | undefined {
  if (!threshold) return undefined;
  return reading.available < limitOf(threshold, reading.capacity);
}

/** Bytes as Mi/Gi, counts (inodes, PIDs) as they are. */
const fmt = (signal: Signal, n: number) => {
  if (signal.endsWith('inodesFree') || signal === 'pid.available') return String(Math.round(n));
  const mi = n / 2 ** 20;
  return mi >= 10_240 ? `${Math.round(mi / 1024)}Gi` : `${Math.round(mi)}Mi`;
};

/**
 * Keeps a pressure condition True until its signals have been clear for
 * `transitionMs` (kubelet's --eviction-pressure-transition-period, 5 min by
 * default), so a node hovering at a threshold does not flap between taking
 * and refusing sandboxes on every reading.
 */
export class PressureTracker {
  readonly #lastPressure = new Map<PressureType, number>();

  constructor(
    readonly thresholds: Thresholds,
    readonly transitionMs = 300_000,
  ) {}

  /** The three conditions from one set of readings. A signal without a reading makes its condition Unknown unless another one already says pressure. */
  conditions(readings: Readings, now = Date.now()): ConditionInput[] {
    return PRESSURE_TYPES.map((type) => this.#condition(type, readings, now));
  }

  #condition(type: PressureType, readings: Readings, now: number): ConditionInput {
    const r = REASONS[type];
    const pressed: string[] = [];
    const unread: Signal[] = [];
    const watched: string[] = [];
    for (const signal of SIGNALS_OF[type]) {
      const t = this.thresholds[signal];
      if (!t || readings[signal] === null) continue;
      watched.push(t.text);
      const reading = readings[signal];
      if (!reading) {
        unread.push(signal);
        continue;
      }
      if (underPressure(reading, t))
        pressed.push(`${signal} is ${fmt(signal, reading.available)} (threshold ${t.text.slice(signal.length + 1)})`);
    }
    if (pressed.length) this.#lastPressure.set(type, now);
    const last = this.#lastPressure.get(type);
    if (pressed.length || (last !== undefined && now - last < this.transitionMs)) {
      const message = pressed.length
        ? `The node is short of ${r.what}: ${pressed.join('; ')}. New sandboxes are not scheduled here until it recovers.`
        : `The node was short of ${r.what} less than ${Math.round(this.transitionMs / 1000)} s ago; new sandboxes are not scheduled here until it has been clear that long.`;
      return { type, status: 'True', reason: r.pressure, message };
    }
    if (unread.length)
      return {
        type,
        status: 'Unknown',
        reason: 'ReadingFailed',
        message: `The agent could not read ${unread.join(', ')}; see its log.`,
      };
    if (!watched.length) return { type, status: 'False', reason: r.ok, message: `No threshold is set for ${r.what}.` };
    return {
      type,
      status: 'False',
      reason: r.ok,
      message: `The node has enough ${r.what} (pressure when ${watched.join(' or ')}).`,
    };
  }
}
