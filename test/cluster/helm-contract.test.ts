import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseControllerArgs } from '../../controllers/config.js';
import { parseAgentArgs } from '../../node-agent/config.js';
import { sharedControlPlane, type ControlPlane } from '../harness/control-plane.js';
import { REPO, parseDocs, render, type K8sObject } from './helm-support.js';

type Container = { args: string[]; env?: Array<{ name: string; value?: string; valueFrom?: unknown }> };

/**
 * The flags and environment the chart gives each container, as the kubelet would
 * (downward-API values filled in, $(VAR) references expanded), parsed by the CLIs'
 * own parsers: a renamed or removed flag fails here, not in a crash-looping pod.
 */
function invocation(o: K8sObject, downward: Record<string, string>): { argv: string[]; env: NodeJS.ProcessEnv } {
  const c = (o.spec!.template!.spec as { containers: Container[] }).containers[0]!;
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) env[e.name] = e.value ?? downward[e.name] ?? '';
  const argv = c.args.map((a) => a.replace(/\$\((\w+)\)/g, (_, v: string) => env[v] ?? `$(${v})`));
  return { argv, env };
}

describe('cluster: the chart drives the real controller and agent CLIs', function () {
  this.timeout(60_000);
  let cp: ControlPlane;
  const downward = {
    POD_NAME: 'sandpit-controller-abc',
    POD_NAMESPACE: 'sandpit-system',
    NODE_NAME: 'node-1',
    HOST_IP: '192.0.2.10',
  };

  before(async () => {
    cp = await sharedControlPlane();
  });

  it('passes the controller only flags it knows, with the values of the chart', async () => {
    const docs = await render(cp, {
      controller: {
        leaderElection: { leaseDurationSeconds: 20, renewDeadlineSeconds: 12, retryPeriodSeconds: 3 },
        nodeLostGraceSeconds: 120,
        workers: 8,
      },
    });
    const { argv, env } = invocation(
      docs.find((d) => d.kind === 'Deployment')!,
      downward,
    );
    const cfg = parseControllerArgs(argv, env);
    assert.equal(cfg.namespace, 'sandpit-system');
    assert.equal(cfg.identity, 'sandpit-controller-abc', 'leader identity is the pod name');
    assert.equal(cfg.leaderElection, true);
    assert.deepEqual(cfg.lease, { leaseDurationMs: 20_000, renewDeadlineMs: 12_000, retryPeriodMs: 3_000 });
    assert.equal(cfg.nodeLostGraceMs, 120_000);
    assert.equal(cfg.workers, 8);
    assert.equal(cfg.healthPort, 8081);
    assert.equal(cfg.agentServiceAccount, 'system:serviceaccount:sandpit-system:sandpit-agent');
    assert.equal(cfg.certDays, 90);
    assert.equal('tlsFiles' in cfg, false, 'tls.method=controller: the controller keeps the CA');

    const single = await render(cp, {
      controller: { replicas: 1, leaderElection: { enabled: false } },
      serviceAccount: { agent: { name: 'node-agent' } },
    });
    const one = parseControllerArgs(
      ...(Object.values(
        invocation(
          single.find((d) => d.kind === 'Deployment')!,
          downward,
        ),
      ) as [string[], NodeJS.ProcessEnv]),
    );
    assert.equal(one.leaderElection, false);
    assert.equal(one.agentServiceAccount, 'system:serviceaccount:sandpit-system:node-agent');

    const provided = await render(cp, {
      tls: { method: 'provided', provided: { controllerSecretName: 'c', agentSecretName: 'a' } },
    });
    const p = parseControllerArgs(
      ...(Object.values(
        invocation(
          provided.find((d) => d.kind === 'Deployment')!,
          downward,
        ),
      ) as [string[], NodeJS.ProcessEnv]),
    );
    assert.deepEqual(p.tlsFiles, {
      ca: '/etc/sandpit/tls/ca.crt',
      cert: '/etc/sandpit/tls/tls.crt',
      key: '/etc/sandpit/tls/tls.key',
    });
  });

  it('passes the agent only flags it knows, with the values of the chart', async () => {
    const docs = await render(cp, {
      agent: {
        apiPort: 20260,
        healthPort: 20261,
        maxSandboxes: 50,
        reserved: { cpu: '250m', memory: '512Mi' },
        nodeLabels: { disk: 'ssd', zone: 'a' },
        allowDirImages: ['/srv/roots', '/opt/images'],
      },
    });
    const ds = docs.find((d) => d.kind === 'DaemonSet')!;
    const { argv, env } = invocation(ds, downward);
    const cfg = parseAgentArgs(argv, env, 'test') as unknown as Record<string, unknown>;
    const text = JSON.stringify(cfg);
    assert.equal(cfg.node ?? cfg.nodeName, 'node-1');
    assert.equal(cfg.namespace, 'sandpit-system');
    assert.equal(cfg.advertiseAddress, '192.0.2.10');
    assert.equal(cfg.maxSandboxes, 50);
    assert.equal(cfg.listenPort, 20260);
    assert.equal(cfg.healthPort, 20261);
    assert.match(text, /"milliCpu":250/);
    assert.match(text, /"disk":"ssd"/);
    assert.match(text, /"zone":"a"/);
    assert.deepEqual(
      (cfg.certificates as { kind: string }).kind,
      'csr',
      'tls.method=controller: the agent requests its certificate',
    );
    // dir: images: allowed below the listed node directories, each mounted read-only at the same path.
    assert.deepEqual((cfg.runtime as { allowDirImages: string[] }).allowDirImages, ['/srv/roots', '/opt/images']);
    const pod = (
      ds.spec as {
        template: {
          spec: {
            volumes: { name: string; hostPath?: { path: string; type: string } }[];
            containers: { volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[] }[];
          };
        };
      }
    ).template.spec;
    for (const dir of ['/srv/roots', '/opt/images']) {
      const vol = pod.volumes.find((v) => v.hostPath?.path === dir);
      assert.equal(vol?.hostPath?.type, 'Directory', `${dir} is a hostPath volume`);
      assert.deepEqual(
        pod.containers[0]!.volumeMounts.find((m) => m.name === vol!.name),
        { name: vol!.name, mountPath: dir, readOnly: true },
      );
    }

    const cm = await render(cp, { tls: { method: 'certManager', certManager: { agentDNSNames: ['*.example'] } } });
    const files = parseAgentArgs(
      ...(Object.values(
        invocation(
          cm.find((d) => d.kind === 'DaemonSet')!,
          downward,
        ),
      ) as [string[], NodeJS.ProcessEnv]),
      'test',
    );
    assert.deepEqual(files.certificates, {
      kind: 'files',
      clientCA: '/etc/sandpit/tls/ca.crt',
      cert: '/etc/sandpit/tls/tls.crt',
      key: '/etc/sandpit/tls/tls.key',
    });
    assert.deepEqual(files.runtime.allowDirImages, [], 'by default a cluster agent refuses every dir: image');
  });
});

type Rule = { apiGroups?: string[]; resources?: string[]; resourceNames?: string[]; verbs: string[] };

/** Each rule as "scope group/resource[/name] verb" lines, so two rule lists compare as sets. */
function grants(objects: K8sObject[], kind: 'ClusterRole' | 'Role', name: string): string[] {
  const role = objects.find((o) => o.kind === kind && o.metadata.name === name);
  assert.ok(role, `${kind} ${name}`);
  const out = new Set<string>();
  for (const r of (role as unknown as { rules: Rule[] }).rules) {
    for (const g of r.apiGroups ?? [''])
      for (const res of r.resources ?? [])
        for (const v of r.verbs)
          for (const n of r.resourceNames ?? ['*'])
            out.add(`${kind} ${g || 'core'}/${res}${n === '*' ? '' : `(${n})`} ${v}`);
  }
  return [...out].sort();
}

describe('cluster: the chart keeps RBAC in step with controllers/manifests', function () {
  this.timeout(60_000);
  let cp: ControlPlane;
  before(async () => {
    cp = await sharedControlPlane();
  });

  it('grants each component what controllers/manifests grants, narrower only where documented', async () => {
    const dir = join(REPO, 'controllers', 'manifests');
    const manifests = parseDocs(
      (
        await Promise.all(
          (await readdir(dir)).filter((f) => f.endsWith('.yaml')).map((f) => readFile(join(dir, f), 'utf8')),
        )
      ).join('\n---\n'),
    );
    const chart = await render(cp, {}, { namespace: 'sandpit-system', release: 'sandpit' });
    // The chart is narrower in two places: the controller may update only its own
    // leader Lease (controllers/manifests lets it update any Lease in the namespace),
    // and it reads pull Secrets only with controller.readPullSecrets (off by default).
    const narrower: Record<string, Set<string>> = {
      'sandpit-controller': new Set(['Role coordination.k8s.io/leases update', 'ClusterRole core/secrets get']),
      'sandpit-agent': new Set(),
    };
    const wider: Record<string, Set<string>> = {
      'sandpit-controller': new Set([
        'Role coordination.k8s.io/leases(sandpit-controller) update',
        'Role coordination.k8s.io/leases(sandpit-controller) patch',
      ]),
      'sandpit-agent': new Set(),
    };
    for (const name of ['sandpit-controller', 'sandpit-agent']) {
      for (const kind of ['ClusterRole', 'Role'] as const) {
        const want = grants(manifests, kind, name).filter((g) => !narrower[name]!.has(g));
        const got = grants(chart, kind, name).filter((g) => !wider[name]!.has(g));
        assert.deepEqual(got, want, `${kind} ${name}`);
      }
    }
    const policy = (objs: K8sObject[]) =>
      objs.find((o) => o.kind === 'ValidatingAdmissionPolicy')!.spec as {
        matchConstraints: unknown;
        matchConditions: unknown;
      };
    assert.deepEqual(
      policy(chart).matchConstraints,
      policy(manifests).matchConstraints,
      'the admission policy matches the same requests',
    );
    assert.deepEqual(policy(chart).matchConditions, policy(manifests).matchConditions, 'and the same requester');
  });
});
