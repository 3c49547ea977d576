import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFilesystem, readMemory, readPids, takeReadings } from './readings.js';

describe('unit: node pressure readings', () => {
  let proc: string;
  before(() => {
    proc = mkdtempSync(join(tmpdir(), 'sandpit-readings-'));
    mkdirSync(join(proc, 'sys/kernel'), { recursive: true });
    writeFileSync(
      join(proc, 'meminfo'),
      'MemTotal:       16384000 kB\nMemFree:         1000000 kB\nMemAvailable:    8192000 kB\n',
    );
    writeFileSync(join(proc, 'sys/kernel/pid_max'), '32768\n');
    writeFileSync(join(proc, 'sys/kernel/threads-max'), '192729\n');
    writeFileSync(join(proc, 'loadavg'), '1.41 2.40 2.27 3/133 28769\n');
  });
  after(() => rmSync(proc, { recursive: true, force: true }));

  it('reads MemAvailable and MemTotal in bytes', () => {
    assert.deepEqual(readMemory(proc), { available: 8192000 * 1024, capacity: 16384000 * 1024 });
  });

  it('counts PIDs left under the smaller of pid_max and threads-max', () => {
    assert.deepEqual(readPids(proc), { available: 32768 - 133, capacity: 32768 });
  });

  it('reads the filesystem of the nearest existing directory (the state dir may not exist yet)', () => {
    const fs = readFilesystem(join(proc, 'not/made/yet'));
    assert.ok(fs.space.capacity > 0 && fs.space.available <= fs.space.capacity);
  });

  it('leaves out what it cannot read and says why', () => {
    writeFileSync(join(proc, 'meminfo'), 'MemTotal: 1 kB\n');
    const errors: string[] = [];
    const r = takeReadings({ nodefs: proc, imagefs: proc, proc }, (what, err) =>
      errors.push(`${what}: ${err.message}`),
    );
    assert.equal(r['memory.available'], undefined);
    assert.ok(r['nodefs.available'] && r['pid.available']);
    assert.deepEqual(errors, [`memory: ${proc}/meminfo has no MemAvailable`]);
  });
});
