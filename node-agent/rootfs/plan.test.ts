import assert from 'node:assert/strict';
import { buildRootfsPlan } from './plan.js';

const spec = {
  root: '/s/c/rootfs', layers: ['/l/1', '/l/2'], upper: '/s/c/upper', work: '/s/c/work', shm: '/s/shm',
  etcFiles: { hostname: '/s/hostname', hosts: '/s/hosts', resolvConf: '/s/resolv.conf' },
  volumes: [{ source: '/s/v/data', mountPath: '/data', readOnly: true }], readOnlyRoot: false, privileged: false,
};

describe('rootfs plan (unit)', () => {
  it('stacks layers highest first and masks the defaults', () => {
    const steps = buildRootfsPlan(spec);
    const first = steps[0];
    assert.ok(first && first.op === 'mount' && first.data === 'lowerdir=/l/2:/l/1,upperdir=/s/c/upper,workdir=/s/c/work');
    assert.ok(steps.some((s) => s.op === 'mask' && s.path === '/s/c/rootfs/proc/kcore'));
    assert.ok(steps.some((s) => s.op === 'readonly' && s.path === '/s/c/rootfs/proc/sys'));
    assert.ok(steps.some((s) => s.op === 'mount' && s.target === '/s/c/rootfs/data'));
  });
  it('does not mask anything for privileged containers', () => {
    assert.ok(!buildRootfsPlan({ ...spec, privileged: true }).some((s) => s.op === 'mask'));
  });
  it('mounts a /proc of the container\'s own PID namespace before masking it when the sandbox does not share one', () => {
    const shared = buildRootfsPlan(spec);
    assert.ok(shared.some((s) => s.op === 'mount' && s.source === '/proc' && s.target === '/s/c/rootfs/proc'));
    assert.ok(!shared.some((s) => s.op === 'proc'));
    const own = buildRootfsPlan({ ...spec, ownPidNamespace: true });
    const at = own.findIndex((s) => s.op === 'proc' && s.target === '/s/c/rootfs/proc');
    assert.ok(at > 0, 'a proc step');
    assert.ok(!own.some((s) => s.op === 'mount' && s.source === '/proc'), 'the sandbox /proc is not bound');
    assert.ok(own.findIndex((s) => s.op === 'mask' && s.path === '/s/c/rootfs/proc/kcore') > at, 'masks apply to the new /proc');
  });
});
