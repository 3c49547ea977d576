import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { stringify } from 'yaml';
import { sandboxIdFor } from '../../node-agent/contracts.js';
import { buildBusyboxRootfs } from '../fixtures/busybox-rootfs.js';
import { sharedControlPlane, type ControlPlane } from '../harness/control-plane.js';
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
 * A tenant (a ServiceAccount that may only create, read and delete Sandboxes
 * in its own namespace, using kubectl with its own token) tries every spec
 * field that names a path or ends up in a file against a real controller,
 * agent and runtime (root): dir: images outside what the node allows (/, ..,
 * symlinks, a bare path), an image full of symlinks to the node, volume mounts
 * over /proc, /sys, /dev and symlinks, hostPath, hostname and DNS fields. The
 * node holds a secret at a known path, laid out as an image root so that any
 * way of getting it as the sandbox's root would print it. It must never
 * appear in what a container writes; a refused spec leaves nothing on the node.
 */
describe('cluster: a tenant cannot read node files through any spec it may write (root)', function () {
  this.timeout(300_000);
  const ns = 'tenant-escape';
  const node = 'escape-a';
  const token = `node-secret-${randomBytes(8).toString('hex')}`;
  let cp: ControlPlane;
  let controller: ControllerProcess;
  let agent: AgentProcess | undefined;
  let stateRoot: string;
  let agentLog: string;
  let tenantKc: string;
  /** The one directory dir: images may come from. */
  let allowed: string;
  /** A node directory outside it: a busybox root holding the secret at /node-secret. */
  let secretRoot: string;
  let secretFile: string;
  const cgroupParent = `sandpit-escape-${process.pid}`;

  /** Prints everything a container might reach the secret through, then probe-done. */
  const probe = () =>
    [
      `cat ${secretFile} /node-secret /proc/1/root${secretFile} /proc/1/cwd${secretFile} /node${secretFile} /evil/node-secret 2>/dev/null`,
      'cat /etc/hostname /etc/resolv.conf /etc/hosts 2>/dev/null',
      `grep -rs ${token.slice(0, 12)} /proc/1/mountinfo /proc/1/environ /proc/1/cmdline /tmp /etc 2>/dev/null | head -3`,
      'echo probe-done',
    ].join('; ');

  const manifest = (name: string, spec: Record<string, unknown>) =>
    JSON.stringify({
      apiVersion: 'sandpit.dev/v1alpha1',
      kind: 'Sandbox',
      metadata: { name, namespace: ns },
      spec: {
        nodeSelector: { 'sandpit.test/escape': 'yes' },
        network: { mode: 'None' },
        restartPolicy: 'Never',
        terminationGracePeriodSeconds: 0,
        containers: [{ name: 'main', image: `dir:${allowed}/busybox`, command: ['/bin/sh', '-c', probe()] }],
        ...spec,
      },
    });
  const tenantApply = (name: string, spec: Record<string, unknown>) =>
    cp.kubectlResult(['apply', '-f', '-'], { input: manifest(name, spec), kubeconfig: tenantKc });
  const containerLog = (uid: string) => {
    const path = join(stateRoot, sandboxIdFor(uid), 'logs', 'main.log');
    return existsSync(path) ? readFileSync(path, 'utf8') : '';
  };
  /** Agent log lines about this sandbox. */
  const agentLines = async (name: string) =>
    (await readFile(agentLog, 'utf8').catch(() => '')).split('\n').filter((l) => l.includes(`"${ns}/${name}"`));

  /** Applies as the tenant and waits until the sandbox ran to the end of its probe; returns what it printed. */
  async function ran(name: string, spec: Record<string, unknown>): Promise<string> {
    const r = await tenantApply(name, spec);
    assert.equal(r.code, 0, r.stderr);
    const sb = await waitFor(
      `${name} ran its probe`,
      async () => {
        const s = await getSandbox(cp, ns, name);
        return s &&
          /probe-done/.test(containerLog(s.metadata.uid)) &&
          ['Succeeded', 'Failed'].includes(s.status?.phase ?? '')
          ? s
          : undefined;
      },
      90_000,
    );
    return containerLog(sb.metadata.uid);
  }

  /** Applies as the tenant and waits until the agent has refused it (`why` in its log); asserts nothing of it stayed on the node. */
  async function refused(name: string, spec: Record<string, unknown>, why: RegExp): Promise<string> {
    const r = await tenantApply(name, spec);
    assert.equal(r.code, 0, r.stderr);
    const line = await waitFor(
      `the agent refuses ${name}`,
      async () => (await agentLines(name)).find((l) => why.test(l) && /creation failed/.test(l)),
      90_000,
    );
    const sb = (await getSandbox(cp, ns, name))!;
    assert.ok(
      !['Running', 'Succeeded'].includes(sb.status?.phase ?? ''),
      `${name} never runs: ${JSON.stringify(sb.status)}`,
    );
    // The controller retries the PUT, so look until a moment between two refusals: a leak would stay.
    await waitFor(
      `nothing of ${name} is left in the agent's state dir`,
      async () => !existsSync(join(stateRoot, sandboxIdFor(sb.metadata.uid))),
      30_000,
      50,
    );
    return line;
  }

  before(async () => {
    cp = await sharedControlPlane();
    await applyCRDs(cp);
    await applyManifests(cp);
    await cp.kubectl(['create', 'namespace', ns]).catch(() => undefined);

    // The node: one allowed image directory (a plain image and one planted with links to the node), and a secret outside it.
    allowed = mkdtempSync(join(tmpdir(), 'sandpit-escape-images-'));
    secretRoot = buildBusyboxRootfs(mkdtempSync(join(tmpdir(), 'sandpit-escape-node-')));
    secretFile = join(secretRoot, 'node-secret');
    writeFileSync(secretFile, `${token}\n`);
    buildBusyboxRootfs(join(allowed, 'busybox'));
    const tricky = buildBusyboxRootfs(join(allowed, 'tricky'));
    symlinkSync('/', join(tricky, 'node'));
    symlinkSync(secretRoot, join(tricky, 'evil'));
    symlinkSync(secretFile, join(tricky, 'etc/hostname'));
    symlinkSync(secretFile, join(tricky, 'etc/resolv.conf'));
    mkdirSync(join(tricky, 'data'));
    symlinkSync(secretRoot, join(allowed, 'link-out'));

    // The tenant: Sandboxes in its namespace, nothing else.
    await cp.kubectl(['-n', ns, 'create', 'serviceaccount', 'tenant']).catch(() => undefined);
    await cp
      .kubectl([
        '-n',
        ns,
        'create',
        'role',
        'sandbox-author',
        '--verb=create,get,list,watch,delete,patch',
        '--resource=sandboxes.sandpit.dev',
      ])
      .catch(() => undefined);
    await cp
      .kubectl([
        '-n',
        ns,
        'create',
        'rolebinding',
        'tenant-sandbox-author',
        '--role=sandbox-author',
        `--serviceaccount=${ns}:tenant`,
      ])
      .catch(() => undefined);
    const saToken = (await cp.kubectl(['-n', ns, 'create', 'token', 'tenant', '--duration', '1h'])).stdout.trim();
    tenantKc = join(cp.dir, 'tenant-escape.kubeconfig');
    await writeFile(
      tenantKc,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          {
            name: 'sandpit',
            cluster: {
              server: cp.server,
              'certificate-authority-data': (await readFile(join(cp.dir, 'pki', 'ca.crt'))).toString('base64'),
            },
          },
        ],
        users: [{ name: 'tenant', user: { token: saToken } }],
        contexts: [{ name: 'tenant', context: { cluster: 'sandpit', user: 'tenant', namespace: ns } }],
        'current-context': 'tenant',
      }),
      { mode: 0o600 },
    );

    stateRoot = mkdtempSync(join(tmpdir(), 'sandpit-escape-state-'));
    agentLog = join(cp.dir, 'agent-escape.log');
    const agentKc = await agentKubeconfig(cp, node);
    controller = await startController(cp, 'escape', [
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
      leaseDuration: 6,
      labels: 'sandpit.test/escape=yes',
      allowDirImages: allowed,
      stateRoot,
      cgroupParent,
      logPath: agentLog,
    });
    await waitFor(
      'SandboxNode ready',
      async () => {
        const r = await cp.kubectlResult([
          'get',
          'sandboxnode',
          node,
          '-o',
          'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
        ]);
        return r.stdout === 'True';
      },
      120_000,
    );
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') {
      process.stderr.write(`agent log tail:\n${(await readFile(agentLog, 'utf8').catch(() => '')).slice(-5000)}\n`);
      process.stderr.write(`controller log tail:\n${(await controllerLog(controller)).slice(-3000)}\n`);
    }
  });

  after(async () => {
    await cp.kubectlResult(['-n', ns, 'delete', 'sandboxes', '--all', '--wait=true', '--timeout=60s']);
    await agent?.stop();
    await controller?.stop();
    await cleanUp(cp, [ns], [node]);
    for (const dir of [stateRoot, `${stateRoot}-images`, allowed, secretRoot])
      if (dir) await rm(dir, { recursive: true, force: true });
    for (const root of readdirSync('/sys/fs/cgroup')) {
      const dir = join('/sys/fs/cgroup', root, cgroupParent);
      if (existsSync(dir)) await rmdirDeep(dir);
    }
  });

  it('gives the tenant Sandboxes in its namespace and nothing else', async () => {
    const can = async (...args: string[]) =>
      (await cp.kubectlResult(['auth', 'can-i', ...args], { kubeconfig: tenantKc })).stdout.trim();
    assert.equal(await can('create', 'sandboxes.sandpit.dev'), 'yes');
    assert.equal(await can('get', 'secrets'), 'no');
    assert.equal(await can('create', 'pods'), 'no');
    assert.equal(await can('create', 'sandboxes.sandpit.dev', '-n', 'default'), 'no');
  });

  it('runs a dir: image below the allowed directory (the control case: the probe works)', async () => {
    const out = await ran('allowed', {});
    assert.match(out, /probe-done/);
    assert.match(out, /nameserver|search|localhost/, 'the probe printed the sandbox /etc files');
    assert.ok(!out.includes(token), out);
  });

  it('refuses dir: images outside the allowed directory: /, the secret, "..", a symlink out, a bare path', async () => {
    const cases: [string, string, RegExp][] = [
      ['dir-root', 'dir:/', /is not a directory under one this node allows/],
      ['dir-secret', `dir:${secretRoot}`, /is not a directory under one this node allows/],
      [
        'dir-dotdot',
        `dir:${allowed}/busybox/../../${basename(secretRoot)}`,
        /is not a directory under one this node allows/,
      ],
      ['dir-link', `dir:${allowed}/link-out`, /is not a directory under one this node allows/],
      ['dir-relative', `dir:${basename(secretRoot)}`, /is not a directory under one this node allows/],
      ['bare-path', secretRoot, /InvalidImageName/],
    ];
    for (const [name, image, why] of cases) {
      const line = await refused(
        name,
        { containers: [{ name: 'main', image, command: ['/bin/sh', '-c', probe()] }] },
        why,
      );
      assert.match(line, /InvalidImageName/, `${name}: refused as InvalidImageName`);
    }
  });

  it('keeps links planted in the image inside the container: / , the secret dir, /etc files', async () => {
    const out = await ran('tricky-image', {
      containers: [{ name: 'main', image: `dir:${allowed}/tricky`, command: ['/bin/sh', '-c', probe()] }],
    });
    assert.match(out, /probe-done/);
    assert.ok(!out.includes(token), `the secret leaked:\n${out}`);
  });

  it('refuses a volume mounted over a link in the image, and leaves nothing', async () => {
    for (const [name, mountPath] of [
      ['mount-link', '/evil'],
      ['mount-through-link', '/node/tmp'],
    ] as const) {
      const line = await refused(
        name,
        {
          volumes: [{ name: 'v', emptyDir: {} }],
          containers: [
            {
              name: 'main',
              image: `dir:${allowed}/tricky`,
              command: ['/bin/sh', '-c', probe()],
              volumeMounts: [{ name: 'v', mountPath }],
            },
          ],
        },
        /crosses a symlink/,
      );
      assert.ok(!line.includes(token));
    }
  });

  it('lets no volume mount over /proc, /sys, /dev or /etc files reveal the node', async () => {
    for (const [name, mountPath] of [
      ['vol-proc', '/proc'],
      ['vol-proc-1', '/proc/1'],
      ['vol-sys', '/sys'],
      ['vol-dev', '/dev'],
      ['vol-etc', '/etc'],
      ['vol-data', '/data'],
    ] as const) {
      const r = await tenantApply(name, {
        volumes: [{ name: 'v', emptyDir: {} }],
        containers: [
          {
            name: 'main',
            image: `dir:${allowed}/tricky`,
            command: ['/bin/sh', '-c', probe()],
            volumeMounts: [{ name: 'v', mountPath }],
          },
        ],
      });
      if (r.code !== 0) continue; // refused at apply time (reserved path): nothing ran
      // Either the container ran its probe or the agent refused it; in neither case may the secret show.
      const out = await waitFor(
        `${name} ran or was refused`,
        async () => {
          const s = await getSandbox(cp, ns, name);
          if (!s) return undefined;
          const log = containerLog(s.metadata.uid);
          if (/probe-done/.test(log)) return log;
          const refusal = (await agentLines(name)).find((l) => /creation failed/.test(l));
          return refusal && !existsSync(join(stateRoot, sandboxIdFor(s.metadata.uid))) ? refusal : undefined;
        },
        90_000,
      );
      assert.ok(!out.includes(token), `${name}: the secret leaked:\n${out}`);
    }
  });

  it('has no hostPath volume and no hostname with path characters', async () => {
    const host = await cp.kubectlResult(['apply', '-f', '-'], {
      kubeconfig: tenantKc,
      input: manifest('hostpath', {
        volumes: [{ name: 'v', hostPath: { path: '/' } }],
        containers: [
          {
            name: 'main',
            image: `dir:${allowed}/busybox`,
            command: ['/bin/true'],
            volumeMounts: [{ name: 'v', mountPath: '/host' }],
          },
        ],
      }),
    });
    assert.notEqual(host.code, 0, 'hostPath is not part of the schema');
    assert.match(host.stderr, /hostPath|emptyDir/);
    for (const hostname of ['../../etc', 'a/b', secretFile]) {
      const r = await tenantApply('bad-hostname', { hostname });
      assert.notEqual(r.code, 0, `hostname ${hostname} is refused at apply`);
      assert.match(r.stderr, /hostname/);
    }
    assert.equal(await getSandbox(cp, ns, 'bad-hostname'), undefined);
  });

  it('writes DNS fields into resolv.conf as text, never as paths', async () => {
    const out = await ran('dns', {
      network: {
        mode: 'None',
        dns: {
          nameservers: [secretFile, '../../../etc/passwd'],
          searches: [secretFile, `$(cat ${secretFile})`],
          ndots: 2,
        },
      },
    });
    assert.match(out, new RegExp(`nameserver ${secretFile.replaceAll('/', '\\/')}`), 'written as given');
    assert.ok(!out.includes(token), `the secret leaked:\n${out}`);
  });
});
