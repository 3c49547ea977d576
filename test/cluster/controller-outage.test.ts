import assert from 'node:assert/strict';
import { sharedControlPlane, type ControlPlane } from '../harness/control-plane.js';
import { applyCRDs, cleanUp, condition, controllerLog, getSandbox, probe, sandboxManifest, sleep, startController, waitFor, type ControllerProcess } from './sandpit-processes.js';

/*
 * The API server goes away under a running controller and comes back: the
 * informers must restart on their own (client-node's would stop for good on
 * the first error) and the controller must converge on what changed while it
 * was blind, without a restart of its own.
 */
describe('cluster tier: controller survives an API server outage', function () {
  this.timeout(240_000);
  const ns = 'outage-test';
  let cp: ControlPlane;
  let controller: ControllerProcess;
  const unschedulable = { nodeSelector: { 'sandpit.test/none': 'x' } };

  before(async () => {
    cp = await sharedControlPlane();
    await applyCRDs(cp);
    await cp.kubectl(['create', 'namespace', ns]).catch(() => undefined);
    await cp.kubectl(['create', 'namespace', 'sandpit-outage']).catch(() => undefined);
    controller = await startController(cp, 'outage', ['--namespace', 'sandpit-outage', '--leader-elect', 'false']);
    await cp.kubectl(['apply', '-f', '-'], { input: sandboxManifest(ns, 'before', unschedulable) });
    await waitFor('before reconciled', async () => condition(await getSandbox(cp, ns, 'before'), 'Scheduled')?.status === 'False');
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(`controller log tail:\n${(await controllerLog(controller)).slice(-6000)}\n`);
  });

  after(async () => {
    await cp.startApiServer();
    await controller?.stop();
    await cleanUp(cp, [ns], []);
  });

  it('keeps running through 30 s without an API server, reports not ready, then converges', async () => {
    await cp.stopApiServer();
    await sleep(30_000);
    assert.equal(controller.child.exitCode, null, 'the controller does not crash without an API server');
    assert.equal(await probe(controller.healthPort, '/healthz'), 200, 'liveness holds: restarting would not help');
    await cp.startApiServer();
    await cp.kubectl(['apply', '-f', '-'], { input: sandboxManifest(ns, 'after', unschedulable) });
    await cp.kubectl(['-n', ns, 'delete', 'sandbox', 'before', '--wait=false']);
    const s = await waitFor('after reconciled', async () => {
      const s = await getSandbox(cp, ns, 'after');
      return condition(s, 'Scheduled')?.status === 'False' ? s : undefined;
    }, 90_000);
    assert.deepEqual(s.metadata.finalizers, ['sandpit.dev/cleanup']);
    await waitFor('before finalized and gone', async () => (await getSandbox(cp, ns, 'before')) === undefined, 60_000);
    await waitFor('ready again', async () => (await probe(controller.healthPort, '/readyz')) === 200, 30_000);
    assert.match(await controllerLog(controller), /Informer lost its stream; restarting/);
  });
});
