import assert from 'node:assert/strict';
import type { SandboxStatus } from '../../crds/sandbox.js';
import { statusEvents } from './events.js';

const c = (state: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  name: 'main',
  image: 'busybox',
  ready: !!state.running,
  restartCount: 0,
  state,
  ...extra,
});
const st = (containers: unknown[], extra: Partial<SandboxStatus> = {}) =>
  ({ phase: 'Running', containerStatuses: containers, ...extra }) as SandboxStatus;
const reasons = (before: SandboxStatus | undefined, after: SandboxStatus) =>
  statusEvents(before, after).map((e) => `${e.type}/${e.reason}`);

describe('unit: statusEvents', () => {
  it('records Started once per run, not for writes that change something else', () => {
    const pending = st([c({ waiting: { reason: 'ContainerCreating' } })], { phase: 'Pending' });
    const running = st([c({ running: { startedAt: 't1' } })]);
    assert.deepEqual(reasons(pending, running), ['Normal/Started']);
    assert.deepEqual(reasons(running, { ...running, usage: { pids: 3 } }), [], 'a usage-only write records nothing');
    const restarted = st([c({ running: { startedAt: 't2' } }, { restartCount: 1 })]);
    assert.deepEqual(
      statusEvents(running, restarted).map((e) => e.note),
      ['Started container main (restart 1)'],
    );
  });

  it('records BackOff when a container enters CrashLoopBackOff, and Failed for a config error', () => {
    const running = st([c({ running: { startedAt: 't1' } })]);
    assert.deepEqual(reasons(running, st([c({ waiting: { reason: 'CrashLoopBackOff' } }, { restartCount: 1 })])), [
      'Warning/BackOff',
    ]);
    const failed = statusEvents(
      undefined,
      st([c({ waiting: { reason: 'CreateContainerConfigError', message: 'unknown user "app"' } })], {
        phase: 'Pending',
      }),
    );
    assert.deepEqual(failed, [
      { type: 'Warning', reason: 'Failed', note: 'CreateContainerConfigError: unknown user "app"' },
    ]);
  });

  it('records an OOM kill once, whether the container ended or restarted', () => {
    const running = st([c({ running: { startedAt: 't1' } })]);
    const oom = { terminated: { exitCode: 137, reason: 'OOMKilled', finishedAt: 't2' } };
    assert.deepEqual(reasons(running, st([c(oom)], { phase: 'Failed', reason: 'Error' })), [
      'Warning/OOMKilled',
      'Warning/Error',
    ]);
    const restartedAfterOom = st([c({ running: { startedAt: 't3' } }, { restartCount: 1, lastState: oom })]);
    assert.deepEqual(reasons(running, restartedAfterOom), ['Normal/Started', 'Warning/OOMKilled']);
    assert.deepEqual(
      reasons(restartedAfterOom, { ...restartedAfterOom, usage: { pids: 1 } }),
      [],
      'not again on the next write',
    );
  });

  it('records a network failure when its reason changes, and how the sandbox ended', () => {
    const net = (reason: string) =>
      st([], {
        phase: 'Pending',
        conditions: [
          { type: 'NetworkReady', status: 'False', reason, message: `m-${reason}`, lastTransitionTime: 't' },
        ],
      });
    assert.deepEqual(reasons(undefined, net('HostPortInUse')), ['Warning/HostPortInUse']);
    assert.deepEqual(reasons(net('HostPortInUse'), net('HostPortInUse')), []);
    assert.deepEqual(reasons(net('HostPortInUse'), net('HostPortConflict')), ['Warning/HostPortConflict']);
    assert.deepEqual(reasons(undefined, net('Configuring')), [], 'a network being set up is not a warning');
    assert.deepEqual(reasons(net('Configuring'), net('HostPortInUse')), ['Warning/HostPortInUse']);
    assert.deepEqual(reasons(st([]), st([], { phase: 'Succeeded' })), ['Normal/Completed']);
    assert.deepEqual(
      statusEvents(st([]), st([], { phase: 'Failed', reason: 'DeadlineExceeded', message: 'ran longer than 3 s' })),
      [{ type: 'Warning', reason: 'DeadlineExceeded', note: 'ran longer than 3 s' }],
    );
  });

  it('records a create that failed in the sandbox itself once per message, as FailedCreateSandbox', () => {
    const failed = (message: string) => st([], { phase: 'Pending', reason: 'FailedCreateSandbox', message });
    assert.deepEqual(statusEvents(st([]), failed('set sandbox limits: EINVAL')), [
      { type: 'Warning', reason: 'FailedCreateSandbox', note: 'set sandbox limits: EINVAL' },
    ]);
    assert.deepEqual(reasons(failed('a'), failed('a')), []);
  });
});
