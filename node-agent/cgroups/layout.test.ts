import assert from 'node:assert/strict';
import { classify, parseCgroupMounts } from './layout.js';

const hybrid = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw`;

describe('unit: cgroup layout detection', () => {
  it('recognises the hybrid layout', () => {
    const m = parseCgroupMounts(hybrid);
    assert.equal(m.unified, '/sys/fs/cgroup/unified');
    assert.equal(m.v1.memory, '/sys/fs/cgroup/memory');
    assert.equal(classify(m, []).kind, 'hybrid');
  });
  it('recognises pure v2 and comounted v1', () => {
    const v2 = parseCgroupMounts('30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate');
    assert.equal(classify(v2, ['memory', 'pids']).kind, 'v2');
    const v1 = parseCgroupMounts('32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct');
    assert.equal(v1.v1.cpu, '/sys/fs/cgroup/cpu,cpuacct');
    assert.equal(v1.v1.cpuacct, '/sys/fs/cgroup/cpu,cpuacct');
    assert.equal(classify(v1, []).kind, 'v1');
  });
  it('ignores sub-tree binds', () => {
    const m = parseCgroupMounts('41 31 0:38 /kubepods /sys/fs/cgroup rw - cgroup2 cgroup2 rw');
    assert.equal(m.unified, undefined);
  });
});
