import assert from 'node:assert/strict';
import { E2ECluster, leakProbe, runtimeEntries } from './harness/cluster.js';
import { engineFootprint, hostNetSnapshot } from './harness/engine.js';
import { APP_DIR } from './harness/image.js';
import { waitFor } from '../cluster/sandpit-processes.js';

/*
 * The multi-node e2e tier: a control plane and two controller replicas (leader
 * election) on the host, three privileged node containers on the harness's
 * own Docker engine, each running the agent (test/e2e/harness/). The
 * scenarios share one cluster and run in order; each leaves it converged for
 * the next. See the README's e2e section for what is covered and the timings.
 *
 * SANDPIT_E2E_CHURN sets how many sandboxes the churn scenario creates and
 * deletes (each is two operations); the default fits the CI budget.
 */

interface Sbx {
  metadata: { name: string; uid: string; generation: number };
  spec: { restartPolicy?: string };
  status?: {
    phase?: string;
    nodeName?: string;
    reason?: string;
    sandboxIP?: string;
    conditions?: { type: string; status: string; reason?: string }[];
  };
}

const CHURN = Number(process.env.SANDPIT_E2E_CHURN ?? 500);

describe('e2e: a three-node sandpit cluster on Docker', function () {
  this.timeout(600_000);
  const ns = 'e2e-multi';
  let c: E2ECluster;
  const dead = new Set<string>();
  const baseline = new Map<string, Record<string, string>>();

  const manifest = (name: string, spec: Record<string, unknown> = {}) => ({
    apiVersion: 'sandpit.dev/v1alpha1',
    kind: 'Sandbox',
    metadata: { name, namespace: ns, labels: { 'sandpit.test/group': String(spec.group ?? 'main') } },
    spec: {
      terminationGracePeriodSeconds: 1,
      containers: [{ name: 'main', image: `dir:${c.rootfs}`, command: ['/bin/sleep', '3600'] }],
      ...Object.fromEntries(Object.entries(spec).filter(([k]) => k !== 'group')),
    },
  });
  const apply = async (items: object[]) =>
    c.cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items }) });
  const list = async (): Promise<Sbx[]> =>
    (JSON.parse((await c.cp.kubectl(['-n', ns, 'get', 'sandboxes', '-o', 'json'])).stdout) as { items: Sbx[] }).items;
  const ready = (s: Sbx) => s.status?.conditions?.find((x) => x.type === 'Ready')?.status === 'True';
  const liveNodes = () => [...c.nodes.values()].filter((n) => !dead.has(n.name));
  const pidAlive = async (node: string, pid: number) =>
    (await c.execResult(node, ['kill', '-0', String(pid)])).code === 0;

  /** Every sandbox the cluster runs is on exactly its bound node, and no node runs one the cluster has not bound there. */
  async function converged(): Promise<string | undefined> {
    const items = await list();
    const byUid = new Map(items.map((s) => [s.metadata.uid, s]));
    const where = new Map<string, string[]>();
    for (const n of liveNodes()) {
      for (const e of runtimeEntries(n)) {
        if (e.phase === 'Deleting') continue;
        where.set(e.uid, [...(where.get(e.uid) ?? []), n.name]);
      }
    }
    for (const [uid, nodes] of where) {
      if (nodes.length > 1) return `sandbox ${uid} runs on ${nodes.join(' and ')}`;
      const s = byUid.get(uid);
      if (!s) return `node ${nodes[0]} runs ${uid}, which the cluster no longer has`;
      if (s.status?.nodeName !== nodes[0])
        return `node ${nodes[0]} runs ${s.metadata.name}, bound to ${s.status?.nodeName ?? 'no node'}`;
    }
    for (const s of items) {
      if (!ready(s)) continue;
      const nodes = where.get(s.metadata.uid) ?? [];
      if (nodes.length !== 1) return `${s.metadata.name} is Ready but runs on [${nodes.join(', ')}]`;
    }
    return undefined;
  }
  const waitConverged = async (what: string, timeoutMs = 90_000) => {
    let last: string | undefined;
    await waitFor(
      what,
      async () => {
        last = await converged();
        return last === undefined;
      },
      timeoutMs,
      1000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}: ${last}`);
    });
  };
  const waitAllReady = async (what: string, filter: (s: Sbx) => boolean = () => true, timeoutMs = 180_000) =>
    waitFor(
      what,
      async () => {
        const items = (await list()).filter(filter);
        return items.length > 0 && items.every(ready) ? items : undefined;
      },
      timeoutMs,
      1000,
    );

  before(async function () {
    this.timeout(900_000);
    c = await E2ECluster.start({ id: (process.pid % 1679616).toString(36).padStart(4, '0'), nodes: 3, controllers: 2 });
    await c.cp.kubectl(['create', 'namespace', ns]);
    for (const n of c.nodes.values()) baseline.set(n.name, await leakProbe(c, n.name));
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && c) process.stderr.write(`${await c.diagnostics()}\n`);
  });

  after(async function () {
    this.timeout(300_000);
    if (!c) return;
    await c.stop();
    assert.deepEqual(c.engine.leftovers(), [], 'the engine left nothing behind');
    assert.deepEqual(
      engineFootprint(hostNetSnapshot(), [c.network]),
      engineFootprint(c.engine.before, [c.network]),
      'host FORWARD policy, ip_forward, br_netfilter and rules unchanged',
    );
  });

  it('spreads 30 sandboxes over the 3 nodes, each on exactly one node', async () => {
    await apply(Array.from({ length: 30 }, (_, i) => manifest(`s-${String(i).padStart(2, '0')}`)));
    const items = await waitAllReady('30 sandboxes Ready', (s) => s.metadata.name.startsWith('s-'), 300_000);
    assert.equal(items.length, 30);
    const per = new Map<string, number>();
    for (const s of items) per.set(s.status!.nodeName!, (per.get(s.status!.nodeName!) ?? 0) + 1);
    assert.deepEqual(
      [...per.keys()].sort(),
      [...c.nodes.keys()].sort(),
      `every node got sandboxes: ${JSON.stringify([...per])}`,
    );
    for (const [node, n] of per) assert.ok(n >= 7 && n <= 13, `${node} runs ${n} of 30: the scheduler spreads load`);
    for (const s of items) {
      const node = c.node(s.status!.nodeName!);
      assert.ok(
        s.status?.sandboxIP?.startsWith(`10.88.${node.index}.`),
        `${s.metadata.name}'s IP ${s.status?.sandboxIP} is in ${node.name}'s subnet`,
      );
    }
    await waitConverged('each sandbox on exactly its node');
  });

  it('carries traffic between sandboxes on different nodes through published ports; sandbox addresses stay node-local even with routes', async () => {
    await apply([
      manifest('web-n2', {
        nodeName: 'e2e-n2',
        network: { mode: 'Bridge', ports: [{ name: 'http', containerPort: 8080, hostPort: 18080 }] },
        containers: [
          { name: 'web', image: `dir:${c.rootfs}`, command: ['/bin/httpd', '-f', '-p', '8080', '-h', '/etc'] },
        ],
      }),
    ]);
    const [web] = await waitAllReady('web-n2 Ready', (s) => s.metadata.name === 'web-n2');
    try {
      const client = runtimeEntries(c.node('e2e-n1')).find((e) => e.pid1 && e.phase !== 'Deleting')!;
      assert.ok(client, 'a sandbox runs on e2e-n1');
      // An HTTP request from inside that sandbox's network namespace (busybox nc: this busybox's wget crashes here).
      const get = (ip: string, port: number) =>
        c.execResult('e2e-n1', [
          'sh',
          '-c',
          `printf 'GET /passwd HTTP/1.0\\r\\n\\r\\n' | nsenter -t ${client.pid1} -n busybox nc -w 5 ${ip} ${port}`,
        ]);
      const n2 = c.node('e2e-n2');
      const r = await get(n2.ip, 18080);
      assert.equal(
        r.code,
        0,
        `a request from a sandbox on e2e-n1 to the port web-n2 publishes on e2e-n2 (${n2.ip}:18080): ${r.stderr}`,
      );
      assert.match(r.stdout, /^HTTP\/1\.[01] 200/);
      assert.match(r.stdout, /^root:x:0:0/m);
      // The sandbox address itself: e2e-n1 routes the subnet to e2e-n2, and e2e-n2's agent
      // drops forwarded traffic to its sandboxes that is not a published port or a reply.
      const ip = web!.status!.sandboxIP!;
      assert.match(
        await c.exec('e2e-n1', ['ip', 'route', 'get', ip]),
        new RegExp(`via ${n2.ip.replace(/\./g, '\\.')}`),
        'the route between the subnets is there',
      );
      const direct = await get(ip, 8080);
      assert.notEqual(direct.code, 0, "no direct access to another node's sandbox address");
      assert.doesNotMatch(direct.stdout, /root:x:0:0/);
    } finally {
      await c.cp.kubectl(['-n', ns, 'delete', 'sandbox', 'web-n2', '--timeout=60s']);
    }
  });

  it('upgrades the agent on a node in place: its running sandboxes are untouched (same PIDs)', async () => {
    const node = 'e2e-n1';
    const before = runtimeEntries(c.node(node)).filter((e) => e.phase !== 'Deleting');
    assert.ok(before.length >= 5, `${node} runs sandboxes (${before.length})`);
    // The "new build": the image's agent copied to a second directory inside the node with another version.
    const next = '/opt/sandpit-next';
    await c.exec(node, [
      'sh',
      '-c',
      `rm -rf ${next} && cp -a ${APP_DIR} ${next} && sed -i 's/"version": "[^"]*"/"version": "0.1.0-e2e-upgrade"/' ${next}/package.json`,
    ]);
    await c.stopAgent(node, 'TERM');
    for (const e of before) assert.ok(await pidAlive(node, e.pid1!), `${e.name} keeps running while no agent runs`);
    await c.startAgent(c.node(node), next);
    await waitFor(
      'the node reports the new agent version',
      async () => {
        const v = await c.cp.kubectl(['get', 'sandboxnode', node, '-o', 'jsonpath={.status.agentVersion}']);
        return v.stdout.trim() === '0.1.0-e2e-upgrade';
      },
      60_000,
      500,
    );
    await c.waitNodeReady(node);
    const after = runtimeEntries(c.node(node)).filter((e) => e.phase !== 'Deleting');
    assert.deepEqual(
      after.map((e) => [e.uid, e.pid1]).sort(),
      before.map((e) => [e.uid, e.pid1]).sort(),
      'same sandboxes, same PID 1s',
    );
    for (const e of after) assert.ok(await pidAlive(node, e.pid1!), `${e.name} PID 1 ${e.pid1} still runs`);
    const items = await waitAllReady('every sandbox still Ready', (s) => s.metadata.name.startsWith('s-'));
    assert.equal(items.length, 30);
  });

  it('fails over when the controller leader is killed, without duplicating sandboxes', async () => {
    const leader = await waitFor('a leader', () => c.leader(), 30_000);
    const victim = c.controllers.find((p) => p.identity === leader)!;
    assert.ok(victim, `the leader ${leader} is one of ours`);
    await victim.stop('SIGKILL');
    const next = await waitFor(
      'another replica takes the lease',
      async () => {
        const l = await c.leader();
        return l && l !== leader ? l : undefined;
      },
      60_000,
      500,
    );
    assert.ok(c.controllers.some((p) => p.identity === next));
    await apply(Array.from({ length: 3 }, (_, i) => manifest(`f-${i}`)));
    await waitAllReady('sandboxes created after the failover are Ready', (s) => s.metadata.name.startsWith('f-'));
    await c.restartController(leader!);
    await waitConverged('no duplicates after the failover');
    assert.equal(
      (await list()).filter((s) => s.metadata.name.startsWith('s-') || s.metadata.name.startsWith('f-')).length,
      33,
    );
  });

  it("heals a network partition without split brain: the cut-off node's sandboxes move, and the old copies go when it returns", async () => {
    const node = 'e2e-n3';
    const moved = (await list()).filter((s) => s.status?.nodeName === node).map((s) => s.metadata.uid);
    assert.ok(moved.length > 0, `${node} runs sandboxes`);
    const oldCopies = runtimeEntries(c.node(node)).filter((e) => moved.includes(e.uid));
    await c.disconnect(node);
    try {
      // Lease expiry (6 s) + node-lost grace (10 s), then rescheduled onto the others.
      await waitFor(
        `${node}'s sandboxes rescheduled elsewhere and Ready`,
        async () => {
          const items = (await list()).filter((s) => moved.includes(s.metadata.uid));
          return items.length === moved.length && items.every((s) => ready(s) && s.status?.nodeName !== node)
            ? items
            : undefined;
        },
        180_000,
        1000,
      );
      // While cut off, the old copies still run on the node: the cluster no longer counts them.
      assert.ok(
        (await Promise.all(oldCopies.map((e) => pidAlive(node, e.pid1!)))).some(Boolean),
        'the partitioned node cannot be told, so its copies still run',
      );
    } finally {
      await c.reconnect(node);
    }
    await c.waitNodeReady(node);
    await waitFor(
      `${node} deletes the copies the cluster moved away`,
      async () => {
        const left = runtimeEntries(c.node(node)).filter((e) => moved.includes(e.uid) && e.phase !== 'Deleting');
        return left.length === 0;
      },
      90_000,
      1000,
    );
    for (const e of oldCopies)
      await waitFor(`old copy ${e.name} gone`, async () => !(await pidAlive(node, e.pid1!)), 30_000, 500);
    await waitConverged('no duplicates after healing');
    const uids = (await list()).map((s) => s.metadata.uid);
    assert.equal(new Set(uids).size, uids.length);
  });

  it('a killed node: its sandboxes are recreated elsewhere (restartPolicy Always), restartPolicy Never ends Failed with NodeLost', async () => {
    const node = 'e2e-n2';
    await apply([manifest('never-n2', { restartPolicy: 'Never', nodeSelector: { 'sandpit.test/node': node } })]);
    await waitAllReady('never-n2 Ready', (s) => s.metadata.name === 'never-n2');
    const onNode = (await list())
      .filter(
        (s) =>
          s.status?.nodeName === node && s.metadata.name !== 'never-n2' && !(s.spec as { nodeName?: string }).nodeName,
      )
      .map((s) => s.metadata.uid);
    assert.ok(onNode.length > 0, `${node} runs sandboxes`);
    await c.killNode(node);
    dead.add(node);
    const lost = await waitFor(
      'never-n2 Failed with NodeLost',
      async () => {
        const s = (await list()).find((x) => x.metadata.name === 'never-n2');
        return s?.status?.phase === 'Failed' && s.status.reason === 'NodeLost' ? s : undefined;
      },
      120_000,
      1000,
    );
    assert.equal(lost.status?.nodeName, node, 'restartPolicy Never stays bound to the lost node');
    const moved = await waitFor(
      `${node}'s other sandboxes Ready on other nodes`,
      async () => {
        const items = (await list()).filter((s) => onNode.includes(s.metadata.uid));
        return items.length === onNode.length && items.every((s) => ready(s) && s.status?.nodeName !== node)
          ? items
          : undefined;
      },
      180_000,
      1000,
    );
    for (const s of moved) assert.ok(['e2e-n1', 'e2e-n3'].includes(s.status!.nodeName!));
    await waitConverged('every sandbox once, on a live node');
    await c.cp.kubectl(['-n', ns, 'delete', 'sandbox', 'never-n2', '--timeout=60s']);
  });

  it(`${CHURN} sandboxes created and deleted across the cluster (${2 * CHURN} operations) leave nothing behind on any node`, async () => {
    // A fresh node takes the dead one's place, so the churn spreads over three nodes again.
    const fresh = await c.addNode(4);
    for (const n of liveNodes())
      if (n.name !== fresh.name) await c.exec(n.name, ['ip', 'route', 'replace', fresh.subnet, 'via', fresh.ip]);
    await c.addRoutes(fresh);
    await c.waitNodeReady(fresh.name);
    baseline.set(fresh.name, await leakProbe(c, fresh.name));
    // Everything from the earlier scenarios goes first.
    await c.cp.kubectl(['-n', ns, 'delete', 'sandboxes', '--all', '--timeout=180s']);
    const start = Date.now();
    const batch = 50;
    for (let done = 0; done < CHURN; done += batch) {
      const n = Math.min(batch, CHURN - done);
      await apply(Array.from({ length: n }, (_, i) => manifest(`churn-${done + i}`, { group: 'churn' })));
      await waitAllReady(`churn batch ${done / batch} Ready`, (s) => s.metadata.name.startsWith('churn-'), 300_000);
      await c.cp.kubectl(['-n', ns, 'delete', 'sandboxes', '-l', 'sandpit.test/group=churn', '--timeout=180s']);
    }
    const seconds = (Date.now() - start) / 1000;
    process.stderr.write(
      `e2e churn: ${CHURN} creates + ${CHURN} deletes over ${liveNodes().length} nodes in ${seconds.toFixed(1)} s\n`,
    );
    for (const n of liveNodes()) {
      const want = baseline.get(n.name)!;
      await waitFor(
        `${n.name} back to its baseline`,
        async () => JSON.stringify(await leakProbe(c, n.name)) === JSON.stringify(want),
        60_000,
        1000,
      ).catch(async (err: Error) => {
        throw new Error(
          `${err.message}\nbaseline: ${JSON.stringify(want)}\nnow:      ${JSON.stringify(await leakProbe(c, n.name))}`,
        );
      });
    }
    assert.equal((await list()).length, 0);
  });
});
