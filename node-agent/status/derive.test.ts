import assert from 'node:assert/strict';
import { deriveConditions } from './derive.js';

const running = { name: 'c', image: 'i', imageID: 'sha', ready: true, restartCount: 0, state: { running: {} } };

describe('unit: sandbox conditions from the runtime observation', () => {
  const byType = (list: ReturnType<typeof deriveConditions>) => Object.fromEntries(list.map((c) => [c.type, c]));

  it('is Ready with images and network once every container runs', () => {
    const c = byType(deriveConditions({ phase: 'Running', sandboxIP: '10.0.0.2', containerStatuses: [running] }, 3));
    assert.equal(c.Ready?.status, 'True');
    assert.equal(c.ImagesReady?.status, 'True');
    assert.equal(c.NetworkReady?.status, 'True');
    assert.equal(c.NetworkReady?.reason, 'NetworkConfigured');
    assert.equal(
      byType(deriveConditions({ phase: 'Running', containerStatuses: [running] }, 3)).NetworkReady?.reason,
      'LoopbackOnly',
      'mode None',
    );
    assert.equal(c.Ready?.observedGeneration, 3);
    assert.equal(c.Reconciling, undefined, 'abnormal-true conditions are absent when false');
    assert.equal(c.Stalled, undefined);
  });

  it('is Reconciling while created, with the pull reason on ImagesReady', () => {
    const c = byType(
      deriveConditions(
        {
          phase: 'Pending',
          containerStatuses: [
            {
              ...running,
              imageID: '',
              ready: false,
              state: { waiting: { reason: 'ImagePullBackOff', message: 'no such image' } },
            },
          ],
        },
        1,
      ),
    );
    assert.equal(c.Reconciling?.status, 'True');
    assert.equal(c.ImagesReady?.reason, 'ImagePullBackOff');
    assert.equal(c.Ready?.status, 'False');
  });

  it('names the containers that are not running', () => {
    const c = byType(
      deriveConditions(
        { phase: 'Running', containerStatuses: [running, { ...running, name: 'side', ready: false }] },
        1,
      ),
    );
    assert.equal(c.Ready?.reason, 'ContainersNotReady');
    assert.match(c.Ready?.message ?? '', /side/);
  });

  it('is Stalled when failed, and has no Ready when paused', () => {
    assert.equal(
      byType(deriveConditions({ phase: 'Failed', reason: 'DeadlineExceeded', containerStatuses: [running] }, 1)).Stalled
        ?.reason,
      'DeadlineExceeded',
    );
    assert.equal(
      byType(deriveConditions({ phase: 'Paused', containerStatuses: [running] }, 1)).Ready,
      undefined,
      'paused: no Ready, so kstatus says Current',
    );
  });

  it('judges a not-ready sandbox as kstatus judges a Pod: in progress while starting, Stalled when crash-looping', () => {
    const starting = byType(
      deriveConditions(
        {
          phase: 'Running',
          containerStatuses: [
            running,
            { ...running, name: 'side', ready: false, state: { waiting: { reason: 'ContainerCreating' } } },
          ],
        },
        1,
      ),
    );
    assert.equal(starting.Reconciling?.status, 'True');
    assert.equal(starting.Stalled, undefined);
    const crashing = {
      ...running,
      ready: false,
      restartCount: 4,
      state: { waiting: { reason: 'CrashLoopBackOff' } },
      lastState: { terminated: { exitCode: 1 } },
    };
    const looping = byType(
      deriveConditions({ phase: 'Running', containerStatuses: [running, { ...crashing, name: 'side' }] }, 1),
    );
    assert.equal(looping.Stalled?.reason, 'CrashLoopBackOff');
    assert.match(looping.Stalled?.message ?? '', /side \(restarted 4 times, last exit code 1\)/);
    assert.equal(looping.Reconciling, undefined);
    assert.equal(looping.Ready?.status, 'False');
  });

  it('is Current for kstatus once Succeeded or Paused: neither Reconciling nor Stalled', () => {
    for (const phase of ['Succeeded', 'Paused'] as const) {
      const c = byType(deriveConditions({ phase, containerStatuses: [running] }, 1));
      assert.equal(c.Reconciling, undefined, phase);
      assert.equal(c.Stalled, undefined, phase);
      assert.equal(c.Ready, undefined, `${phase}: kstatus takes Ready=False for InProgress`);
    }
  });

  it('while Pending, is Stalled on what only the user can change and Reconciling on what a retry may fix', () => {
    const waitingOn = (reason: string) =>
      byType(
        deriveConditions(
          {
            phase: 'Pending',
            containerStatuses: [
              { ...running, imageID: '', ready: false, state: { waiting: { reason, message: 'why' } } },
            ],
          },
          1,
        ),
      );
    for (const reason of [
      'InvalidImageName',
      'ErrImageNeverPull',
      'CreateContainerConfigError',
      'CreateContainerError',
    ]) {
      const c = waitingOn(reason);
      assert.equal(c.Stalled?.reason, reason);
      assert.equal(c.Stalled?.message, 'Container c: why');
      assert.equal(c.Reconciling, undefined, reason);
      assert.equal(c.Ready?.reason, reason);
    }
    for (const reason of ['ErrImagePull', 'ImagePullBackOff']) {
      const c = waitingOn(reason);
      assert.equal(c.Reconciling?.reason, reason);
      assert.equal(c.Stalled, undefined, reason);
    }
  });
});
