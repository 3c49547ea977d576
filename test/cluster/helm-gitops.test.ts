import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { sharedControlPlane, type ControlPlane } from '../harness/control-plane.js';
import { CHART, REPO, createNamespace, ensureCrds, freshName, kstatusBinary, parseDocs, render, run, type K8sObject } from './helm-support.js';

const ARGO = join(CHART, 'argocd');
const GITOPS = join(REPO, 'examples', 'gitops');

/** A JSON value as a Lua table constructor (what Argo CD hands the script as `obj`). */
function toLua(value: unknown): string {
  if (value === null || value === undefined) return 'nil';
  if (typeof value === 'boolean' || typeof value === 'number') return String(value);
  if (typeof value === 'string') {
    let out = '"';
    for (const ch of value) {
      const code = ch.codePointAt(0)!;
      if (ch === '"' || ch === '\\') out += `\\${ch}`;
      else if (code < 0x20 || code > 0x7e) out += `\\u{${code.toString(16)}}`;
      else out += ch;
    }
    return `${out}"`;
  }
  if (Array.isArray(value)) return `{${value.map(toLua).join(', ')}}`;
  return `{${Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `[${toLua(k)}] = ${toLua(v)}`)
    .join(', ')}}`;
}

/** Runs the health script the way Argo CD does (global `obj`, the script's return value). */
async function argoHealth(script: string, obj: unknown): Promise<{ status: string; message: string }> {
  const program = [
    `obj = ${toLua(obj)}`,
    'local function check()',
    script,
    'end',
    'local hs = check()',
    'io.write(tostring(hs.status), "\\n", tostring(hs.message))',
  ].join('\n');
  const r = await run('lua5.4', ['-'], { input: program });
  assert.equal(r.code, 0, `lua5.4 failed: ${r.stderr}`);
  const [status = '', message = ''] = r.stdout.split('\n');
  return { status, message };
}

/** What kstatus makes of each sample; see the README's kstatus section for the two InProgress cases. */
const KSTATUS: Record<string, string> = {
  'testdata/healthy.yaml': 'Current',
  'testdata/progressing-new.yaml': 'Current', // no status at all: kstatus assumes current, so the controller writes Ready=Unknown at once
  'testdata/progressing-pulling.yaml': 'InProgress',
  'testdata/progressing-stale-generation.yaml': 'InProgress',
  'testdata/degraded-stalled.yaml': 'Failed',
  'testdata/degraded-image-pull.yaml': 'Failed',
  'testdata/degraded-crashloop.yaml': 'InProgress', // restarting, not (yet) declared Stalled
  'testdata/degraded-failed.yaml': 'Failed',
  'testdata/suspended-paused.yaml': 'InProgress', // kstatus has no "suspended": Ready=False while paused
  'testdata/progressing-pausing.yaml': 'InProgress',
  'testdata/healthy-succeeded.yaml': 'InProgress', // completed: Ready=False, like a Pod's
  'testdata/unknown-node-lost.yaml': 'InProgress',
};

interface HealthTest {
  tests: Array<{ healthStatus: { status: string; message: string }; inputPath: string }>;
}

describe('cluster tier: GitOps — the Argo CD health check and the examples', function () {
  this.timeout(60_000);
  let cp: ControlPlane;
  let script: string;
  let cases: HealthTest['tests'];

  before(async () => {
    cp = await sharedControlPlane();
    script = await readFile(join(ARGO, 'health.lua'), 'utf8');
    cases = (parse(await readFile(join(ARGO, 'health_test.yaml'), 'utf8')) as HealthTest).tests;
  });

  it('gives each sample Sandbox status the right Argo CD health (lua5.4)', async () => {
    const seen = new Set<string>();
    for (const c of cases) {
      const obj = parse(await readFile(join(ARGO, c.inputPath), 'utf8')) as unknown;
      const got = await argoHealth(script, obj);
      assert.deepEqual(got, c.healthStatus, c.inputPath);
      seen.add(got.status);
    }
    for (const status of ['Healthy', 'Progressing', 'Degraded', 'Suspended', 'Unknown']) assert.ok(seen.has(status), `a sample is ${status}`);
    assert.equal(cases.length, (await readdir(join(ARGO, 'testdata'))).length, 'every sample file has a case');
  });

  it('gives each sample the kstatus result Flux sees (sigs.k8s.io/cli-utils kstatus, built with Go)', async function () {
    this.timeout(240_000); // the first build fetches cli-utils from the Go module proxy
    const objects = await Promise.all(cases.map(async (c) => parse(await readFile(join(ARGO, c.inputPath), 'utf8')) as unknown));
    const r = await run(await kstatusBinary(), [], { input: JSON.stringify(objects) });
    assert.equal(r.code, 0, r.stderr);
    const got = Object.fromEntries(r.stdout.trim().split('\n').map((line, i) => [cases[i]!.inputPath, line.split('\t')[0]!]));
    assert.deepEqual(got, KSTATUS);
  });

  it('has samples that are real Sandbox statuses (the API server accepts each through /status)', async () => {
    const ns = freshName('sp-argo');
    await createNamespace(cp, ns);
    await ensureCrds(cp);
    for (const c of cases) {
      const obj = parse(await readFile(join(ARGO, c.inputPath), 'utf8')) as K8sObject & { status?: unknown };
      const { status, ...rest } = obj;
      const created = await cp.kubectlResult(['create', '-n', ns, '-f', '-'], {
        input: stringify({ ...rest, metadata: { name: obj.metadata.name, namespace: ns } }),
      });
      assert.equal(created.code, 0, `${c.inputPath}: ${created.stderr}`);
      if (!status) continue;
      // Strict field validation: a misspelt status field is an error, not silently pruned.
      const live = JSON.parse((await cp.kubectl(['get', '-n', ns, 'sandbox', obj.metadata.name, '-o', 'json'])).stdout) as object;
      const patched = await cp.kubectlResult(['replace', '--subresource=status', '--validate=strict', '-f', '-'], { input: JSON.stringify({ ...live, status }) });
      assert.equal(patched.code, 0, `${c.inputPath}: ${patched.stderr}`);
    }
  });

  it('ships the same script in the argocd-cm example', async () => {
    const cm = parse(await readFile(join(GITOPS, 'argocd', 'argocd-cm-sandpit-health.yaml'), 'utf8')) as { data: Record<string, string> };
    assert.equal(cm.data['resource.customizations.health.sandpit.dev_Sandbox'], script);
  });

  it('has an Argo CD Application and a Flux HelmRelease whose values the chart accepts and the API server admits', async () => {
    const app = parse(await readFile(join(GITOPS, 'argocd', 'application.yaml'), 'utf8')) as {
      kind: string;
      spec: { source: { chart: string; helm: { valuesObject: object; skipTests: boolean } }; destination: { namespace: string }; syncPolicy: { managedNamespaceMetadata: { labels: Record<string, string> } } };
    };
    assert.equal(app.kind, 'Application');
    assert.equal(app.spec.source.chart, 'sandpit');
    assert.equal(app.spec.source.helm.skipTests, true);
    assert.equal(app.spec.syncPolicy.managedNamespaceMetadata.labels['pod-security.kubernetes.io/enforce'], 'privileged');
    const flux = parseDocs(
      (await Promise.all((await readdir(join(GITOPS, 'flux'))).sort().map((f) => readFile(join(GITOPS, 'flux', f), 'utf8')))).join('\n---\n'),
    );
    const release = flux.find((d) => d.kind === 'HelmRelease') as K8sObject & { spec: { values: object; chart: { spec: { chart: string } } } };
    assert.equal(release.spec.chart.spec.chart, 'sandpit');
    const namespace = flux.find((d) => d.kind === 'Namespace')!;
    assert.equal(namespace.metadata.labels?.['pod-security.kubernetes.io/enforce'], 'privileged');

    for (const [name, values, ns] of [
      ['argocd', app.spec.source.helm.valuesObject, app.spec.destination.namespace],
      ['flux', release.spec.values, release.metadata.namespace!],
    ] as const) {
      const fresh = freshName(`sp-${name}`);
      await createNamespace(cp, fresh, { 'pod-security.kubernetes.io/enforce': 'privileged' });
      const docs = await render(cp, values, { namespace: fresh, extra: ['--skip-tests'] });
      assert.ok(ns.length > 0);
      const applied = await cp.kubectlResult(['apply', '--dry-run=server', '-n', fresh, '-f', '-'], { input: docs.map((d) => stringify(d)).join('---\n') });
      assert.equal(applied.code, 0, `${name}: ${applied.stderr}`);
      if (name === 'argocd') {
        for (const crd of docs.filter((d) => d.kind === 'CustomResourceDefinition')) {
          assert.match(crd.metadata.annotations?.['argocd.argoproj.io/sync-options'] ?? '', /Delete=false/, 'Argo CD must not delete the CRDs');
        }
      }
    }
  });
});
