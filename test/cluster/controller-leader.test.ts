import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sharedControlPlane, type ControlPlane } from '../harness/control-plane.js';
import {
  applyCRDs,
  cleanUp,
  condition,
  getSandbox,
  probe,
  sandboxManifest,
  startController,
  waitFor,
  type ControllerProcess,
} from './sandpit-processes.js';

/*
 * Two controller processes with Lease leader election (15 s / 10 s / 2 s):
 * one leads, the other stands by warm; a killed leader is replaced once its
 * lease runs out, a SIGTERMed leader hands over at once. Failover times are
 * measured by bench/controller-failover.ts, not asserted here.
 */
describe('cluster: controller leader election', function () {
  this.timeout(240_000);
  const leNs = 'sandpit-le';
  const ns = 'le-test';
  let cp: ControlPlane;
  const procs: ControllerProcess[] = [];

  const holder = async () => {
    const r = await cp.kubectlResult([
      '-n',
      leNs,
      'get',
      'lease',
      'sandpit-controller',
      '-o',
      'jsonpath={.spec.holderIdentity}',
    ]);
    return r.code === 0 ? r.stdout.trim() : '';
  };
  const start = async (id: string) => {
    const p = await startController(cp, id, ['--namespace', leNs]);
    procs.push(p);
    return p;
  };
  const scheduledFalse = (name: string) =>
    waitFor(
      `${name} reconciled`,
      async () => condition(await getSandbox(cp, ns, name), 'Scheduled')?.status === 'False',
      60_000,
    );

  before(async () => {
    cp = await sharedControlPlane();
    await applyCRDs(cp);
    await cp.kubectl(['create', 'namespace', leNs]).catch(() => undefined);
    await cp.kubectl(['create', 'namespace', ns]).catch(() => undefined);
  });

  after(async () => {
    for (const p of procs) await p.stop('SIGKILL');
    await cleanUp(cp, [ns], []);
  });

  it('elects exactly one leader of two replicas; only the leader reconciles', async () => {
    const a = await start('replica-a');
    const b = await start('replica-b');
    const leader = await waitFor('a leader', async () => (await holder()) || undefined);
    assert.ok([a.identity, b.identity].includes(leader));
    await cp.kubectl(['apply', '-f', '-'], {
      input: sandboxManifest(ns, 'first', { nodeSelector: { 'sandpit.test/none': 'x' } }),
    });
    await scheduledFalse('first');
    for (const p of [a, b])
      await waitFor(`${p.identity} ready`, async () => (await probe(p.healthPort, '/readyz')) === 200);
    const metric = async (p: ControllerProcess) => {
      const text = await (await fetch(`http://127.0.0.1:${p.healthPort}/metrics`)).text();
      return /leader_election_master_status\{name="sandpit-controller"\} (\d)/.exec(text)?.[1];
    };
    const statuses = [await metric(a), await metric(b)];
    assert.deepEqual(statuses.sort(), ['0', '1'], 'one replica reports itself master, the other backup');
  });

  it('fails over to the standby when the leader is killed (after the lease expires)', async () => {
    const before = await holder();
    const leader = procs.find((p) => p.identity === before)!;
    const standby = procs.find((p) => p.identity !== before && p.child.exitCode === null)!;
    const killedAt = Date.now();
    await leader.stop('SIGKILL');
    const next = await waitFor(
      'a new leader',
      async () => {
        const h = await holder();
        return h && h !== before ? h : undefined;
      },
      60_000,
    );
    const failoverMs = Date.now() - killedAt;
    assert.equal(next, standby.identity);
    await writeFile(join(cp.dir, 'failover-kill.json'), JSON.stringify({ failoverMs }));
    await cp.kubectl(['apply', '-f', '-'], {
      input: sandboxManifest(ns, 'after-kill', { nodeSelector: { 'sandpit.test/none': 'x' } }),
    });
    await scheduledFalse('after-kill');
  });

  it('hands over at once when the leader is stopped with SIGTERM (the lease is released)', async () => {
    const c = await start('replica-c');
    await waitFor('replica-c warm', async () => (await probe(c.healthPort, '/readyz')) === 200);
    const before = await holder();
    const leader = procs.find((p) => p.identity === before)!;
    assert.equal(await leader.stop('SIGTERM'), 0, 'a graceful stop exits 0');
    const next = await waitFor(
      'the standby leading',
      async () => {
        const h = await holder();
        return h && h !== before ? h : undefined;
      },
      30_000,
    );
    assert.equal(next, c.identity);
    await cp.kubectl(['apply', '-f', '-'], {
      input: sandboxManifest(ns, 'after-term', { nodeSelector: { 'sandpit.test/none': 'x' } }),
    });
    await scheduledFalse('after-term');
  });
});
