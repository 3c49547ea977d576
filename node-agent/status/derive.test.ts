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
    assert.equal(byType(deriveConditions({ phase: 'Running', containerStatuses: [running] }, 3)).NetworkReady?.reason, 'LoopbackOnly', 'mode None');
    assert.equal(c.Ready?.observedGeneration, 3);
    assert.equal(c.Reconciling, undefined, 'abnormal-true conditions are absent when false');
    assert.equal(c.Stalled, undefined);
  });

  it('is Reconciling while created, with the pull reason on ImagesReady', () => {
    const c = byType(deriveConditions({ phase: 'Pending', containerStatuses: [{ ...running, imageID: '', ready: false, state: { waiting: { reason: 'ImagePullBackOff', message: 'no such image' } } }] }, 1));
    assert.equal(c.Reconciling?.status, 'True');
    assert.equal(c.ImagesReady?.reason, 'ImagePullBackOff');
    assert.equal(c.Ready?.status, 'False');
  });

  it('names the containers that are not running', () => {
    const c = byType(deriveConditions({ phase: 'Running', containerStatuses: [running, { ...running, name: 'side', ready: false }] }, 1));
    assert.equal(c.Ready?.reason, 'ContainersNotReady');
    assert.match(c.Ready?.message ?? '', /side/);
  });

  it('is Stalled when failed, and not Ready when paused', () => {
    assert.equal(byType(deriveConditions({ phase: 'Failed', reason: 'DeadlineExceeded', containerStatuses: [running] }, 1)).Stalled?.reason, 'DeadlineExceeded');
    assert.equal(byType(deriveConditions({ phase: 'Paused', containerStatuses: [running] }, 1)).Ready?.reason, 'Paused');
  });
});
