import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { sharedControlPlane, type ControlPlane } from '../harness/control-plane.js';
import {
  CHART,
  REPO,
  createNamespace,
  ensureCrds,
  freshName,
  helm,
  helmOk,
  parseDocs,
  prewarmGoTools,
  render,
  template,
  type K8sObject,
} from './helm-support.js';

/** The value sets of charts/sandpit/ci/ (chart-testing's convention), by file name. */
async function ciValueSets(): Promise<Map<string, object>> {
  const sets = new Map<string, object>();
  for (const file of (await readdir(join(CHART, 'ci'))).sort()) {
    if (file.endsWith('-values.yaml'))
      sets.set(file, (parse(await readFile(join(CHART, 'ci', file), 'utf8')) ?? {}) as object);
  }
  return sets;
}

const byKind = (docs: K8sObject[], kind: string) => docs.filter((d) => d.kind === kind);
const one = (docs: K8sObject[], kind: string, nameSuffix = ''): K8sObject => {
  const found = docs.filter((d) => d.kind === kind && d.metadata.name.endsWith(nameSuffix));
  assert.equal(
    found.length,
    1,
    `expected one ${kind} *${nameSuffix}, found ${found.map((d) => d.metadata.name).join(', ') || 'none'}`,
  );
  return found[0]!;
};
type PodSpec = {
  containers: Array<
    Record<string, unknown> & {
      securityContext?: Record<string, unknown>;
      args?: string[];
      volumeMounts?: Array<Record<string, unknown>>;
    }
  >;
  volumes?: Array<Record<string, unknown>>;
  [k: string]: unknown;
};
const podSpec = (o: K8sObject) => o.spec!.template!.spec as unknown as PodSpec;

describe('cluster: the Helm chart renders, lints and passes the API server', function () {
  this.timeout(120_000);
  let cp: ControlPlane;
  let sets: Map<string, object>;

  before(async () => {
    prewarmGoTools();
    cp = await sharedControlPlane();
    sets = await ciValueSets();
    // Optional features create cert-manager and Prometheus Operator objects: register their kinds.
    await cp.kubectl(['apply', '-f', join(REPO, 'test', 'cluster', 'helm-fixtures', 'third-party-crds.yaml')]);
  });

  it('ships the generated CRDs byte for byte (files/crds is a copy of crds/, never edited)', async () => {
    for (const file of ['sandboxes.yaml', 'sandboxnodes.yaml']) {
      const source = await readFile(join(REPO, 'crds', file), 'utf8');
      const copy = await readFile(join(CHART, 'files', 'crds', file), 'utf8').catch(() => '');
      assert.ok(
        copy === source,
        `charts/sandpit/files/crds/${file} is stale: run \`cp crds/*.yaml charts/sandpit/files/crds/\``,
      );
    }
  });

  it('renders each CRD unchanged except for release labels and the keep policy', async () => {
    const docs = await render(cp, {});
    for (const file of ['sandboxes.yaml', 'sandboxnodes.yaml']) {
      const source = parse(await readFile(join(REPO, 'crds', file), 'utf8')) as K8sObject;
      const rendered = docs.find(
        (d) => d.kind === 'CustomResourceDefinition' && d.metadata.name === source.metadata.name,
      );
      assert.ok(rendered, `${source.metadata.name} is rendered`);
      assert.deepEqual(rendered.spec, source.spec, 'spec survives the fromYaml/toYaml round trip');
      assert.equal(rendered.metadata.annotations?.['helm.sh/resource-policy'], 'keep');
      assert.equal(rendered.metadata.labels?.['app.kubernetes.io/managed-by'], 'Helm');
    }
    const noKeep = await render(cp, { crds: { keep: false } });
    for (const crd of byKind(noKeep, 'CustomResourceDefinition'))
      assert.equal(crd.metadata.annotations?.['helm.sh/resource-policy'], undefined);
    assert.equal(byKind(await render(cp, { crds: { install: false } }), 'CustomResourceDefinition').length, 0);
  });

  it('passes helm lint --strict with helm 4 and helm 3, for the defaults and every ci/ value set', async () => {
    for (const version of [4, 3] as const) {
      for (const file of ['(defaults)', ...sets.keys()]) {
        const args = ['lint', '--strict', CHART, ...(file === '(defaults)' ? [] : ['-f', join(CHART, 'ci', file)])];
        const r = await helm(cp, args, { version });
        assert.equal(r.code, 0, `helm ${version} lint ${file}:\n${r.stdout}\n${r.stderr}`);
        assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
      }
    }
  });

  it('renders the same manifests with helm 3 and helm 4', async () => {
    for (const [file, values] of sets) {
      const [v4, v3] = await Promise.all([template(cp, values, { version: 4 }), template(cp, values, { version: 3 })]);
      assert.equal(v4.code, 0, v4.stderr);
      assert.equal(v3.code, 0, v3.stderr);
      assert.deepEqual(parseDocs(v3.stdout), parseDocs(v4.stdout), file);
    }
  });

  it('is accepted by a server-side dry run for the defaults and every ci/ value set', async () => {
    // A dry run of CRs needs their CRDs: create them from crds/ when no other test has
    // (not from this rendering, whose release labels would then have another owner).
    await ensureCrds(cp);
    for (const [file, values] of sets) {
      const ns = freshName('sp-dry');
      await createNamespace(cp, ns, { 'pod-security.kubernetes.io/enforce': 'privileged' });
      const r = await template(cp, values, { namespace: ns, release: 'sandpit', extra: ['--skip-tests'] });
      assert.equal(r.code, 0, r.stderr);
      const docs = parseDocs(r.stdout);
      const applied = await cp.kubectlResult(['apply', '--dry-run=server', '-n', ns, '-f', '-'], { input: r.stdout });
      assert.equal(applied.code, 0, `${file}: ${applied.stderr}`);
      const lines = applied.stdout.trim().split('\n');
      assert.equal(lines.length, docs.length, `${file}: every object answered:\n${applied.stdout}`);
      for (const line of lines)
        assert.match(line, /(created|configured|unchanged) \(server dry run\)$/, `${file}: ${line}`);
      // The CRDs were made real by server-side apply above, so client-side apply notes the missing last-applied annotation.
      const warnings = applied.stderr
        .split('\n')
        .filter((l) => /warning/i.test(l) && !/last-applied-configuration/.test(l));
      assert.deepEqual(warnings, [], `${file}: no API warnings`);
    }
  });

  it('gives the controller pods the restricted Pod Security level (the API server enforces it)', async () => {
    for (const [file, values] of sets) {
      const ns = freshName('sp-restricted');
      await createNamespace(cp, ns, {
        'pod-security.kubernetes.io/enforce': 'restricted',
        'pod-security.kubernetes.io/enforce-version': 'latest',
      });
      const docs = await render(cp, values, { namespace: ns });
      const deployment = one(docs, 'Deployment', '');
      const pod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'controller-pod-check', namespace: ns },
        spec: { ...podSpec(deployment), serviceAccountName: 'default' },
      };
      const r = await cp.kubectlResult(['create', '--dry-run=server', '-f', '-'], { input: stringify(pod) });
      assert.equal(r.code, 0, `${file}: controller pod refused by restricted PSA: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /violate/i, r.stderr);
    }
  });

  it('needs the privileged Pod Security level for the agent, and says so when the namespace is baseline', async () => {
    for (const values of [{}, { agent: { privileged: false } }]) {
      const docs = await render(cp, values);
      const ds = one(docs, 'DaemonSet');
      const spec = { ...podSpec(ds), serviceAccountName: 'default', nodeName: 'node-x' };
      const baseline = freshName('sp-baseline');
      await createNamespace(cp, baseline, { 'pod-security.kubernetes.io/enforce': 'baseline' });
      const refused = await cp.kubectlResult(['create', '--dry-run=server', '-f', '-'], {
        input: stringify({
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: 'agent-pod-check', namespace: baseline },
          spec,
        }),
      });
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /violates PodSecurity "baseline:latest".*host namespaces/);
      const privileged = freshName('sp-privileged');
      await createNamespace(cp, privileged, { 'pod-security.kubernetes.io/enforce': 'privileged' });
      const ok = await cp.kubectlResult(['create', '--dry-run=server', '-f', '-'], {
        input: stringify({
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: 'agent-pod-check', namespace: privileged },
          spec,
        }),
      });
      assert.equal(ok.code, 0, ok.stderr);
    }
  });

  it('runs the agent with the host namespaces, mounts and security the issue asks for', async () => {
    const ds = one(await render(cp, {}), 'DaemonSet');
    const spec = podSpec(ds);
    assert.equal(spec.hostPID, true);
    assert.equal(spec.hostNetwork, true);
    assert.equal(spec.hostIPC, false);
    const agent = spec.containers[0]!;
    assert.equal(agent.securityContext?.privileged, true);
    const mounts = Object.fromEntries((agent.volumeMounts ?? []).map((m) => [m.mountPath as string, m]));
    assert.equal(mounts['/var/lib/sandpit']?.mountPropagation, 'Bidirectional');
    assert.equal(mounts['/run/sandpit']?.mountPropagation, 'Bidirectional');
    assert.ok(mounts['/sys/fs/cgroup'], 'cgroup fs mounted');
    assert.equal(mounts['/lib/modules']?.readOnly, true);
    const hostPaths = Object.fromEntries(
      (spec.volumes ?? []).filter((v) => v.hostPath).map((v) => [(v.hostPath as { path: string }).path, v]),
    );
    assert.deepEqual(Object.keys(hostPaths).sort(), [
      '/lib/modules',
      '/run/sandpit',
      '/run/systemd/resolve',
      '/sys/fs/cgroup',
      '/var/lib/sandpit',
    ]);
    assert.deepEqual(spec.tolerations, [{ operator: 'Exists' }]);
    const strategy = (
      ds.spec as { updateStrategy: { type: string; rollingUpdate: { maxSurge: number; maxUnavailable: number } } }
    ).updateStrategy;
    assert.equal(strategy.type, 'RollingUpdate');
    assert.equal(strategy.rollingUpdate.maxSurge, 0, 'never two agents on one node');

    // The node network: IPv4 only by default; a ULA prefix turns on dual stack (node-agent/network/README.md).
    const envOf = (c: typeof agent) =>
      Object.fromEntries(((c.env ?? []) as { name: string; value?: string }[]).map((e) => [e.name, e.value]));
    assert.equal(envOf(agent).SANDPIT_SUBNET, '10.88.0.0/24');
    assert.equal(envOf(agent).SANDPIT_SUBNET6, undefined, 'no IPv6 unless asked for');
    const dual = podSpec(one(await render(cp, { agent: { network: { subnet6: 'fd00:88::/64' } } }), 'DaemonSet'))
      .containers[0]!;
    assert.equal(envOf(dual).SANDPIT_SUBNET6, 'fd00:88::/64');
    assert.equal(envOf(agent).SANDPIT_USERNS_RANGE, '1073741824:1073741824', 'the agent gets the user namespace range');

    // The agent's node policy and registry trust: nothing extra by default; allowCapabilities and registryCA reach its env and mounts.
    assert.equal(envOf(agent).SANDPIT_ALLOW_CAPABILITIES, undefined);
    assert.equal(envOf(agent).SANDPIT_REGISTRY_CA_FILE, undefined);
    const wired = podSpec(
      one(
        await render(cp, {
          agent: {
            allowCapabilities: ['SYS_TIME', 'NET_ADMIN'],
            registryCA: { configMap: 'registry-ca', key: 'corp.pem' },
          },
        }),
        'DaemonSet',
      ),
    );
    assert.equal(envOf(wired.containers[0]!).SANDPIT_ALLOW_CAPABILITIES, 'SYS_TIME,NET_ADMIN');
    assert.equal(envOf(wired.containers[0]!).SANDPIT_REGISTRY_CA_FILE, '/etc/sandpit/registry-ca/ca.crt');
    assert.deepEqual(
      (wired.containers[0]!.volumeMounts ?? []).find((m) => m.name === 'registry-ca'),
      { name: 'registry-ca', mountPath: '/etc/sandpit/registry-ca', readOnly: true },
    );
    assert.deepEqual(
      (wired.volumes ?? []).find((v) => v.name === 'registry-ca'),
      { name: 'registry-ca', configMap: { name: 'registry-ca', items: [{ key: 'corp.pem', path: 'ca.crt' }] } },
    );
    const fromNode = podSpec(
      one(await render(cp, { agent: { registryCA: { hostPath: '/etc/pki/registry.pem' } } }), 'DaemonSet'),
    );
    assert.equal(envOf(fromNode.containers[0]!).SANDPIT_REGISTRY_CA_FILE, '/etc/sandpit/registry-ca');
    assert.deepEqual(
      (fromNode.volumes ?? []).find((v) => v.name === 'registry-ca'),
      { name: 'registry-ca', hostPath: { path: '/etc/pki/registry.pem', type: 'File' } },
    );

    const unpriv = podSpec(one(await render(cp, { agent: { privileged: false } }), 'DaemonSet')).containers[0]!;
    const sc = unpriv.securityContext as { privileged: boolean; capabilities: { drop: string[]; add: string[] } };
    assert.equal(sc.privileged, false);
    assert.deepEqual(sc.capabilities.drop, ['ALL']);
    assert.ok(sc.capabilities.add.includes('SYS_ADMIN') && sc.capabilities.add.includes('NET_ADMIN'));
    for (const m of unpriv.volumeMounts ?? [])
      assert.notEqual(m.mountPropagation, 'Bidirectional', 'Bidirectional needs privileged');

    const controller = one(await render(cp, {}), 'Deployment');
    assert.equal((controller.spec as { replicas: number }).replicas, 2);
    const c = podSpec(controller).containers[0]!;
    assert.ok(c.args!.includes('--leader-elect=true'));
    for (const probe of ['livenessProbe', 'readinessProbe', 'startupProbe'])
      assert.ok(c[probe], `controller has a ${probe}`);
    assert.ok((c.resources as { requests?: unknown }).requests, 'controller has requests');
    const pdb = one(await render(cp, {}), 'PodDisruptionBudget');
    assert.equal((pdb.spec as { minAvailable: number }).minAvailable, 1);
  });

  it('switches the certificate method: controller-signed CSRs, cert-manager, or provided Secrets', async () => {
    const tlsVolume = (o: K8sObject) =>
      (podSpec(o).volumes ?? []).find((v) => v.name === 'tls')?.secret as { secretName: string } | undefined;
    const args = (o: K8sObject) => podSpec(o).containers[0]!.args!;
    const controllerMode = await render(cp, {});
    assert.equal(
      byKind(controllerMode, 'Secret').length + byKind(controllerMode, 'Certificate').length,
      0,
      'the controller makes its CA itself',
    );
    assert.equal(tlsVolume(one(controllerMode, 'Deployment')), undefined);
    assert.equal(tlsVolume(one(controllerMode, 'DaemonSet')), undefined);
    assert.ok(args(one(controllerMode, 'Deployment')).includes('--cert-days=90'));
    const signer = JSON.stringify(
      byKind(controllerMode, 'ClusterRole').find((r) => r.metadata.name === 'sandpit-controller')!.rules,
    );
    assert.match(signer, /sandpit\.dev\/agent-serving/);

    const cm = await render(cp, {
      tls: { method: 'certManager', certManager: { agentDNSNames: ['*.nodes.example'] } },
    });
    assert.deepEqual(
      byKind(cm, 'Certificate')
        .map((c) => c.metadata.name)
        .sort(),
      ['sandpit-agent', 'sandpit-ca', 'sandpit-controller'],
    );
    assert.deepEqual(
      byKind(cm, 'Issuer')
        .map((c) => c.metadata.name)
        .sort(),
      ['sandpit-ca', 'sandpit-selfsigned'],
    );
    const agentCert = one(cm, 'Certificate', '-agent').spec as {
      dnsNames: string[];
      usages: string[];
      duration: string;
    };
    assert.deepEqual(agentCert.dnsNames, ['*.nodes.example']);
    assert.deepEqual(agentCert.usages, ['server auth', 'digital signature']);
    assert.equal(agentCert.duration, '2160h');
    assert.equal(
      (one(cm, 'Certificate', '-controller').spec as { commonName: string }).commonName,
      'sandpit-controller',
      'the CN the agents accept',
    );
    assert.ok(args(one(cm, 'DaemonSet')).includes('--tls-cert-file=/etc/sandpit/tls/tls.crt'));
    assert.doesNotMatch(
      JSON.stringify(byKind(cm, 'ClusterRole')),
      /certificatesigningrequests/,
      'no CSR rights without the controller method',
    );

    const issuer = await render(cp, {
      tls: {
        method: 'certManager',
        certManager: { issuerRef: { name: 'corp', kind: 'ClusterIssuer' }, agentDNSNames: ['a'] },
      },
    });
    assert.equal(byKind(issuer, 'Issuer').length, 0);
    for (const c of byKind(issuer, 'Certificate'))
      assert.equal((c.spec as { issuerRef: { name: string } }).issuerRef.name, 'corp');

    const provided = await render(cp, {
      tls: { method: 'provided', provided: { controllerSecretName: 'ctl', agentSecretName: 'agt' } },
    });
    assert.equal(byKind(provided, 'Secret').length + byKind(provided, 'Certificate').length, 0);
    assert.deepEqual(tlsVolume(one(provided, 'Deployment')), { secretName: 'ctl', defaultMode: 0o440 });
    assert.deepEqual(tlsVolume(one(provided, 'DaemonSet')), { secretName: 'agt', defaultMode: 0o400 });
    assert.ok(args(one(provided, 'Deployment')).includes('--tls-ca-file=/etc/sandpit/tls/ca.crt'));
    assert.equal(JSON.stringify(byKind(provided, 'Role')).includes('secrets'), false, 'no Secret rights at all');
  });

  it('grants the controller get (never list) on Secrets for pull secrets only with controller.readPullSecrets', async () => {
    type Rule = { apiGroups: string[]; resources: string[]; verbs: string[] };
    const secretRules = (docs: K8sObject[]) =>
      (one(docs, 'ClusterRole', 'controller') as unknown as { rules: Rule[] }).rules.filter(
        (r) => r.apiGroups.includes('') && r.resources.includes('secrets'),
      );
    assert.deepEqual(secretRules(await render(cp, {})), []);
    assert.deepEqual(
      secretRules(await render(cp, { controller: { readPullSecrets: true } })).map((r) => r.verbs),
      [['get']],
    );
  });

  it('gates the optional objects: ServiceMonitor, NetworkPolicy, PDB, admission policy, user roles', async () => {
    const defaults = await render(cp, {});
    for (const kind of ['ServiceMonitor', 'NetworkPolicy']) assert.equal(byKind(defaults, kind).length, 0, kind);
    const on = await render(cp, { metrics: { serviceMonitor: { enabled: true } }, networkPolicy: { enabled: true } });
    assert.equal(byKind(on, 'ServiceMonitor').length, 1);
    assert.equal(byKind(on, 'NetworkPolicy').length, 1);
    const single = await render(cp, { controller: { replicas: 1 } });
    assert.equal(
      byKind(single, 'PodDisruptionBudget').length,
      0,
      'no PDB for a single replica (it would block drains)',
    );
    const off = await render(cp, { admissionPolicy: { enabled: false }, rbac: { aggregateToDefaultRoles: false } });
    assert.equal(
      byKind(off, 'ValidatingAdmissionPolicy').length + byKind(off, 'ValidatingAdmissionPolicyBinding').length,
      0,
    );
    assert.equal(byKind(off, 'ClusterRole').length, 2, 'only the controller and agent roles');
  });

  it('documents every value in the chart README and types it in values.schema.json', async () => {
    const values = parse(await readFile(join(CHART, 'values.yaml'), 'utf8')) as Record<string, unknown>;
    const readme = await readFile(join(CHART, 'README.md'), 'utf8');
    const schema = JSON.parse(await readFile(join(CHART, 'values.schema.json'), 'utf8')) as {
      properties: Record<string, unknown>;
    };
    const missing: string[] = [];
    const walk = (v: unknown, path: string, depth: number) => {
      if (
        v &&
        typeof v === 'object' &&
        !Array.isArray(v) &&
        Object.keys(v).length > 0 &&
        depth < 3 &&
        !/(Selector|Annotations|Labels|resources|affinity|annotations|labels)$/.test(path)
      ) {
        for (const [k, x] of Object.entries(v)) walk(x, path ? `${path}.${k}` : k, depth + 1);
      } else if (!readme.includes(`\`${path}`)) missing.push(path);
    };
    walk(values, '', 0);
    assert.deepEqual(missing, [], 'values missing from charts/sandpit/README.md');
    assert.deepEqual(
      Object.keys(values).filter((k) => !(k in schema.properties)),
      [],
      'top-level values without a schema',
    );
  });

  it('refuses bad values with messages that name the value and the rule', async () => {
    const cases: Array<[string, object, RegExp]> = [
      ['unknown top-level key', { contoller: {} }, /additional properties 'contoller' not allowed/],
      [
        'unknown nested key (typo)',
        { agent: { stateDirectory: '/x' } },
        /at '\/agent'.*additional properties 'stateDirectory' not allowed/,
      ],
      ['replicas below 1', { controller: { replicas: 0 } }, /at '\/controller\/replicas': minimum: got 0, want 1/],
      [
        'replicas as a string',
        { controller: { replicas: 'two' } },
        /at '\/controller\/replicas': got string, want integer/,
      ],
      [
        'unknown certificate method',
        { tls: { method: 'vault' } },
        /at '\/tls\/method': value must be one of 'controller', 'certManager', 'provided'/,
      ],
      [
        'provided method without Secrets',
        { tls: { method: 'provided' } },
        /at '\/tls\/provided\/controllerSecretName': minLength: got 0, want 1/,
      ],
      ['port out of range', { agent: { apiPort: 70000 } }, /at '\/agent\/apiPort': maximum: got 70,?000, want 65,?535/],
      [
        'relative state dir',
        { agent: { stateDir: 'var/lib/sandpit' } },
        /at '\/agent\/stateDir': '.*' does not match pattern/,
      ],
      [
        'bridge name too long for Linux',
        { agent: { network: { bridge: 'a-very-long-bridge-name' } } },
        /at '\/agent\/network\/bridge'/,
      ],
      ['subnet not a CIDR', { agent: { network: { subnet: '10.0.0.0' } } }, /at '\/agent\/network\/subnet'/],
      [
        'IPv6 subnet that is not a ULA prefix',
        { agent: { network: { subnet6: '2001:db8::/64' } } },
        /at '\/agent\/network\/subnet6'/,
      ],
      [
        'IPv6 subnet too wide for the paired IPv4 lease',
        { agent: { network: { subnet6: 'fd00:88::/48' } } },
        /at '\/agent\/network\/subnet6'/,
      ],
      [
        'user namespace range that is not FIRST:COUNT',
        { agent: { usernsRange: '100000-200000' } },
        /at '\/agent\/usernsRange'/,
      ],
      [
        'unknown capability',
        { agent: { capabilities: ['CAP_SYS_ADMIN'] } },
        /at '\/agent\/capabilities\/0': value must be one of/,
      ],
      [
        'bad update strategy',
        { agent: { updateStrategy: { type: 'Recreate' } } },
        /at '\/agent\/updateStrategy\/type': value must be one of 'RollingUpdate', 'OnDelete'/,
      ],
      [
        'duration with a unit',
        { controller: { leaderElection: { leaseDurationSeconds: '15s' } } },
        /at '\/controller\/leaderElection\/leaseDurationSeconds': got string, want integer/,
      ],
      [
        'cert-manager without agent names',
        { tls: { method: 'certManager' } },
        /tls.method=certManager needs tls.certManager.agentDNSNames/,
      ],
      ['node label with a comma', { agent: { nodeLabels: { disk: 'ssd,nvme' } } }, /at '\/agent\/nodeLabels\/disk'/],
      [
        'bad validation action',
        { admissionPolicy: { validationActions: ['Block'] } },
        /at '\/admissionPolicy\/validationActions\/0': value must be one of 'Deny', 'Warn', 'Audit'/,
      ],
      ['bad digest', { agent: { image: { repository: 'x/agent', digest: 'latest' } } }, /at '\/agent\/image\/digest'/],
      [
        'bad log level',
        { agent: { logLevel: 'verbose' } },
        /at '\/agent\/logLevel': value must be one of 'trace', 'debug', 'info', 'warn', 'error'/,
      ],
      [
        'two controllers without leader election',
        { controller: { leaderElection: { enabled: false } } },
        /controller.replicas > 1 needs controller.leaderElection.enabled=true/,
      ],
      [
        'PDB that blocks every drain',
        { controller: { replicas: 2, podDisruptionBudget: { minAvailable: 2 } } },
        /minAvailable \(2\) must be below controller.replicas \(2\)/,
      ],
      [
        'privileged sandboxes from an unprivileged agent',
        { agent: { privileged: false, allowPrivileged: true } },
        /agent.allowPrivileged=true needs agent.privileged=true/,
      ],
      [
        'unknown capability to allow',
        { agent: { allowCapabilities: ['CAP_SYS_TIME'] } },
        /at '\/agent\/allowCapabilities\/0': value must be one of/,
      ],
      [
        'a capability the unprivileged agent lacks',
        { agent: { privileged: false, allowCapabilities: ['SYS_TIME'] } },
        /agent.allowCapabilities has SYS_TIME, which the unprivileged agent lacks: add it to agent.capabilities too/,
      ],
      [
        'two registry CA sources',
        { agent: { registryCA: { configMap: 'a', secret: 'b' } } },
        /agent.registryCA: set one of configMap, secret or hostPath/,
      ],
      [
        'relative registry CA path',
        { agent: { registryCA: { hostPath: 'etc/ca.pem' } } },
        /at '\/agent\/registryCA\/hostPath'/,
      ],
    ];
    for (const version of [4, 3] as const) {
      for (const [what, values, message] of cases) {
        const r = await template(cp, values, { version });
        assert.notEqual(r.code, 0, `helm ${version}: ${what} must be refused`);
        assert.match(r.stderr.replace(/\n/g, ' '), message, `helm ${version}: ${what}: ${r.stderr}`);
      }
    }
  });

  it('has helm test hooks the API server accepts: a restricted test pod that waits for a test Sandbox', async () => {
    const docs = await render(cp, {}, { namespace: 'x' });
    const hooks = docs.filter((d) => d.metadata.annotations?.['helm.sh/hook'] === 'test');
    const weight = (h: K8sObject) => Number(h.metadata.annotations?.['helm.sh/hook-weight']);
    assert.deepEqual(
      [...hooks].sort((a, b) => weight(a) - weight(b)).map((h) => h.kind),
      ['ServiceAccount', 'Role', 'RoleBinding', 'Sandbox', 'Pod'],
      'RBAC, then the Sandbox, then the pod',
    );
    for (const h of hooks)
      assert.equal(h.metadata.annotations?.['helm.sh/hook-delete-policy'], 'before-hook-creation,hook-succeeded');
    const pod = hooks.find((h) => h.kind === 'Pod')!;
    assert.deepEqual((pod.spec as PodSpec).containers[0]!.args, [
      'wait',
      '--namespace=x',
      '--for=condition=Ready',
      '--timeout=180s',
      'sandbox/sandpit-test',
    ]);
    // Create them for real (nothing runs the pod here) in a namespace that enforces "restricted".
    const ns = freshName('sp-hooks');
    await createNamespace(cp, ns, { 'pod-security.kubernetes.io/enforce': 'restricted' });
    const inNs = (await render(cp, {}, { namespace: ns })).filter(
      (d) => d.metadata.annotations?.['helm.sh/hook'] === 'test',
    );
    for (const h of [...inNs].sort((a, b) => weight(a) - weight(b))) {
      const r = await cp.kubectlResult(['create', '-f', '-'], { input: stringify(h) });
      assert.equal(r.code, 0, `${h.kind}: ${r.stderr}`);
    }
  });

  it('prints NOTES with the next steps, and warns when the namespace would refuse the agent', async () => {
    const ns = freshName('sp-notes');
    await createNamespace(cp, ns, { 'pod-security.kubernetes.io/enforce': 'baseline' });
    // Its own release name: cluster-scoped sandpit-* objects from controllers/manifests may exist.
    const out = await helmOk(cp, [
      'install',
      'sandpit-notes',
      CHART,
      '--namespace',
      ns,
      '--dry-run=server',
      '--set',
      'crds.install=false',
    ]);
    assert.match(out, /kubectl wait --for=condition=Ready sandbox\/hello/);
    assert.match(out, /WARNING: namespace sp-notes-\w+ enforces the "baseline" Pod Security level/);
    assert.match(out, /helm test sandpit-notes --namespace sp-notes-/);
  });
});
