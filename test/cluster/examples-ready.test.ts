import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { get as httpGet } from 'node:http';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { createLogger } from '../../lib/log.js';
import { sandboxIdFor } from '../../node-agent/contracts.js';
import { hostVethName } from '../../node-agent/network/config.js';
import { BridgeNetworkProvider } from '../../node-agent/network/provider.js';
import { freePort, sharedControlPlane, type ControlPlane } from '../harness/control-plane.js';
import { startRegistry, type TestRegistry } from '../harness/images/registry.js';
import {
  agentKubeconfig,
  applyCRDs,
  applyManifests,
  cleanUp,
  controllerLog,
  getSandbox,
  rmdirDeep,
  startAgentProcess,
  startController,
  waitFor,
  type AgentProcess,
  type ControllerProcess,
} from './sandpit-processes.js';

/*
 * Every examples/*.yaml through the whole system, as a user would run it:
 * kubectl apply → the controller schedules it → the agent pulls the image
 * from a real registry, builds the sandbox on a bridge of its own with nft
 * rules in a table of its own → Ready with an address and running
 * containers, doing what the example says it does. Then kubectl delete, and
 * nothing of them is left on the node. The examples are read from the
 * directory, so a new one is covered without touching this file; the only
 * rewrites are the registry host, the hostPort (a free one), the namespace
 * and a nodeSelector for this test's node.
 */

const run = promisify(execFile);
const ROOT = new URL('../../..', import.meta.url).pathname;
const EXAMPLES = join(ROOT, 'examples');
const EXAMPLE_REGISTRY = 'localhost:5000';

interface ExampleSandbox {
  file: string;
  name: string;
  object: {
    metadata: { name: string; namespace?: string };
    spec: {
      containers: { name: string; image: string; ports?: { hostPort?: number }[] }[];
      nodeSelector?: Record<string, string>;
      network?: { mode?: string; egress?: string; ports?: { hostPort?: number; containerPort: number }[] };
    };
  };
}

interface Status {
  sandboxIP?: string;
  phase?: string;
  containerStatuses?: { name: string; ready: boolean; state?: { running?: unknown } }[];
}

interface StateRecord {
  pid1?: { pid: number };
  containers: { name: string; pid?: number }[];
}

/** The HTTP status and body a GET of / on 127.0.0.1:port answers with. */
function httpGetText(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpGet({ host: '127.0.0.1', port, path: '/', timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer on 127.0.0.1:${port}`)));
    req.on('error', reject);
  });
}

describe('cluster: every example Sandbox applied with kubectl → Ready and doing what it says; deleted → nothing left (root)', function () {
  this.timeout(400_000);
  const ns = 'examples-ready';
  const node = 'examples-a';
  const label = { 'sandpit.test/examples': 'yes' };
  const tag = String(process.pid % 100_000);
  const bridge = `sandpitex${tag}`;
  const table = `sandpit_ex_${tag}`;
  const subnetPrefix = `10.${200 + (process.pid % 50)}.${(process.pid >> 6) % 250}`;
  const subnet = `${subnetPrefix}.0/24`;
  const gateway = `${subnetPrefix}.1`;
  const cgroupParent = `sandpit-examples-${process.pid}`;
  const log = createLogger('examples-ready-test');
  let cp: ControlPlane;
  let controller: ControllerProcess | undefined;
  let agent: AgentProcess | undefined;
  let registry: TestRegistry | undefined;
  let stateRoot: string;
  let imageRoot: string;
  let runDir: string;
  let agentLog: string;
  const examples: ExampleSandbox[] = [];
  const uids = new Map<string, string>();

  const sandboxId = (name: string) => sandboxIdFor(uids.get(name)!);
  const record = (name: string) =>
    JSON.parse(readFileSync(join(stateRoot, sandboxId(name), 'sandbox.json'), 'utf8')) as StateRecord;
  const containerLog = (name: string, container: string) =>
    readFile(join(stateRoot, sandboxId(name), 'logs', `${container}.log`), 'utf8').catch(() => '');
  const example = (file: string) => {
    const e = examples.find((x) => x.file === file);
    assert.ok(e, `examples/${file} exists and holds a Sandbox`);
    return e;
  };

  /** The workload of a container: the child of its shim (sandpit-init shim, the PID the runtime records). */
  const workloadPid = (name: string, container: string): number => {
    const shim = record(name).containers.find((c) => c.name === container)?.pid;
    assert.ok(shim, `${name}/${container} has a running shim`);
    const children = readdirSync(`/proc/${shim}/task`).flatMap((t) =>
      readFileSync(`/proc/${shim}/task/${t}/children`, 'utf8').split(' ').filter(Boolean).map(Number),
    );
    assert.equal(children.length, 1, `the shim of ${name}/${container} runs one workload`);
    return children[0]!;
  };

  /** Runs a command in the node's view with some of a process's namespaces; resolves to the exit code and output. */
  const nsenter = (pid: number, flags: string[], cmd: string[]) =>
    run('nsenter', ['-t', String(pid), ...flags, '--', ...cmd], { timeout: 20_000 }).then(
      (r) => ({ code: 0, out: r.stdout + r.stderr }),
      (err: { code?: number; stdout?: string; stderr?: string }) => ({
        code: typeof err.code === 'number' ? err.code : -1,
        out: `${err.stdout ?? ''}${err.stderr ?? ''}`,
      }),
    );

  /** What the node holds for this test: veths on the bridge, nft rule comments, cgroups, leases, mounts. */
  const nodeObjects = async () => {
    const brif = `/sys/class/net/${bridge}/brif`;
    const veths = existsSync(brif) ? readdirSync(brif) : [];
    let nft = '';
    for (const family of ['inet', 'bridge']) {
      const r = await run('nft', ['list', 'table', family, table]).catch(() => ({ stdout: '' }));
      nft += r.stdout;
    }
    const cgroups: string[] = [];
    for (const hierarchy of readdirSync('/sys/fs/cgroup')) {
      const dir = join('/sys/fs/cgroup', hierarchy, cgroupParent);
      if (!existsSync(dir)) continue;
      for (const e of readdirSync(dir))
        if (statSync(join(dir, e)).isDirectory()) cgroups.push(join(hierarchy, cgroupParent, e));
    }
    const leasesFile = join(runDir, 'network', 'leases.json');
    const leases = existsSync(leasesFile)
      ? Object.keys((JSON.parse(readFileSync(leasesFile, 'utf8')) as { leases?: Record<string, unknown> }).leases ?? {})
      : [];
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4] ?? '')
      .filter((m) => m.startsWith(stateRoot) || m.startsWith(imageRoot));
    return { veths, nft, cgroups, leases, mounts };
  };

  before(async () => {
    const files = readdirSync(EXAMPLES)
      .filter((f) => f.endsWith('.yaml'))
      .sort();
    for (const file of files) {
      for (const doc of parseAllDocuments(readFileSync(join(EXAMPLES, file), 'utf8'))) {
        const o = doc.toJS() as ExampleSandbox['object'] & { kind?: string };
        if (o?.kind === 'Sandbox') examples.push({ file, name: o.metadata.name, object: o });
      }
    }
    assert.ok(examples.length >= 3, `examples/ holds the three documented examples (found ${files.join(', ')})`);

    cp = await sharedControlPlane();
    await applyCRDs(cp);
    await applyManifests(cp);
    await cp.kubectl(['create', 'namespace', ns]).catch(() => undefined);

    // The examples' image, built as the quick start builds it, in a real registry on 127.0.0.1.
    registry = await startRegistry({ kind: 'none' });
    const layout = join(registry.dir, 'oci');
    await run('bash', [join(ROOT, 'hack/busybox-image.sh'), layout]);
    await run('skopeo', [
      'copy',
      '--quiet',
      '--dest-tls-verify=false',
      `oci:${layout}:stable`,
      `docker://${registry.host}/sandpit/busybox:stable`,
    ]);

    stateRoot = await mkdtemp(join(tmpdir(), 'sandpit-examples-state-'));
    imageRoot = `${stateRoot}-images`;
    runDir = `${stateRoot}-run`;
    agentLog = join(cp.dir, 'agent-examples.log');
    const agentKc = await agentKubeconfig(cp, node);
    controller = await startController(cp, 'examples', [
      '--namespace',
      'sandpit-system',
      '--leader-elect',
      'false',
      '--resync-period',
      '5',
    ]);
    agent = await startAgentProcess({
      kubeconfig: agentKc,
      node,
      leaseDuration: 10,
      labels: Object.entries(label)
        .map(([k, v]) => `${k}=${v}`)
        .join(','),
      stateRoot,
      cgroupParent,
      logPath: agentLog,
      env: {
        SANDPIT_IMAGE_ROOT: imageRoot,
        SANDPIT_RUN_DIR: runDir,
        SANDPIT_BRIDGE: bridge,
        SANDPIT_SUBNET: subnet,
        SANDPIT_NFT_TABLE: table,
        SANDPIT_INSECURE_REGISTRIES: registry.host,
      },
    });
    await waitFor(
      'SandboxNode Ready',
      async () =>
        (
          await cp.kubectl([
            'get',
            'sandboxnode',
            node,
            '-o',
            'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
          ])
        ).stdout.trim() === 'True',
      120_000,
    );
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') {
      process.stderr.write(`agent log tail:\n${(await readFile(agentLog, 'utf8').catch(() => '')).slice(-6000)}\n`);
      if (controller) process.stderr.write(`controller log tail:\n${(await controllerLog(controller)).slice(-3000)}\n`);
    }
  });

  after(async () => {
    await cp?.kubectlResult(['-n', ns, 'delete', 'sandboxes', '--all', '--wait=true', '--timeout=60s']);
    // Anything else the controller placed on this node (an earlier test's leftovers have no
    // nodeSelector) is deleted the normal way too, while the agent runs: it would outlive the agent.
    const others = JSON.parse(
      (await cp?.kubectlResult(['get', 'sandboxes', '-A', '-o', 'json']))?.stdout || '{"items":[]}',
    ) as { items: { metadata: { namespace: string; name: string }; status?: { nodeName?: string } }[] };
    for (const o of others.items.filter((i) => i.status?.nodeName === node)) {
      await cp.kubectlResult([
        '-n',
        o.metadata.namespace,
        'delete',
        'sandbox',
        o.metadata.name,
        '--wait=true',
        '--timeout=60s',
      ]);
    }
    await agent?.stop();
    await controller?.stop();
    if (cp) await cleanUp(cp, [ns], [node]);
    await registry?.stop();
    // The bridge, both nft tables (and iptables compat rules, if any) and the leases of this run.
    if (runDir)
      new BridgeNetworkProvider({ bridge, table, subnet, stateDir: join(runDir, 'network') }).removeNode(log, true);
    for (const dir of [stateRoot, imageRoot, runDir]) if (dir) await rm(dir, { recursive: true, force: true });
    for (const hierarchy of readdirSync('/sys/fs/cgroup')) {
      const dir = join('/sys/fs/cgroup', hierarchy, cgroupParent);
      if (existsSync(dir)) await rmdirDeep(dir);
    }
  });

  it('kubectl apply of each example → Ready with an address in the node subnet and every container running', async () => {
    for (const e of examples) {
      const o = structuredClone(e.object);
      o.metadata.namespace = ns;
      o.spec.nodeSelector = { ...o.spec.nodeSelector, ...label };
      for (const c of o.spec.containers) {
        if (c.image.startsWith(`${EXAMPLE_REGISTRY}/`))
          c.image = `${registry!.host}/${c.image.slice(EXAMPLE_REGISTRY.length + 1)}`;
        for (const p of c.ports ?? []) if (p.hostPort) p.hostPort = await freePort();
      }
      for (const p of o.spec.network?.ports ?? []) if (p.hostPort) p.hostPort = await freePort();
      e.object = o;
      await cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify(o) });
    }
    await cp.kubectl([
      '-n',
      ns,
      'wait',
      '--for=condition=Ready',
      ...examples.map((e) => `sandbox/${e.name}`),
      '--timeout=240s',
    ]);
    for (const e of examples) {
      const s = (await getSandbox(cp, ns, e.name))!;
      uids.set(e.name, s.metadata.uid);
      const st = s.status as Status;
      assert.equal(st.phase, 'Running', `${e.file}: phase`);
      if ((e.object.spec.network?.mode ?? 'Bridge') === 'Bridge') {
        assert.match(
          st.sandboxIP ?? '',
          new RegExp(`^${subnetPrefix.replaceAll('.', '\\.')}\\.\\d+$`),
          `${e.file}: sandboxIP in ${subnet}`,
        );
        assert.notEqual(st.sandboxIP, gateway);
      }
      const statuses = st.containerStatuses ?? [];
      assert.deepEqual(
        statuses.map((c) => c.name).sort(),
        e.object.spec.containers.map((c) => c.name).sort(),
        `${e.file}: a status per container`,
      );
      for (const c of statuses) assert.ok(c.ready && c.state?.running, `${e.file}: ${c.name} running and ready`);
      for (const c of record(e.name).containers)
        assert.ok(c.pid && existsSync(`/proc/${c.pid}`), `${e.file}: ${c.name} runs on the node`);
    }
  });

  it('minimal.yaml says hello in its log', async () => {
    const e = example('minimal.yaml');
    const text = await waitFor(
      'hello in the log',
      async () => {
        const t = await containerLog(e.name, 'main');
        return /hello from \S+/.test(t) ? t : undefined;
      },
      30_000,
    );
    assert.match(text, /hello from \S+/);
  });

  it('two-containers.yaml: the client reaches the server on localhost and prints the page it serves from the shared volume', async () => {
    const e = example('two-containers.yaml');
    const text = await waitFor(
      'the served page in the client log',
      async () => {
        const t = await containerLog(e.name, 'client');
        return /hello from the server container/.test(t) ? t : undefined;
      },
      30_000,
    );
    assert.doesNotMatch(text, /server returned error/);
  });

  it('ports-limits-volume.yaml answers HTTP on the published port, runs as uid 1000 on a read-only root, and has no egress', async () => {
    const e = example('ports-limits-volume.yaml');
    const hostPort = e.object.spec.network!.ports![0]!.hostPort!;
    const page = await httpGetText(hostPort);
    assert.equal(page.status, 200, `busybox httpd serves the page the container wrote (${page.status})`);
    assert.equal(page.body, 'hello from web, served from an in-memory emptyDir\n');

    const pid = workloadPid(e.name, 'web');
    const procStatus = readFileSync(`/proc/${pid}/status`, 'utf8');
    assert.match(procStatus, /^Name:\s+httpd$/m);
    assert.match(procStatus, /^Uid:\s+1000\s+1000\s+1000\s+1000$/m);
    assert.match(procStatus, /^Gid:\s+1000\s+1000\s+1000\s+1000$/m);
    // Even root cannot write to a read-only mount; the emptyDir beside it is writable, so the probe itself works.
    const root = await nsenter(pid, ['-m', '-r', '-w'], ['/bin/touch', '/probe']);
    assert.notEqual(root.code, 0);
    assert.match(root.out, /Read-only file system/);
    const cache = await nsenter(pid, ['-m', '-r', '-w'], ['/bin/touch', '/cache/probe']);
    assert.equal(cache.code, 0, cache.out);

    // Egress Deny covers the node itself: the sandbox cannot open a connection to a listener on the
    // bridge address, while a sandbox with egress Allow (two-containers.yaml) can.
    const listener: Server = createServer((sock) => sock.end('node-listener\n'));
    await new Promise<void>((r) => listener.listen(0, gateway, r));
    try {
      const port = String((listener.address() as { port: number }).port);
      const allowed = example('two-containers.yaml');
      const fromAllowed = await nsenter(
        record(allowed.name).pid1!.pid,
        ['-n'],
        ['busybox', 'nc', '-w', '3', gateway, port],
      );
      assert.match(fromAllowed.out, /node-listener/, 'the egress Allow sandbox reaches the node');
      const fromDenied = await nsenter(record(e.name).pid1!.pid, ['-n'], ['busybox', 'nc', '-w', '3', gateway, port]);
      assert.doesNotMatch(fromDenied.out, /node-listener/);
      assert.notEqual(fromDenied.code, 0, 'the egress Deny sandbox does not get through');
      assert.match(
        fromDenied.out,
        /can't connect/,
        'refused by the egress rule (admin-prohibited), not failing for another reason',
      );
    } finally {
      await new Promise((r) => listener.close(r));
    }
  });

  it('user-namespace.yaml: root inside on port 80, an unprivileged id of the node outside', async () => {
    const e = example('user-namespace.yaml');
    const base = (record(e.name) as StateRecord & { userns?: { base: number } }).userns?.base;
    assert.ok(base !== undefined && base >= 65536, `a block of host ids was recorded (${base})`);
    const text = await waitFor(
      'the uid line in the log',
      async () => {
        const t = await containerLog(e.name, 'web');
        return /uid \d+, mapped/.test(t) ? t : undefined;
      },
      30_000,
    );
    assert.match(text, new RegExp(`uid 0, mapped: +0 +${base} +65536`));
    const pid = workloadPid(e.name, 'web');
    const procStatus = readFileSync(`/proc/${pid}/status`, 'utf8');
    assert.match(procStatus, /^Name:\s+httpd$/m);
    assert.match(
      procStatus,
      new RegExp(`^Uid:\\s+${base}\\s+${base}\\s+${base}\\s+${base}$`, 'm'),
      'on the node the workload runs as the block',
    );
    const hostPort = e.object.spec.network!.ports![0]!.hostPort!;
    const page = await httpGetText(hostPort);
    assert.equal(page.status, 200, `httpd on port 80 serves its page through the published port (${page.status})`);
    assert.equal(page.body, 'hello from uid 0 in its own user namespace\n');
  });

  it('kubectl delete of every example → nothing of them left on the node', async () => {
    const ids = examples.map((e) => sandboxId(e.name));
    const before = await nodeObjects();
    // The checks below can fail: while the sandboxes run, the node holds each kind of object.
    assert.equal(
      before.veths.length,
      examples.filter((e) => (e.object.spec.network?.mode ?? 'Bridge') === 'Bridge').length,
      'a veth per bridged sandbox',
    );
    assert.ok(
      ids.some((id) => before.nft.includes(`sandpit:${id}`)),
      'per-sandbox nft rules',
    );
    assert.ok(before.cgroups.length > 0 && before.leases.length > 0);

    await cp.kubectl(['-n', ns, 'delete', ...examples.map((e) => `sandbox/${e.name}`), '--timeout=120s']);
    for (const e of examples)
      assert.equal(await getSandbox(cp, ns, e.name), undefined, `${e.name} and its finalizer are gone`);
    const after = await waitFor(
      'the node clean',
      async () => {
        const o = await nodeObjects();
        return o.veths.length === 0 && o.cgroups.length === 0 ? o : undefined;
      },
      30_000,
    );
    assert.deepEqual(after.veths, [], `no veth on ${bridge}`);
    assert.deepEqual(
      ids.filter((id) => after.nft.includes(id)),
      [],
      'no nft rule names a deleted sandbox',
    );
    assert.deepEqual(after.cgroups, [], `no cgroup under ${cgroupParent}`);
    assert.deepEqual(after.leases, [], 'no address lease');
    assert.deepEqual(after.mounts, [], 'no mount under the state or image dirs');
    assert.deepEqual(
      ids.filter((id) => existsSync(join(stateRoot, id))),
      [],
      'no sandbox state',
    );
    assert.deepEqual(
      ids.filter((id) => existsSync(`/sys/class/net/${hostVethName(id)}`)),
      [],
      'no host veth left anywhere',
    );
  });
});
