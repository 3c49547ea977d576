import { QUANTITY_PATTERN } from './common.js';

const BINARY: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
const DECIMAL: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  '': 1,
  k: 1e3,
  K: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
};

/**
 * Parses a Kubernetes quantity ("500m", "1.5", "128Mi", "1e3", 2) to a plain
 * number of base units (cores, bytes). Throws on anything the API server
 * would reject, so a bad value is caught where it is read.
 */
export function parseQuantity(q: string | number): number {
  if (typeof q === 'number') return q;
  const s = q.trim();
  if (!QUANTITY_PATTERN.test(s)) throw new Error(`"${q}" is not a Kubernetes quantity (such as 500m, 2 or 128Mi)`);
  const m = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:[eE]([+-]?\d+)|([KMGTPE]i)|([munkKMGTPE]))?$/.exec(s)!;
  const base = Number(m[1]);
  if (m[2] !== undefined) return base * 10 ** Number(m[2]);
  if (m[3] !== undefined) return base * BINARY[m[3]]!;
  return base * DECIMAL[m[4] ?? '']!;
}

/** CPU as integer millicores, the unit the scheduler adds and compares in (no float drift). */
export const milliCpu = (q: string | number) => Math.round(parseQuantity(q) * 1000);

/** Memory as integer bytes. */
export const bytes = (q: string | number) => Math.ceil(parseQuantity(q));
