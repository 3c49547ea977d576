import assert from 'node:assert/strict';
import { buildRootfsPlan } from './plan.js';

const spec = {
  root: '/s/c/rootfs',
  layers: ['/l/1', '/l/2'],
  upper: '/s/c/upper',
  work: '/s/c/work',
  shm: '/s/shm',
  etcFiles: { hostname: '/s/hostname', hosts: '/s/hosts', resolvConf: '/s/resolv.conf' },
  volumes: [{ source: '/s/v/data', mountPath: '/data', readOnly: true }],
  readOnlyRoot: false,
  privileged: false,
};

describe('unit: rootfs plan', () => {
  it('stacks layers highest first and masks the defaults', () => {
    const steps = buildRootfsPlan(spec);
    const first = steps[0];
    assert.ok(
      first && first.op === 'mount' && first.data === 'lowerdir=/l/2:/l/1,upperdir=/s/c/upper,workdir=/s/c/work',
    );
    assert.ok(steps.some((s) => s.op === 'mask' && s.path === '/s/c/rootfs/proc/kcore'));
    assert.ok(steps.some((s) => s.op === 'readonly' && s.path === '/s/c/rootfs/proc/sys'));
    assert.ok(steps.some((s) => s.op === 'mount' && s.target === '/s/c/rootfs/data'));
  });
  it("binds the run's termination log file at terminationMessagePath, making its directory", () => {
    const steps = buildRootfsPlan({
      ...spec,
      terminationLog: { source: '/s/c/termination-log', path: '/var/reports/last' },
    });
    const i = steps.findIndex((s) => s.op === 'mkdir' && s.path === '/s/c/rootfs/var/reports');
    assert.ok(i >= 0, 'the directory is made');
    assert.deepEqual(steps[i + 1], { op: 'touch', path: '/s/c/rootfs/var/reports/last' });
    assert.deepEqual(steps[i + 2], {
      op: 'mount',
      source: '/s/c/termination-log',
      target: '/s/c/rootfs/var/reports/last',
      fstype: null,
      flags: 4096, // MS_BIND
      data: null,
    });
    assert.ok(steps.findIndex((s) => s.op === 'mask') > i + 2, 'before the masks');
  });
  it('does not mask anything for privileged containers', () => {
    assert.ok(!buildRootfsPlan({ ...spec, privileged: true }).some((s) => s.op === 'mask'));
  });
  it("mounts a /proc of the container's own PID namespace before masking it when the sandbox does not share one", () => {
    const shared = buildRootfsPlan(spec);
    assert.ok(shared.some((s) => s.op === 'mount' && s.source === '/proc' && s.target === '/s/c/rootfs/proc'));
    assert.ok(!shared.some((s) => s.op === 'proc'));
    const own = buildRootfsPlan({ ...spec, ownPidNamespace: true });
    const at = own.findIndex((s) => s.op === 'proc' && s.target === '/s/c/rootfs/proc');
    assert.ok(at > 0, 'a proc step');
    assert.ok(!own.some((s) => s.op === 'mount' && s.source === '/proc'), 'the sandbox /proc is not bound');
    assert.ok(
      own.findIndex((s) => s.op === 'mask' && s.path === '/s/c/rootfs/proc/kcore') > at,
      'masks apply to the new /proc',
    );
  });
  it('with a user namespace, stacks idmapped copies of the layers and drops them once the overlay holds them', () => {
    const steps = buildRootfsPlan({
      ...spec,
      userns: { fd: 9, base: 1 << 20, layerMounts: ['/s/c/lower/0', '/s/c/lower/1'] },
    });
    const overlay = steps.findIndex((s) => s.op === 'mount' && s.fstype === 'overlay');
    const o = steps[overlay];
    assert.ok(
      o?.op === 'mount' && o.data === 'lowerdir=/s/c/lower/1:/s/c/lower/0,upperdir=/s/c/upper,workdir=/s/c/work',
    );
    assert.deepEqual(steps.slice(0, overlay), [
      { op: 'idmap', source: '/l/1', target: '/s/c/lower/0', userns: 9 },
      { op: 'idmap', source: '/l/2', target: '/s/c/lower/1', userns: 9 },
    ]);
    assert.deepEqual(steps.slice(overlay + 1, overlay + 3), [
      { op: 'detach', target: '/s/c/lower/0' },
      { op: 'detach', target: '/s/c/lower/1' },
    ]);
    assert.ok(
      steps.some(
        (s) =>
          s.op === 'mount' &&
          s.fstype === 'tmpfs' &&
          s.target === '/s/c/rootfs/dev' &&
          s.data?.includes(`uid=${1 << 20},gid=${1 << 20}`),
      ),
    );
    assert.ok(steps.some((s) => s.op === 'mount' && s.fstype === 'devpts' && s.data?.includes(`gid=${(1 << 20) + 5}`)));
  });
});
