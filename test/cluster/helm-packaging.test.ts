import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { sharedControlPlane, type ControlPlane } from '../harness/control-plane.js';
import { CHART, REPO, helmOk, render, run } from './helm-support.js';

/**
 * The images and the CI workflow. No container engine or registry is reachable on
 * this machine, so the Dockerfile cannot be built here: these are structural
 * checks of what a linter (hadolint) and a reviewer would check, tied to the
 * chart (ports, entrypoints, users) so the pieces cannot drift apart.
 */

interface Instruction {
  op: string;
  args: string;
  line: number;
}
interface Stage {
  base: string;
  name: string;
  platform?: string;
  body: Instruction[];
}

/** Parses a Dockerfile into stages (continuation lines joined, comments and parser directives dropped). */
function parseDockerfile(text: string): { args: Map<string, string>; stages: Stage[] } {
  const lines: Instruction[] = [];
  let pending = '';
  let start = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!pending && (line === '' || line.startsWith('#'))) return;
    if (pending && line.startsWith('#')) return;
    if (!pending) start = i + 1;
    pending += (pending ? ' ' : '') + line.replace(/\\$/, '').trim();
    if (line.endsWith('\\')) return;
    const m = /^(\w+)\s+(.*)$/.exec(pending)!;
    lines.push({ op: m[1]!.toUpperCase(), args: m[2]!, line: start });
    pending = '';
  });
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const ins of lines) {
    if (ins.op === 'FROM') {
      const m = /^(?:--platform=(\S+)\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args)!;
      stages.push({ platform: m[1], base: m[2]!, name: m[3] ?? String(stages.length), body: [] });
    } else if (stages.length === 0) {
      assert.equal(ins.op, 'ARG', `only ARG may precede the first FROM (line ${ins.line})`);
      const [k, v = ''] = ins.args.split('=', 2) as [string, string?];
      args.set(k, v);
    } else {
      stages.at(-1)!.body.push(ins);
    }
  }
  return { args, stages };
}

const expand = (s: string, args: Map<string, string>): string => {
  let out = s;
  for (let i = 0; i < 5; i++)
    out = out.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string, b: string) => args.get(a ?? b) ?? `\${${a ?? b}}`);
  return out;
};

/** Every instruction a stage runs, including those of the stages it is built FROM. */
function lineage(stages: Stage[], name: string): Instruction[] {
  const stage = stages.find((s) => s.name === name)!;
  const parent = stages.find((s) => s.name === stage.base);
  return [...(parent ? lineage(stages, parent.name) : []), ...stage.body];
}

describe('cluster: images, CI workflow and the packaged chart', function () {
  this.timeout(60_000);
  let cp: ControlPlane;
  let docker: ReturnType<typeof parseDockerfile>;

  before(async () => {
    cp = await sharedControlPlane();
    docker = parseDockerfile(await readFile(join(REPO, 'Dockerfile'), 'utf8'));
  });

  it('builds in stages from pinned bases (exact release tags, never latest)', () => {
    const names = docker.stages.map((s) => s.name);
    assert.ok(names.includes('controller') && names.includes('agent'), `targets: ${names.join(', ')}`);
    assert.ok(docker.stages.length >= 4, 'multi-stage: build, deps, runtime, images');
    for (const stage of docker.stages) {
      if (names.includes(stage.base)) continue;
      const image = expand(stage.base, docker.args);
      assert.match(
        image,
        /^[a-z0-9.-]+\/[a-z0-9/._-]+:[0-9]+\.[0-9]+\.[0-9]+-[a-z]+(-slim)?(@sha256:[a-f0-9]{64})?$/,
        `stage ${stage.name}: ${image} must name an exact release`,
      );
      assert.doesNotMatch(image, /:latest\b/);
    }
    const build = docker.stages.find((s) => s.name === 'build')!;
    assert.equal(build.platform, '$BUILDPLATFORM', 'TypeScript compiles once, on the builder platform');
    for (const s of docker.stages) {
      for (const ins of s.body) {
        assert.notEqual(ins.op, 'ADD', `line ${ins.line}: COPY, not ADD`);
        if (ins.op === 'COPY') {
          const from = /--from=(\S+)/.exec(ins.args)?.[1];
          if (from)
            assert.ok(
              names.indexOf(from) >= 0 && names.indexOf(from) < names.indexOf(s.name),
              `line ${ins.line}: --from=${from} is an earlier stage`,
            );
        }
        if (ins.op === 'RUN' && /apt-get install/.test(ins.args)) {
          assert.match(ins.args, /--no-install-recommends/, `line ${ins.line}`);
          assert.match(ins.args, /apt-get update/, `line ${ins.line}: update and install in one layer`);
          assert.match(ins.args, /rm -rf \/var\/lib\/apt\/lists/, `line ${ins.line}: no apt lists in the image`);
        }
      }
    }
  });

  it('runs the controller as non-root and the agent under tini with the tools it needs', async () => {
    const pkg = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    const last = (stage: string, op: string) =>
      lineage(docker.stages, stage)
        .filter((i) => i.op === op)
        .at(-1)?.args;
    const controllerUser = last('controller', 'USER')!;
    assert.match(controllerUser, /^[1-9][0-9]*:[1-9][0-9]*$/, 'numeric non-root user (runAsNonRoot can verify it)');
    const ctlDeploy = (await render(cp, {})).find((d) => d.kind === 'Deployment')!;
    const podUser = String((ctlDeploy.spec!.template!.spec.securityContext as { runAsUser: number }).runAsUser);
    assert.equal(controllerUser.split(':')[0], podUser, 'the chart runs the image as its own user');

    const ctlEntry = JSON.parse(last('controller', 'ENTRYPOINT')!) as string[];
    assert.equal(ctlEntry[0], 'node');
    assert.equal(ctlEntry.at(-1), `/app/${pkg.bin['sandpit-controller']}`);
    const agentEntry = JSON.parse(last('agent', 'ENTRYPOINT')!) as string[];
    assert.deepEqual(agentEntry.slice(0, 3), ['/usr/bin/tini', '-s', '--'], 'tini as init, subreaper under hostPID');
    assert.equal(agentEntry.at(-1), `/app/${pkg.bin['sandpit-agent']}`);
    assert.equal(last('agent', 'USER'), '0:0');

    const installs = lineage(docker.stages, 'agent')
      .filter((i) => i.op === 'RUN' && /apt-get install/.test(i.args))
      .map((i) => i.args)
      .join(' ');
    for (const pkgName of ['tini', 'catatonit', 'nftables', 'iproute2', 'kmod', 'ca-certificates'])
      assert.match(installs, new RegExp(`\\b${pkgName}\\b`), pkgName);
    assert.doesNotMatch(
      lineage(docker.stages, 'controller')
        .map((i) => i.args)
        .join(' '),
      /apt-get install/,
      'the controller image adds no packages',
    );

    const exposed = (stage: string) => last(stage, 'EXPOSE')!.split(/\s+/).map(Number).sort();
    const values = parse(await readFile(join(CHART, 'values.yaml'), 'utf8')) as {
      controller: { port: number; streams: { port: number } };
      agent: { apiPort: number; healthPort: number };
    };
    assert.deepEqual(exposed('controller'), [values.controller.port, values.controller.streams.port].sort());
    assert.deepEqual(exposed('agent'), [values.agent.apiPort, values.agent.healthPort].sort());
    const dockerignore = await readFile(join(REPO, '.dockerignore'), 'utf8');
    assert.match(dockerignore, /^\*\*$/m, 'the build context is an allow-list');
  });

  it('has a CI workflow that builds both images for amd64 and arm64, pushes on main and tags, and publishes the chart', async () => {
    const wf = parse(await readFile(join(REPO, '.github', 'workflows', 'images.yaml'), 'utf8')) as {
      on: { push: { branches: string[]; tags: string[] }; pull_request: unknown };
      permissions: Record<string, string>;
      jobs: Record<
        string,
        {
          strategy?: { matrix: { component: string[] } };
          permissions?: Record<string, string>;
          steps: Array<{ uses?: string; with?: Record<string, unknown>; run?: string; if?: string }>;
        }
      >;
    };
    assert.deepEqual(wf.permissions, { contents: 'read' }, 'least privilege by default');
    assert.deepEqual(wf.on.push.branches, ['main']);
    assert.ok(wf.on.push.tags.length > 0 && wf.on.pull_request);
    const image = wf.jobs.image!;
    assert.deepEqual(image.strategy!.matrix.component.sort(), ['agent', 'controller']);
    assert.equal(image.permissions!.packages, 'write');
    const build = image.steps.find((s) => s.uses?.startsWith('docker/build-push-action@'))!;
    assert.equal(build.with!.target, '${{ matrix.component }}');
    assert.equal(build.with!.file, 'Dockerfile');
    assert.match(String(build.with!.platforms), /linux\/amd64/);
    assert.match(String(build.with!.platforms), /linux\/arm64/);
    assert.equal(build.with!.push, "${{ github.event_name != 'pull_request' }}", 'pull requests build but do not push');
    for (const job of Object.values(wf.jobs)) {
      for (const step of job.steps)
        if (step.uses) assert.match(step.uses, /^[\w.-]+\/[\w.-]+@(v\d+|[a-f0-9]{40})$/, `${step.uses}: pinned`);
    }
    const chart = wf.jobs.chart!.steps.map((s) => s.run ?? '').join('\n');
    assert.match(chart, /helm lint --strict charts\/sandpit/);
    assert.match(chart, /helm push .*oci:\/\//);
  });

  it('packages into a chart archive with the CRDs and the Argo CD check, without the CI value sets', async () => {
    const out = await mkdtemp(join(tmpdir(), 'sandpit-chart-'));
    try {
      await helmOk(cp, ['package', CHART, '-d', out]);
      const listing = await run('tar', ['-tzf', join(out, 'sandpit-0.1.0.tgz')]);
      assert.equal(listing.code, 0, listing.stderr);
      const files = listing.stdout.split('\n');
      for (const f of [
        'sandpit/Chart.yaml',
        'sandpit/values.schema.json',
        'sandpit/files/crds/sandboxes.yaml',
        'sandpit/files/crds/sandboxnodes.yaml',
        'sandpit/argocd/health.lua',
        'sandpit/templates/NOTES.txt',
      ]) {
        assert.ok(files.includes(f), `${f} packaged`);
      }
      assert.ok(!files.some((f) => f.startsWith('sandpit/ci/')), 'ci/ is for chart-testing only');
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});
