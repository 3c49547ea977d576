import assert from 'node:assert/strict';
import { CpuRates, millicores, MIN_INTERVAL_MS, nextCpuRate, type CpuRateState } from './cpu-rate.js';

const S = 1e9; // one CPU-second in ns

describe('unit: cgroups: status.usage.cpu as an average rate in millicores', () => {
  const rates: [string, number, number, number][] = [
    ['one core busy', S, S, 1000],
    ['a quarter core', 0.25 * S, S, 250],
    ['two cores over two seconds', 4 * S, 2 * S, 2000],
    ['idle', 0, S, 0],
    ['no time passed', S, 0, 0],
    ['rounds', 1_499_999, 1e9, 1],
  ];
  for (const [name, cpu, elapsed, want] of rates)
    it(`millicores: ${name}`, () => assert.equal(millicores(cpu, elapsed), want));

  const prev: CpuRateState = { cpuNanos: 10 * S, atMs: 100_000, millicores: 400 };
  const steps: { name: string; prev?: CpuRateState; cpu: number; now: number; start: number; want: CpuRateState }[] = [
    {
      name: 'first reading: the average since the start',
      cpu: 2 * S,
      now: 14_000,
      start: 10_000,
      want: { cpuNanos: 2 * S, atMs: 14_000, millicores: 500 },
    },
    {
      name: 'the rate over the interval since the last reading',
      prev,
      cpu: 13 * S,
      now: 110_000,
      start: 0,
      want: { cpuNanos: 13 * S, atMs: 110_000, millicores: 300 },
    },
    {
      name: 'a reading too soon repeats the last rate and keeps its base',
      prev,
      cpu: 11 * S,
      now: 100_000 + MIN_INTERVAL_MS - 1,
      start: 0,
      want: prev,
    },
    {
      name: 'steady use stays steady however long it runs',
      prev: { cpuNanos: 3600 * S, atMs: 3_600_000, millicores: 1000 },
      cpu: 3660 * S,
      now: 3_660_000,
      start: 0,
      want: { cpuNanos: 3660 * S, atMs: 3_660_000, millicores: 1000 },
    },
    {
      name: 'a counter that went back counts from its new value',
      prev,
      cpu: 2 * S,
      now: 110_000,
      start: 0,
      want: { cpuNanos: 2 * S, atMs: 110_000, millicores: 200 },
    },
  ];
  for (const t of steps)
    it(`next rate: ${t.name}`, () => assert.deepEqual(nextCpuRate(t.prev, t.cpu, t.now, t.start), t.want));

  it('keeps one state per sandbox and forgets it', () => {
    const r = new CpuRates();
    assert.equal(r.sample('a', S, 1_000, 0), '1000m');
    assert.equal(r.sample('b', 0, 1_000, 0), '0m');
    assert.equal(r.sample('a', 1.5 * S, 3_000, 0), '250m');
    r.forget('a');
    assert.equal(r.sample('a', 1.5 * S, 3_000, 0), '500m', 'after forget: the average since the start again');
  });
});
