import assert from 'node:assert/strict';
import { SandboxSpec } from '../../crds/sandbox.js';
import { changedContainerFields, diffSpec, type SpecDiff } from './spec-diff.js';

const base = SandboxSpec.parse({
  containers: [
    { name: 'web', image: 'busybox', command: ['httpd', '-f'] },
    { name: 'side', image: 'busybox', command: ['sleep', '1d'] },
  ],
  volumes: [{ name: 'data', emptyDir: {} }],
});

/** The spec with one edit applied to a deep copy. */
function edit(fn: (s: SandboxSpec) => void): SandboxSpec {
  const s = structuredClone(base);
  fn(s);
  return SandboxSpec.parse(s);
}

const web = (s: SandboxSpec) => s.containers[0]!;
const restart = (...names: string[]): SpecDiff => ({ restartContainers: names, recreateReasons: [] });
const recreate = (...reasons: string[]): SpecDiff => ({ restartContainers: [], recreateReasons: reasons });

describe('unit: diffSpec: what an edited spec asks of a running sandbox', () => {
  const table: [string, (s: SandboxSpec) => void, SpecDiff][] = [
    ['nothing', () => undefined, restart()],
    ['a container image', (s) => void (web(s).image = 'busybox:1.36'), restart('web')],
    ['a container command', (s) => void (web(s).command = ['httpd', '-f', '-v']), restart('web')],
    ['a container args', (s) => void (web(s).args = ['-p', '8080']), restart('web')],
    ['a container env', (s) => void (web(s).env = [{ name: 'A', value: '1' }]), restart('web')],
    ['a container workingDir', (s) => void (web(s).workingDir = '/tmp'), restart('web')],
    ['a container memory limit', (s) => void (web(s).resources = { limits: { memory: '64Mi' } }), restart('web')],
    [
      'a container capability',
      (s) => void (web(s).securityContext = { capabilities: { drop: ['NET_RAW'] } } as never),
      restart('web'),
    ],
    [
      'a container volumeMount of an existing volume',
      (s) => void (web(s).volumeMounts = [{ name: 'data', mountPath: '/data' }] as never),
      restart('web'),
    ],
    [
      'two containers',
      (s) => {
        web(s).image = 'busybox:1.36';
        s.containers[1]!.args = ['x'];
      },
      restart('web', 'side'),
    ],
    ['container ports only (informational)', (s) => void (web(s).ports = [{ containerPort: 80 }] as never), restart()],
    [
      'restartPolicy, deadline, grace period, pull secrets, nodeSelector (read when used)',
      (s) => {
        s.restartPolicy = 'Never';
        s.activeDeadlineSeconds = 60;
        s.terminationGracePeriodSeconds = 5;
        s.imagePullSecrets = [{ name: 'reg' }];
        s.nodeSelector = { zone: 'a' };
      },
      restart(),
    ],
    ['paused', (s) => void (s.paused = true), { ...restart(), pauseChange: true }],
    [
      'paused and a command',
      (s) => {
        s.paused = true;
        web(s).args = ['x'];
      },
      { ...restart('web'), pauseChange: true },
    ],
    [
      'the volumes',
      (s) => void (s.volumes = [{ name: 'data', emptyDir: { medium: 'Memory' } }] as never),
      recreate('spec.volumes'),
    ],
    [
      'network ports and dns',
      (s) => {
        s.network = {
          ...s.network,
          ports: [{ containerPort: 80, hostPort: 18080 }],
          dns: { nameservers: ['10.0.0.1'] },
        } as never;
      },
      recreate('spec.network.dns', 'spec.network.ports'),
    ],
    [
      'sandbox resources',
      (s) => void (s.resources = { ...s.resources, memory: '1Gi' }),
      recreate('spec.resources.memory'),
    ],
    ['the hostname', (s) => void (s.hostname = 'other'), recreate('spec.hostname')],
    ['hostUsers', (s) => void (s.hostUsers = false), recreate('spec.hostUsers')],
    ['shareProcessNamespace', (s) => void (s.shareProcessNamespace = false), recreate('spec.shareProcessNamespace')],
    [
      'a container added',
      (s) => void s.containers.push({ ...web(s), name: 'third' }),
      recreate('spec.containers[third] (added)'),
    ],
    ['a container removed', (s) => void s.containers.pop(), recreate('spec.containers[side] (removed)')],
    ['the containers reordered', (s) => void s.containers.reverse(), recreate('spec.containers (order)')],
    [
      'privileged',
      (s) => void (web(s).securityContext = { privileged: true, allowPrivilegeEscalation: true } as never),
      recreate('spec.containers[web].securityContext.privileged'),
    ],
    [
      'a recreate wins over a restart',
      (s) => {
        s.hostname = 'other';
        web(s).args = ['x'];
      },
      recreate('spec.hostname'),
    ],
  ];
  for (const [what, change, want] of table) {
    it(`${what}: ${want.recreateReasons.length ? `recreates (${want.recreateReasons.join(', ')})` : `restarts [${want.restartContainers.join(', ')}]`}`, () => {
      assert.deepEqual(diffSpec(base, edit(change)), want);
    });
  }

  it('ignores key order and absent optional fields', () => {
    const reordered = Object.fromEntries(Object.entries(base).reverse()) as SandboxSpec;
    assert.deepEqual(diffSpec(base, reordered), restart());
    const withUndefined = edit((s) => void (web(s).workingDir = undefined));
    assert.deepEqual(diffSpec(base, withUndefined), restart());
  });

  it('names the container fields that changed', () => {
    assert.deepEqual(
      changedContainerFields(
        web(base),
        web(
          edit((s) => {
            web(s).image = 'x';
            web(s).env = [{ name: 'A', value: '' }];
          }),
        ),
      ),
      ['image', 'env'],
    );
  });
});
