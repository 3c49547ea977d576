import assert from 'node:assert/strict';
import { SandpitError } from '../../lib/errors.js';
import { ImageError, LayerRefusedError } from '../images/errors.js';
import { NetworkError, NetworkReason } from '../network/status.js';
import { RuntimeError, type CreateStage } from '../runtime/errors.js';
import { classifyCreateFailure, creatingObservation, failureObservation, retryDelayMs } from './failures.js';

const tagged = (err: Error, container: string, stage: CreateStage) => RuntimeError.inCreate(err, container, stage);
const site = { step: 'pull', message: 'nope' };

describe('unit: a failed create as kubelet words it', () => {
  const cases: [
    string,
    unknown,
    { reason: string; retryable: boolean; image?: boolean; network?: boolean; container?: string },
  ][] = [
    [
      'a missing manifest',
      tagged(new ImageError({ ...site, reason: 'ManifestUnknown', retryable: false }), 'app', 'image'),
      { reason: 'ErrImagePull', retryable: true, image: true, container: 'app' },
    ],
    [
      'a registry that is down',
      tagged(new ImageError({ ...site, reason: 'ErrImagePull' }), 'app', 'image'),
      { reason: 'ErrImagePull', retryable: true, image: true },
    ],
    [
      'refused credentials',
      tagged(new ImageError({ ...site, reason: 'Unauthorized', retryable: false }), 'app', 'image'),
      { reason: 'ErrImagePull', retryable: true, image: true },
    ],
    [
      'an unsafe layer',
      tagged(new LayerRefusedError('../x', 'path traversal'), 'app', 'image'),
      { reason: 'ErrImagePull', retryable: true, image: true },
    ],
    [
      'a pull in back-off',
      tagged(new ImageError({ ...site, reason: 'ImagePullBackOff' }), 'app', 'image'),
      { reason: 'ImagePullBackOff', retryable: true, image: true },
    ],
    [
      'an invalid name',
      tagged(new ImageError({ ...site, reason: 'InvalidImageName', retryable: false }), 'app', 'image'),
      { reason: 'InvalidImageName', retryable: false, image: true },
    ],
    [
      'policy Never',
      tagged(new ImageError({ ...site, reason: 'ErrImageNeverPull', retryable: false }), 'app', 'image'),
      { reason: 'ErrImageNeverPull', retryable: false, image: true },
    ],
    [
      'a dir: image that is not there',
      tagged(new SandpitError(site), 'app', 'image'),
      { reason: 'ErrImagePull', retryable: true, image: true },
    ],
    [
      'runAsNonRoot against root',
      new RuntimeError({ ...site, reason: 'CreateContainerConfigError', container: 'app' }),
      { reason: 'CreateContainerConfigError', retryable: false, container: 'app' },
    ],
    [
      'a capability the node refuses',
      tagged(
        new SandpitError({ step: 'capabilities', message: 'capability SYS_ADMIN is not allowed on this node' }),
        'app',
        'config',
      ),
      { reason: 'CreateContainerConfigError', retryable: false, container: 'app' },
    ],
    [
      'a launch that fails',
      tagged(new SandpitError({ step: 'spawn', message: 'ENOTDIR' }), 'app', 'start'),
      { reason: 'RunContainerError', retryable: false, container: 'app' },
    ],
    [
      'a hostPort in use',
      new NetworkError(NetworkReason.HostPortInUse, site),
      { reason: 'HostPortInUse', retryable: true, network: true },
    ],
    [
      'a bad network spec',
      new NetworkError(NetworkReason.InvalidNetworkSpec, site),
      { reason: 'InvalidNetworkSpec', retryable: false, network: true },
    ],
    [
      'no user-namespace block left',
      new SandpitError({ ...site, reason: 'UserNamespaceRangeExhausted' }),
      { reason: 'UserNamespaceRangeExhausted', retryable: true },
    ],
    [
      'a cgroup write the kernel refused',
      new SandpitError({ ...site, code: 'EINVAL' }),
      { reason: 'FailedCreateSandbox', retryable: true },
    ],
  ];
  for (const [what, err, want] of cases) {
    it(`${what}: ${want.reason}, ${want.retryable ? 'retried' : 'not retried'}`, () => {
      const f = classifyCreateFailure(err);
      assert.equal(f.reason, want.reason);
      assert.equal(f.retryable, want.retryable);
      assert.equal(f.image, want.image ?? false);
      assert.equal(f.network, want.network ?? false);
      if (want.container) assert.equal(f.container, want.container);
      assert.equal(f.message, (err as Error).message);
    });
  }

  it('backs off as kubelet pulls: 10 s doubling to 5 min', () => {
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 7, 20].map((n) => retryDelayMs(n)),
      [10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000, 300_000],
    );
  });
});

describe('unit: the status of a failed create', () => {
  const ref = { id: 'x', namespace: 'ns', name: 'web', uid: 'u' };
  const spec = {
    containers: [
      { name: 'side', image: 'busybox' },
      { name: 'app', image: 'r/app:1' },
    ],
  } as Parameters<typeof failureObservation>[1];
  const byType = (o: ReturnType<typeof failureObservation>) =>
    Object.fromEntries((o.status.conditions ?? []).map((c) => [c.type, c]));
  const states = (o: ReturnType<typeof failureObservation>) =>
    o.status.containerStatuses?.map((c) => [c.name, c.state?.waiting?.reason]);

  const rows: [
    string,
    Parameters<typeof failureObservation>[3],
    boolean,
    { waiting: [string, string | undefined][]; reason: string; conditions: Record<string, string> },
  ][] = [
    [
      'a pull failure',
      {
        reason: 'ErrImagePull',
        container: 'app',
        message: 'pull: not found',
        retryable: true,
        image: true,
        network: false,
      },
      false,
      {
        waiting: [
          ['side', 'ContainerCreating'],
          ['app', 'ErrImagePull'],
        ],
        reason: 'ErrImagePull',
        conditions: {
          ImagesReady: 'False/ErrImagePull',
          Ready: 'False/ErrImagePull',
          Reconciling: 'True/ErrImagePull',
        },
      },
    ],
    [
      'the same while backing off',
      {
        reason: 'ErrImagePull',
        container: 'app',
        message: 'pull: not found',
        retryable: true,
        image: true,
        network: false,
      },
      true,
      {
        waiting: [
          ['side', 'ContainerCreating'],
          ['app', 'ImagePullBackOff'],
        ],
        reason: 'ImagePullBackOff',
        conditions: {
          ImagesReady: 'False/ImagePullBackOff',
          Ready: 'False/ImagePullBackOff',
          Reconciling: 'True/ImagePullBackOff',
        },
      },
    ],
    [
      'an invalid name',
      { reason: 'InvalidImageName', container: 'app', message: 'bad', retryable: false, image: true, network: false },
      true,
      {
        waiting: [
          ['side', 'ContainerCreating'],
          ['app', 'InvalidImageName'],
        ],
        reason: 'InvalidImageName',
        conditions: {
          ImagesReady: 'False/InvalidImageName',
          Ready: 'False/InvalidImageName',
          Stalled: 'True/InvalidImageName',
        },
      },
    ],
    [
      'a config error',
      {
        reason: 'CreateContainerConfigError',
        container: 'side',
        message: 'root',
        retryable: false,
        image: false,
        network: false,
      },
      false,
      {
        waiting: [
          ['side', 'CreateContainerConfigError'],
          ['app', 'ContainerCreating'],
        ],
        reason: 'CreateContainerConfigError',
        conditions: { Ready: 'False/CreateContainerConfigError', Stalled: 'True/CreateContainerConfigError' },
      },
    ],
    [
      'a network failure',
      { reason: 'HostPortInUse', message: 'port 80', retryable: true, image: false, network: true },
      false,
      {
        waiting: [
          ['side', 'ContainerCreating'],
          ['app', 'ContainerCreating'],
        ],
        reason: 'HostPortInUse',
        conditions: {
          NetworkReady: 'False/HostPortInUse',
          Ready: 'False/HostPortInUse',
          Reconciling: 'True/HostPortInUse',
        },
      },
    ],
  ];
  for (const [what, failure, backingOff, want] of rows) {
    it(what, () => {
      const o = failureObservation(ref, spec, 4, failure, { backingOff });
      assert.equal(o.status.phase, 'Pending');
      assert.equal(o.generation, 4);
      assert.deepEqual(states(o), want.waiting);
      assert.equal(o.status.reason, want.reason);
      assert.deepEqual(
        Object.fromEntries(Object.entries(byType(o)).map(([t, c]) => [t, `${c.status}/${c.reason}`])),
        want.conditions,
      );
      for (const c of o.status.conditions ?? []) assert.equal(c.observedGeneration, 4);
      if (failure.container) assert.match(o.status.message ?? '', new RegExp(`^container ${failure.container}: `));
    });
  }

  it('names the image and the last error while backing off', () => {
    const o = failureObservation(
      ref,
      spec,
      1,
      {
        reason: 'ErrImagePull',
        container: 'app',
        message: 'pull: manifest unknown',
        retryable: true,
        image: true,
        network: false,
      },
      { backingOff: true },
    );
    assert.equal(
      o.status.containerStatuses?.[1]?.state?.waiting?.message,
      'Back-off pulling image "r/app:1": pull: manifest unknown',
    );
  });

  it('says ContainerCreating and Reconciling for a create just accepted', () => {
    const o = creatingObservation(ref, spec, 2);
    assert.deepEqual(
      o.status.containerStatuses?.map((c) => c.state?.waiting?.reason),
      ['ContainerCreating', 'ContainerCreating'],
    );
    assert.deepEqual(
      o.status.conditions?.map((c) => `${c.type}=${c.status}`),
      ['Ready=False', 'Reconciling=True'],
    );
  });
});
