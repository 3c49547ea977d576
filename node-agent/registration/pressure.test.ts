import assert from 'node:assert/strict';
import { DEFAULT_THRESHOLDS, parseThresholds, PressureTracker, type Readings } from './pressure.js';

const Mi = 2 ** 20;
const Gi = 2 ** 30;
const defaults = parseThresholds(DEFAULT_THRESHOLDS);
/** A healthy node: 8 of 16 Gi memory, half of each filesystem, 200 of 32768 PIDs used. */
const healthy = (): Readings => ({
  'memory.available': { available: 8 * Gi, capacity: 16 * Gi },
  'nodefs.available': { available: 50 * Gi, capacity: 100 * Gi },
  'nodefs.inodesFree': { available: 5e6, capacity: 1e7 },
  'imagefs.available': { available: 50 * Gi, capacity: 100 * Gi },
  'imagefs.inodesFree': { available: 5e6, capacity: 1e7 },
  'pid.available': { available: 32_568, capacity: 32_768 },
});
const byType = (t: PressureTracker, r: Readings, now?: number) =>
  Object.fromEntries(t.conditions(r, now).map((c) => [c.type, c]));

describe('unit: node pressure conditions', () => {
  it("defaults to kubelet's Linux hard-eviction thresholds, plus pid.available<5%", () => {
    assert.deepEqual(defaults['memory.available'], { quantity: 100 * Mi, text: 'memory.available<100Mi' });
    assert.deepEqual(defaults['nodefs.available'], { percent: 10, text: 'nodefs.available<10%' });
    assert.deepEqual(defaults['imagefs.available'], { percent: 15, text: 'imagefs.available<15%' });
    assert.deepEqual(defaults['nodefs.inodesFree'], { percent: 5, text: 'nodefs.inodesFree<5%' });
    assert.deepEqual(defaults['pid.available'], { percent: 5, text: 'pid.available<5%' });
  });

  it('parses overrides onto the defaults; <0 turns a signal off', () => {
    const t = parseThresholds('memory.available<1Gi, pid.available<1000,imagefs.available<0%', defaults);
    assert.deepEqual(t['memory.available'], { quantity: Gi, text: 'memory.available<1Gi' });
    assert.deepEqual(t['pid.available'], { quantity: 1000, text: 'pid.available<1000' });
    assert.equal(t['imagefs.available'], undefined);
    assert.deepEqual(t['nodefs.available'], defaults['nodefs.available'], 'signals not named keep their default');
    assert.equal(parseThresholds('memory.available<0', defaults)['memory.available'], undefined);
  });

  it('refuses what is not a threshold, naming the part and what is expected', () => {
    assert.throws(() => parseThresholds('memory.available>100Mi'), /"memory.available>100Mi" is not signal<amount/);
    assert.throws(() => parseThresholds('memory.free<100Mi'), /unknown signal memory.free \(one of memory.available, /);
    assert.throws(() => parseThresholds('nodefs.available<120%'), /a percentage is 0% to 100%/);
    assert.throws(() => parseThresholds('memory.available<lots'), /lots is not a quantity or a percentage/);
    assert.throws(() => parseThresholds('pid.available<1k'), /pid.available takes a count or a percentage/);
  });

  it('says False with a reason per condition on a healthy node', () => {
    const c = byType(new PressureTracker(defaults), healthy());
    assert.deepEqual(
      Object.values(c).map((x) => [x.type, x.status, x.reason]),
      [
        ['MemoryPressure', 'False', 'AgentHasSufficientMemory'],
        ['DiskPressure', 'False', 'AgentHasNoDiskPressure'],
        ['PIDPressure', 'False', 'AgentHasSufficientPID'],
      ],
    );
    assert.match(c.MemoryPressure!.message, /memory.available<100Mi/);
  });

  it('says True when a reading is under its threshold, naming the signal and the reading', () => {
    const r = healthy();
    r['memory.available'] = { available: 80 * Mi, capacity: 16 * Gi };
    r['imagefs.available'] = { available: 14 * Gi, capacity: 100 * Gi }; // 14% < 15%
    r['pid.available'] = { available: 1000, capacity: 32_768 }; // 3% < 5%
    const c = byType(new PressureTracker(defaults), r);
    assert.equal(c.MemoryPressure!.status, 'True');
    assert.equal(c.MemoryPressure!.reason, 'AgentHasInsufficientMemory');
    assert.match(c.MemoryPressure!.message, /memory.available is 80Mi \(threshold 100Mi\)/);
    assert.equal(c.DiskPressure!.status, 'True');
    assert.match(c.DiskPressure!.message, /imagefs.available is 14Gi \(threshold 15%\)/);
    assert.doesNotMatch(c.DiskPressure!.message, /nodefs/, 'only the signal under its threshold is named');
    assert.equal(c.PIDPressure!.status, 'True');
    assert.match(c.PIDPressure!.message, /pid.available is 1000 \(threshold 5%\)/);
  });

  it('is exactly at the line: available equal to the threshold is not pressure (kubelet compares with <)', () => {
    const r = healthy();
    r['memory.available'] = { available: 100 * Mi, capacity: 16 * Gi };
    assert.equal(byType(new PressureTracker(defaults), r).MemoryPressure!.status, 'False');
  });

  it('stays True for the transition period after the pressure is gone, then clears', () => {
    const t = new PressureTracker(defaults, 60_000);
    const low = healthy();
    low['memory.available'] = { available: 50 * Mi, capacity: 16 * Gi };
    assert.equal(byType(t, low, 1_000).MemoryPressure!.status, 'True');
    const held = byType(t, healthy(), 30_000).MemoryPressure!;
    assert.equal(held.status, 'True');
    assert.match(held.message, /less than 60 s ago/);
    assert.equal(byType(t, healthy(), 61_001).MemoryPressure!.status, 'False');
    assert.equal(byType(t, healthy(), 61_001).DiskPressure!.status, 'False', 'each condition has its own clock');
  });

  it('is Unknown when a watched signal could not be read, and False when nothing is watched', () => {
    const r = healthy();
    delete r['nodefs.available'];
    const c = byType(new PressureTracker(defaults), r);
    assert.equal(c.DiskPressure!.status, 'Unknown');
    assert.match(c.DiskPressure!.message, /could not read nodefs.available/);
    const btrfs = { ...healthy(), 'nodefs.inodesFree': null, 'imagefs.inodesFree': null };
    assert.equal(
      byType(new PressureTracker(defaults), btrfs).DiskPressure!.status,
      'False',
      'a filesystem without an inode count is judged on space alone',
    );
    const off = byType(new PressureTracker(parseThresholds('memory.available<0', defaults)), {});
    assert.equal(off.MemoryPressure!.status, 'False');
    assert.match(off.MemoryPressure!.message, /No threshold/);
  });
});
