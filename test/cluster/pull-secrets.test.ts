import { mountsUnder } from '../../node-agent/runtime/mounts.js';
import { MNT_DETACH, umount2 } from '../../node-agent/sys/mount.js';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { KubeClient } from '../../lib/kube/client.js';
import { loadKubeConfig } from '../../lib/kube/kubeconfig.js';
import { readPullSecrets } from '../../controllers/reconcile/pull-secrets.js';
import { Sandbox } from '../../crds/sandbox.js';
import { sandboxIdFor } from '../../node-agent/contracts.js';
import { CAP_NUMBERS } from '../../node-agent/security/capabilities.js';
import { sharedControlPlane, type ControlPlane } from '../harness/control-plane.js';
import {
  makeServerCert,
  makeSigningKey,
  startRegistry,
  startTokenServer,
  type TestRegistry,
} from '../harness/images/registry.js';
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
  type SandboxJson,
} from './sandpit-processes.js';

/*
 * The "wire" parts of the agent, end to end through a real controller, agent
 * and runtime (root): image pull Secrets read by the controller and sent to
 * the agent with the PUT, against a registry with basic auth and one with
 * bearer tokens; the agent's --registry-ca-file for an HTTPS registry; and
 * the cluster agent's --allow-capability.
 */
const run = promisify(execFile);
const ROOT = new URL('../../..', import.meta.url).pathname;
const K = 4;

describe('cluster: pull secrets, registry CA and capability allow-list through controller and agent (root)', function () {
  this.timeout(300_000);
  const ns = 'pull-test';
  const node = 'pull-a';
  const cgroupParent = `sandpit-pull-${process.pid}`;
  const BASIC = { user: 'alice', password: 'basic-pw-7f3a' };
  const TOKEN = { user: 'bob', password: 'token-pw-91c2' };
  let cp: ControlPlane;
  let controller: ControllerProcess;
  let agent: AgentProcess | undefined;
  let work: string;
  let stateRoot: string;
  let agentLog: string;
  let basic: TestRegistry;
  let token: TestRegistry;
  let tokenServer: Awaited<ReturnType<typeof startTokenServer>>;
  let trusted: TestRegistry;
  let untrusted: TestRegistry;
  let agentKc: string;

  const manifest = (
    name: string,
    image: string,
    over: Record<string, unknown> = {},
    container: Record<string, unknown> = {},
  ) =>
    JSON.stringify({
      apiVersion: 'sandpit.dev/v1alpha1',
      kind: 'Sandbox',
      metadata: { name, namespace: ns },
      spec: {
        nodeSelector: { 'sandpit.test/pull': 'yes' },
        network: { mode: 'None' },
        terminationGracePeriodSeconds: 1,
        containers: [{ name: 'main', image, command: ['/bin/sleep', '3600'], ...container }],
        ...over,
      },
    });
  const apply = (m: string) => cp.kubectl(['apply', '-f', '-'], { input: m });
  const running = (name: string) =>
    waitFor(
      `${name} Running`,
      async () => {
        const s = await getSandbox(cp, ns, name);
        return s?.status?.phase === 'Running' ? s : undefined;
      },
      120_000,
    );
  /** Pushes the busybox image to `repo` of a registry (each case its own repository: the agent's pull back-off is per image). */
  const pushTo = async (reg: TestRegistry, repo: string, creds?: string) =>
    run('skopeo', [
      'copy',
      '--quiet',
      '--dest-tls-verify=false',
      ...(creds ? ['--dest-creds', creds] : []),
      `oci:${join(work, 'oci')}:stable`,
      `docker://${reg.host}/${repo}:latest`,
    ]);
  const dockerSecret = (name: string, server: string, user: string, password: string) =>
    cp.kubectl([
      '-n',
      ns,
      'create',
      'secret',
      'docker-registry',
      name,
      `--docker-server=${server}`,
      `--docker-username=${user}`,
      `--docker-password=${password}`,
    ]);

  /**
   * Why a sandbox is not running, where a user or operator can read it: the
   * container's waiting state in the status, and the agent's answer to the
   * controller's PUT as the controller logs it on each retry.
   */
  async function whyNot(name: string, re: RegExp): Promise<string> {
    return waitFor(
      `the reason ${name} is not running`,
      async () => {
        const s = (await getSandbox(cp, ns, name)) as
          | (SandboxJson & {
              status?: { containerStatuses?: { state?: { waiting?: { reason?: string; message?: string } } }[] };
            })
          | undefined;
        assert.notEqual(s?.status?.phase, 'Running', `${name} must not run`);
        const waiting = s?.status?.containerStatuses?.[0]?.state?.waiting;
        const logged = (await controllerLog(controller))
          .split('\n')
          .filter((l) => l.includes(`"sandbox":"${ns}/${name}"`) && l.includes('Reconcile failed'))
          .map((l) => (JSON.parse(l) as { err: string }).err);
        const all = [waiting ? `${waiting.reason}: ${waiting.message}` : '', ...logged].join('\n');
        return re.test(all) ? all : undefined;
      },
      60_000,
    );
  }

  before(async function () {
    this.timeout(600_000);
    cp = await sharedControlPlane();
    await applyCRDs(cp);
    await applyManifests(cp);
    await cp.kubectl(['create', 'namespace', ns]).catch(() => undefined);
    work = await mkdtemp(join(tmpdir(), 'sandpit-pull-test-'));
    stateRoot = join(work, 'state');
    agentLog = join(cp.dir, 'agent-pull.log');
    await run('bash', [join(ROOT, 'hack/busybox-image.sh'), join(work, 'oci')]);

    basic = await startRegistry({ kind: 'htpasswd', ...BASIC });
    const key = makeSigningKey(work);
    tokenServer = await startTokenServer({ ...key, issuer: 'sandpit-test', service: 'sandpit-registry', ...TOKEN });
    token = await startRegistry({
      kind: 'token',
      realm: tokenServer.url,
      service: 'sandpit-registry',
      issuer: 'sandpit-test',
      certPath: key.certPath,
    });
    mkdirSync(join(work, 'ca-a'));
    mkdirSync(join(work, 'ca-b'));
    const certA = makeServerCert(join(work, 'ca-a'));
    trusted = await startRegistry({ kind: 'none' }, { tls: certA });
    untrusted = await startRegistry({ kind: 'none' }, { tls: makeServerCert(join(work, 'ca-b')) });
    for (const repo of ['ok', 'anonymous', 'wrong', 'missing', 'opaque'])
      await pushTo(basic, repo, `${BASIC.user}:${BASIC.password}`);
    for (const repo of ['ok', 'anonymous', 'wrong']) await pushTo(token, repo, `${TOKEN.user}:${TOKEN.password}`);
    for (const reg of [trusted, untrusted]) await pushTo(reg, 'busybox');

    await dockerSecret('basic-creds', basic.host, BASIC.user, BASIC.password);
    await dockerSecret('basic-wrong', basic.host, BASIC.user, 'not-the-password');
    await dockerSecret('token-creds', token.host, TOKEN.user, TOKEN.password);
    await dockerSecret('token-wrong', token.host, TOKEN.user, 'not-the-password');
    await cp.kubectl(['-n', ns, 'create', 'secret', 'generic', 'opaque', '--from-literal=password=whatever']);

    controller = await startController(cp, 'pull', [
      '--namespace',
      'sandpit-system',
      '--leader-elect',
      'false',
      '--resync-period',
      '5',
    ]);
    agent = await startAgentProcess({
      kubeconfig: (agentKc = await agentKubeconfig(cp, node)),
      node,
      leaseDuration: 10,
      labels: 'sandpit.test/pull=yes',
      // The flags under test; their environment twins are covered by the unit tests of the parsing.
      args: ['--registry-ca-file', join(work, 'ca-a', 'ca.crt'), '--allow-capability', 'CAP_SYS_TIME'],
      stateRoot,
      cgroupParent,
      logPath: agentLog,
      env: {
        SANDPIT_IMAGE_ROOT: join(work, 'images'),
        SANDPIT_RUN_DIR: `/run/sandpit-h${K}-pull`,
        SANDPIT_BRIDGE: `sph${K}`,
        SANDPIT_NFT_TABLE: `sandpith${K}`,
        SANDPIT_SUBNET: `10.${100 + K}.0.0/24`,
        SANDPIT_INSECURE_REGISTRIES: `${basic.host},${token.host}`,
        SANDPIT_LOG_LEVEL: 'debug',
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
      process.stderr.write(`agent log tail:\n${(await readFile(agentLog, 'utf8').catch(() => '')).slice(-5000)}\n`);
      process.stderr.write(`controller log tail:\n${(await controllerLog(controller)).slice(-3000)}\n`);
    }
  });

  after(async function () {
    this.timeout(180_000);
    const deleted = await cp.kubectlResult(['-n', ns, 'delete', 'sandboxes', '--all', '--wait=true', '--timeout=90s']);
    if (deleted.code !== 0) {
      // Said, not hidden: what was still there, and what the agent was doing with it.
      const left = await cp.kubectlResult(['-n', ns, 'get', 'sandboxes', '-o', 'wide']);
      process.stderr.write(`sandboxes not deleted in 90 s: ${deleted.stderr}\n${left.stdout}\n`);
      process.stderr.write(`agent log tail:\n${(await readFile(agentLog, 'utf8').catch(() => '')).slice(-5000)}\n`);
    }
    await agent?.stop();
    await controller?.stop();
    await cleanUp(cp, [ns], [node]);
    await cp.kubectlResult(['delete', 'namespace', ns, '--wait=false']);
    await Promise.all([basic?.stop(), token?.stop(), tokenServer?.stop(), trusted?.stop(), untrusted?.stop()]);
    for (const root of readdirSync('/sys/fs/cgroup')) {
      const dir = join('/sys/fs/cgroup', root, cgroupParent);
      if (existsSync(dir)) await rmdirDeep(dir);
    }
    await rm(`/run/sandpit-h${K}-pull`, { recursive: true, force: true });
    // A sandbox the agent did not get to delete keeps its tmpfs mounts: detach them, so the work dir can go.
    if (work) for (const m of mountsUnder(work)) umount2(m, MNT_DETACH, { step: 'test cleanup' });
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('pulls from a basic-auth registry with the imagePullSecret; without it, with a wrong one, a missing one or one of another type it does not run and says why', async () => {
    await apply(manifest('basic-ok', `${basic.host}/ok`, { imagePullSecrets: [{ name: 'basic-creds' }] }));
    await apply(manifest('basic-anonymous', `${basic.host}/anonymous`));
    await apply(manifest('basic-wrong', `${basic.host}/wrong`, { imagePullSecrets: [{ name: 'basic-wrong' }] }));
    await apply(manifest('basic-missing', `${basic.host}/missing`, { imagePullSecrets: [{ name: 'no-such-secret' }] }));
    await apply(manifest('basic-opaque', `${basic.host}/opaque`, { imagePullSecrets: [{ name: 'opaque' }] }));
    await running('basic-ok');
    assert.match(await whyNot('basic-anonymous', /refused anonymous access to anonymous/), /add an imagePullSecret/);
    assert.match(
      await whyNot('basic-wrong', /refused the credentials for user "alice" to wrong/),
      /check the pull secret/,
    );
    assert.match(
      await whyNot(
        'basic-missing',
        /ErrImagePull.*imagePullSecret no-such-secret: Secret pull-test\/no-such-secret not found/,
      ),
      /kubectl create secret docker-registry/,
    );
    await whyNot(
      'basic-opaque',
      /ErrImagePull.*imagePullSecret opaque: Secret pull-test\/opaque has type Opaque; an image pull Secret has type kubernetes.io\/dockerconfigjson/,
    );
  });

  it('pulls from a bearer-token registry with the imagePullSecret; without it or with a wrong one it does not run and says why', async () => {
    await apply(manifest('token-ok', `${token.host}/ok`, { imagePullSecrets: [{ name: 'token-creds' }] }));
    await apply(manifest('token-anonymous', `${token.host}/anonymous`));
    await apply(manifest('token-wrong', `${token.host}/wrong`, { imagePullSecrets: [{ name: 'token-wrong' }] }));
    await running('token-ok');
    assert.ok(
      tokenServer.requests.some((r) => r.user === TOKEN.user && r.scope.includes('repository:ok:pull')),
      "the token endpoint saw the secret's user",
    );
    await whyNot('token-anonymous', /Unauthorized.*anonymous access to anonymous|refused anonymous access/);
    await whyNot('token-wrong', /token endpoint 127\.0\.0\.1:\d+ refused the credentials \(HTTP 401\)/);
  });

  it("reads pull Secrets with the RBAC of the controller ServiceAccount; the agent's credentials may not, and the error says which value grants it", async () => {
    // A kubeconfig for the sandpit-controller ServiceAccount of controllers/manifests/rbac-controller.yaml.
    const token = (
      await cp.kubectl(['-n', 'sandpit-system', 'create', 'token', 'sandpit-controller', '--duration', '1h'])
    ).stdout.trim();
    const ctlKc = join(work, 'controller-sa.kubeconfig');
    writeFileSync(
      ctlKc,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        'current-context': 'c',
        clusters: [
          {
            name: 'c',
            cluster: {
              server: cp.server,
              'certificate-authority-data': readFileSync(join(cp.dir, 'pki', 'ca.crt')).toString('base64'),
            },
          },
        ],
        users: [{ name: 'u', user: { token } }],
        contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
      }),
      { mode: 0o600 },
    );
    const sbx = Sandbox.parse(
      JSON.parse(
        manifest('rbac', `${basic.host}/ok`, {
          imagePullSecrets: [{ name: 'basic-creds' }, { name: 'no-such-secret' }],
        }),
      ),
    );
    const asController = await KubeClient.fromKubeConfig(loadKubeConfig(ctlKc));
    const asAgent = await KubeClient.fromKubeConfig(loadKubeConfig(agentKc));
    try {
      const read = await readPullSecrets(asController, sbx);
      assert.deepEqual(
        read.map((r) => r.name),
        ['basic-creds', 'no-such-secret'],
      );
      assert.ok((read[0]!.dockerConfigJson ?? '').includes(`"${basic.host}"`), 'the Docker config of the Secret');
      assert.deepEqual(read[1], { name: 'no-such-secret', error: 'Secret pull-test/no-such-secret not found' });
      const denied = await readPullSecrets(asAgent, sbx);
      assert.deepEqual(
        denied.map((r) => r.error),
        [
          'the controller may not read Secret pull-test/basic-creds (install the chart with controller.readPullSecrets=true)',
          'the controller may not read Secret pull-test/no-such-secret (install the chart with controller.readPullSecrets=true)',
        ],
      );
    } finally {
      asController.close();
      asAgent.close();
    }
  });

  it("never writes a pull secret's password to the agent's log, its state or image dirs, or the controller's log", async () => {
    const needles = [
      BASIC.password,
      TOKEN.password,
      'not-the-password',
      Buffer.from(`${BASIC.user}:${BASIC.password}`).toString('base64'),
      Buffer.from(`${TOKEN.user}:${TOKEN.password}`).toString('base64'),
    ];
    const logs = (await readFile(agentLog, 'utf8')) + (await controllerLog(controller));
    assert.ok(logs.includes('basic-ok'), 'the logs are the ones of these sandboxes');
    for (const n of needles) assert.equal(logs.includes(n), false, `a log holds ${n}`);
    for (const dir of [stateRoot, join(work, 'images')]) {
      for (const n of needles) {
        const r = await run('grep', ['-rlF', n, dir]).then(
          (o) => o.stdout,
          (e: { code?: number; stdout?: string }) => (e.code === 1 ? '' : Promise.reject(e)),
        );
        assert.equal(r, '', `${dir} holds ${n} in ${r}`);
      }
    }
    const ok = (await getSandbox(cp, ns, 'basic-ok'))!;
    assert.ok(
      existsSync(join(stateRoot, sandboxIdFor(ok.metadata.uid), 'sandbox.json')),
      'the state dir searched is the one of the running sandbox',
    );
  });

  it('pulls over HTTPS from a registry whose CA the agent was given with --registry-ca-file, and refuses one signed by another CA', async () => {
    await apply(manifest('tls-trusted', `${trusted.host}/busybox`));
    await apply(manifest('tls-untrusted', `${untrusted.host}/busybox`));
    await running('tls-trusted');
    await whyNot('tls-untrusted', /ErrImagePull.*(certificate|self.signed|unable to verify)/i);
  });

  it('lets a cluster agent started with --allow-capability grant that capability, and refuses another naming the flag to set', async () => {
    const capEff = (name: string) =>
      waitFor(
        `${name} prints its CapEff`,
        async () => {
          const s = await getSandbox(cp, ns, name);
          if (s?.status?.phase !== 'Running') return undefined;
          const log = join(stateRoot, sandboxIdFor(s.metadata.uid), 'logs', 'main.log');
          const m = existsSync(log) ? /CapEff:\s*([0-9a-f]+)/.exec(readFileSync(log, 'utf8')) : null;
          return m ? BigInt(`0x${m[1]}`) : undefined;
        },
        120_000,
      );
    const show = { command: ['/bin/sh', '-c', 'grep CapEff /proc/self/status; exec sleep 3600'] };
    await apply(
      manifest(
        'cap-allowed',
        `${trusted.host}/busybox`,
        {},
        { ...show, securityContext: { capabilities: { add: ['SYS_TIME'] } } },
      ),
    );
    await apply(manifest('cap-default', `${trusted.host}/busybox`, {}, show));
    await apply(
      manifest(
        'cap-refused',
        `${trusted.host}/busybox`,
        {},
        { ...show, securityContext: { capabilities: { add: ['SYS_NICE'] } } },
      ),
    );
    const bit = (n: string) => 1n << BigInt(CAP_NUMBERS[n]!);
    assert.equal(
      (await capEff('cap-allowed')) & bit('SYS_TIME'),
      bit('SYS_TIME'),
      'SYS_TIME is effective where it was added',
    );
    assert.equal((await capEff('cap-default')) & bit('SYS_TIME'), 0n, 'and only there');
    await whyNot(
      'cap-refused',
      /capability SYS_NICE is not allowed on this node.*--allow-capability SYS_NICE \(env SANDPIT_ALLOW_CAPABILITIES, chart value agent\.allowCapabilities\)/,
    );
  });
});
