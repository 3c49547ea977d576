import assert from 'node:assert/strict';
import { SandpitError } from '../../lib/errors.js';
import { NetworkError, NetworkReason } from '../network/status.js';
import { parsePutBody, runtimeReason } from './router.js';

const sandbox = (over: Record<string, unknown> = {}) => ({
  apiVersion: 'sandpit.dev/v1alpha1',
  kind: 'Sandbox',
  metadata: { name: 'web', namespace: 'team', uid: 'u-1', generation: 1 },
  spec: { containers: [{ name: 'c', image: 'busybox' }] },
  ...over,
});

describe('unit: agent API request checks', () => {
  it('accepts a valid Sandbox for the path UID, applying schema defaults', () => {
    const sbx = parsePutBody('u-1', sandbox(), 'node-a');
    assert.equal(sbx.spec.restartPolicy, 'Always');
  });

  it('refuses an invalid spec with the schema message and reason Invalid', () => {
    assert.throws(
      () => parsePutBody('u-1', sandbox({ spec: { containers: [] } }), 'node-a'),
      (e: { status: number; reason: string; message: string }) => {
        assert.equal(e.status, 400);
        assert.equal(e.reason, 'Invalid');
        assert.match(e.message, /spec\.containers/);
        return true;
      },
    );
  });

  it('refuses a UID that differs from the path', () => {
    assert.throws(() => parsePutBody('u-2', sandbox(), 'node-a'), { reason: 'UIDMismatch' });
  });

  it('refuses a sandbox bound to another node', () => {
    assert.throws(() => parsePutBody('u-1', sandbox({ status: { nodeName: 'node-b' } }), 'node-a'), {
      reason: 'WrongNode',
      status: 409,
    });
  });
});

describe('unit: agent API error reasons', () => {
  it('passes a subsystem reason through, so the controller sees HostPortInUse rather than RuntimeError', () => {
    const err = new NetworkError(NetworkReason.HostPortInUse, {
      step: 'publish ports',
      sandbox: 'team/web',
      message: 'hostPort 9090/TCP is in use',
    });
    assert.equal(runtimeReason(err), 'HostPortInUse');
  });

  it('falls back to the errno name, then to RuntimeError', () => {
    assert.equal(runtimeReason(new SandpitError({ step: 'mount', message: 'x', code: 'EPERM' })), 'EPERM');
    assert.equal(runtimeReason(new SandpitError({ step: 'mount', message: 'x' })), 'RuntimeError');
  });
});
