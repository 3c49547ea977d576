/**
 * Shared pieces of the chart tests (test/cluster/helm-*.test.ts): where the chart
 * is, running helm 4 (from hack/tools.sh) and helm 3 (built once from the Go
 * module proxy and cached), rendering with values, and fresh namespaces.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, stringify } from 'yaml';
import type { ControlPlane } from '../harness/control-plane.js';

/** Repository root (this file runs from dist/test/cluster/). */
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const CHART = join(REPO, 'charts', 'sandpit');

/** The helm 3 release the chart is tested with besides helm 4. */
export const HELM3_VERSION = 'v3.19.5';
/** The Kubernetes version helm 3 assumes without a cluster (its Makefile sets it; `go install` alone leaves 1.20). */
const HELM3_K8S_MINOR = '34';

export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A temp dir for this test process, removed when it exits. */
function processTempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix)).then((dir) => {
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    return dir;
  });
}

let helmHome: Promise<string> | undefined;
/** A private HELM_*_HOME so tests neither read nor write the user's helm config. */
function helmEnv(): Promise<NodeJS.ProcessEnv> {
  helmHome ??= processTempDir('sandpit-helm-home-');
  return helmHome.then((home) => ({
    ...process.env,
    HELM_CACHE_HOME: join(home, 'cache'),
    HELM_CONFIG_HOME: join(home, 'config'),
    HELM_DATA_HOME: join(home, 'data'),
  }));
}

/** Runs a program; resolves with its exit code and output (never rejects on a non-zero exit). */
export async function run(
  file: string,
  args: string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<ToolResult> {
  return new Promise((resolvePromise, reject) => {
    const child = execFile(file, args, { maxBuffer: 64 << 20, env: opts.env ?? process.env }, (err, stdout, stderr) => {
      if (err && typeof (err as { code?: unknown }).code !== 'number') {
        reject(err);
        return;
      }
      resolvePromise({ code: err ? Number((err as { code?: number }).code) : 0, stdout, stderr });
    });
    child.stdin?.end(opts.input ?? '');
  });
}

let helm3: Promise<string> | undefined;
/**
 * The helm 3 binary: built from helm.sh/helm/v3 with `go install` on first use
 * (about a minute with a warm module cache) and cached under ~/.cache/sandpit.
 */
export function helm3Binary(): Promise<string> {
  helm3 ??= (async () => {
    const cache = process.env.SANDPIT_CACHE ?? join(homedir(), '.cache', 'sandpit');
    const dir = join(cache, 'helm3', `${HELM3_VERSION}-k8s1.${HELM3_K8S_MINOR}`);
    const bin = join(dir, 'helm');
    if (existsSync(bin)) return bin;
    await mkdir(dir, { recursive: true });
    const ldflags = [
      '-s -w',
      `-X helm.sh/helm/v3/internal/version.version=${HELM3_VERSION}`,
      ...['pkg/chartutil', 'pkg/lint/rules'].flatMap((pkg) => [
        `-X helm.sh/helm/v3/${pkg}.k8sVersionMajor=1`,
        `-X helm.sh/helm/v3/${pkg}.k8sVersionMinor=${HELM3_K8S_MINOR}`,
      ]),
    ].join(' ');
    const r = await run(
      'go',
      ['install', '-trimpath', '-ldflags', ldflags, `helm.sh/helm/v3/cmd/helm@${HELM3_VERSION}`],
      {
        env: { ...process.env, GOBIN: dir },
      },
    );
    if (r.code !== 0) throw new Error(`building helm ${HELM3_VERSION} failed: ${r.stderr}`);
    return bin;
  })();
  return helm3;
}

export type HelmVersion = 3 | 4;

/** Runs helm (4 by default) against the control plane. */
export async function helm(
  cp: ControlPlane,
  args: string[],
  opts: { version?: HelmVersion; input?: string } = {},
): Promise<ToolResult> {
  const bin = opts.version === 3 ? await helm3Binary() : join(cp.bin, 'helm');
  return run(bin, [...args, '--kubeconfig', cp.kubeconfigPath], { env: await helmEnv(), input: opts.input });
}

/** Like helm(), but throws with helm's stderr on a non-zero exit. */
export async function helmOk(cp: ControlPlane, args: string[], opts: { version?: HelmVersion } = {}): Promise<string> {
  const r = await helm(cp, args, opts);
  if (r.code !== 0) throw new Error(`helm ${args.join(' ')} failed (${r.code}):\n${r.stderr}`);
  return r.stdout;
}

let valuesDir: Promise<string> | undefined;
/** Writes a values object to a temp file and returns its path. */
export async function valuesFile(values: object): Promise<string> {
  valuesDir ??= processTempDir('sandpit-helm-values-');
  const path = join(await valuesDir, `${randomBytes(6).toString('hex')}.yaml`);
  await writeFile(path, stringify(values));
  return path;
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [k: string]: unknown;
  };
  spec?: Record<string, unknown> & { template?: { spec: Record<string, unknown> } };
  [k: string]: unknown;
}

/** Parses a multi-document YAML stream, dropping empty documents. */
export function parseDocs(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`bad YAML: ${d.errors[0]!.message}`);
      return d.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null && typeof o === 'object');
}

/** `helm template` of the chart with the given values; returns the raw result. */
export async function template(
  cp: ControlPlane,
  values: object,
  opts: { namespace?: string; release?: string; extra?: string[]; version?: HelmVersion } = {},
): Promise<ToolResult> {
  const args = [
    'template',
    opts.release ?? 'sandpit',
    CHART,
    '--namespace',
    opts.namespace ?? 'sandpit-system',
    '-f',
    await valuesFile(values),
    ...(opts.extra ?? []),
  ];
  return helm(cp, args, { version: opts.version });
}

/** Renders and parses; throws with helm's message when rendering fails. */
export async function render(
  cp: ControlPlane,
  values: object,
  opts: Parameters<typeof template>[2] = {},
): Promise<K8sObject[]> {
  const r = await template(cp, values, opts);
  if (r.code !== 0) throw new Error(`helm template failed:\n${r.stderr}`);
  return parseDocs(r.stdout);
}

/** A namespace name no other test uses (namespaces never finish deleting here). */
export function freshName(prefix: string): string {
  return `${prefix}-${randomBytes(3).toString('hex')}`;
}

/** Creates a namespace, optionally with labels (e.g. Pod Security levels). */
export async function createNamespace(
  cp: ControlPlane,
  name: string,
  labels: Record<string, string> = {},
): Promise<void> {
  await cp.kubectl(['apply', '-f', '-'], {
    input: stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } }),
  });
  // No controller-manager here makes the "default" ServiceAccount; pods need one.
  await cp.kubectlResult(['-n', name, 'create', 'serviceaccount', 'default']);
}

/**
 * Lets a release adopt CRDs that exist without Helm's ownership metadata (another
 * test, or an admin, applied crds/*.yaml with kubectl): the documented way to
 * bring existing objects under a release.
 */
export async function adoptCrds(cp: ControlPlane, release: string, namespace: string): Promise<void> {
  for (const crd of ['sandboxes.sandpit.dev', 'sandboxnodes.sandpit.dev']) {
    const got = await cp.kubectlResult(['get', 'crd', crd]);
    if (got.code !== 0) continue;
    await cp.kubectl(['label', '--overwrite', 'crd', crd, 'app.kubernetes.io/managed-by=Helm']);
    await cp.kubectl([
      'annotate',
      '--overwrite',
      'crd',
      crd,
      `meta.helm.sh/release-name=${release}`,
      `meta.helm.sh/release-namespace=${namespace}`,
    ]);
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Creates the CRDs from the generated crds/*.yaml unless they exist, and waits until they serve. */
export async function ensureCrds(cp: ControlPlane): Promise<void> {
  for (const [crd, file] of [
    ['sandboxes.sandpit.dev', 'sandboxes.yaml'],
    ['sandboxnodes.sandpit.dev', 'sandboxnodes.yaml'],
  ] as const) {
    if ((await cp.kubectlResult(['get', 'crd', crd])).code !== 0)
      await cp.kubectlResult(['create', '-f', join(REPO, 'crds', file)]);
  }
  await cp.kubectl([
    'wait',
    '--for=condition=Established',
    '--timeout=30s',
    'crd/sandboxes.sandpit.dev',
    'crd/sandboxnodes.sandpit.dev',
  ]);
}

let kstatus: Promise<string> | undefined;
/**
 * The kstatus program of test/cluster/helm-kstatus (sigs.k8s.io/cli-utils, the
 * library Flux's wait and health checks use), built once from the Go module
 * proxy and cached by the hash of its sources.
 */
export function kstatusBinary(): Promise<string> {
  kstatus ??= (async () => {
    const src = join(REPO, 'test', 'cluster', 'helm-kstatus');
    const hash = createHash('sha256');
    for (const f of ['go.mod', 'go.sum', 'main.go']) hash.update(await readFile(join(src, f)));
    const dir = join(
      process.env.SANDPIT_CACHE ?? join(homedir(), '.cache', 'sandpit'),
      'helm-kstatus',
      hash.digest('hex').slice(0, 16),
    );
    const bin = join(dir, 'helm-kstatus');
    if (existsSync(bin)) return bin;
    await mkdir(dir, { recursive: true });
    const r = await run('go', ['-C', src, 'build', '-trimpath', '-o', bin, '.']);
    if (r.code !== 0) throw new Error(`building the kstatus checker failed: ${r.stderr}`);
    return bin;
  })();
  return kstatus;
}

/**
 * Starts both Go builds (helm 3, the kstatus checker) in the background, so a cold
 * cache costs one build time, not two in a row. Failures surface where the tools are used.
 */
export function prewarmGoTools(): void {
  helm3Binary().catch(() => undefined);
  kstatusBinary().catch(() => undefined);
}

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
export async function argoHealth(script: string, obj: unknown): Promise<{ status: string; message: string }> {
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
