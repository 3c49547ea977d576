import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { sharedControlPlane, type ControlPlane } from '../harness/control-plane.js';
import { CHART, REPO, createNamespace, freshName, parseDocs, render, type K8sObject } from './helm-support.js';

const ARGO = join(CHART, 'argocd');
const GITOPS = join(REPO, 'examples', 'gitops');

describe('cluster: GitOps — the Argo CD health check and the examples', function () {
  this.timeout(60_000);
  let cp: ControlPlane;
  let script: string;

  before(async () => {
    cp = await sharedControlPlane();
    script = await readFile(join(ARGO, 'health.lua'), 'utf8');
  });

  it('ships the same script in the argocd-cm example', async () => {
    const cm = parse(await readFile(join(GITOPS, 'argocd', 'argocd-cm-sandpit-health.yaml'), 'utf8')) as {
      data: Record<string, string>;
    };
    assert.equal(cm.data['resource.customizations.health.sandpit.dev_Sandbox'], script);
  });

  it('has an Argo CD Application and a Flux HelmRelease whose values the chart accepts and the API server admits', async () => {
    const app = parse(await readFile(join(GITOPS, 'argocd', 'application.yaml'), 'utf8')) as {
      kind: string;
      spec: {
        source: { chart: string; helm: { valuesObject: object; skipTests: boolean } };
        destination: { namespace: string };
        syncPolicy: { managedNamespaceMetadata: { labels: Record<string, string> } };
      };
    };
    assert.equal(app.kind, 'Application');
    assert.equal(app.spec.source.chart, 'sandpit');
    assert.equal(app.spec.source.helm.skipTests, true);
    assert.equal(
      app.spec.syncPolicy.managedNamespaceMetadata.labels['pod-security.kubernetes.io/enforce'],
      'privileged',
    );
    const flux = parseDocs(
      (
        await Promise.all(
          (await readdir(join(GITOPS, 'flux'))).sort().map((f) => readFile(join(GITOPS, 'flux', f), 'utf8')),
        )
      ).join('\n---\n'),
    );
    const release = flux.find((d) => d.kind === 'HelmRelease') as K8sObject & {
      spec: { values: object; chart: { spec: { chart: string } } };
    };
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
      const applied = await cp.kubectlResult(['apply', '--dry-run=server', '-n', fresh, '-f', '-'], {
        input: docs.map((d) => stringify(d)).join('---\n'),
      });
      assert.equal(applied.code, 0, `${name}: ${applied.stderr}`);
      if (name === 'argocd') {
        for (const crd of docs.filter((d) => d.kind === 'CustomResourceDefinition')) {
          assert.match(
            crd.metadata.annotations?.['argocd.argoproj.io/sync-options'] ?? '',
            /Delete=false/,
            'Argo CD must not delete the CRDs',
          );
        }
      }
    }
  });
});
