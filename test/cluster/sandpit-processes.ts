import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort, type ControlPlane } from '../harness/control-plane.js';

/*
 * Helpers of the controller and agent cluster tests: the controller as a real
 * process (the sandpit-controller CLI), agent credentials exactly like a
 * DaemonSet pod's (a ServiceAccount token bound to a pod on a node), and
 * polling until the API server shows the expected state.
 */

const ROOT = new URL('../../..', import.meta.url).pathname;
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `check` returns a value (not undefined/false); fails with the last observation after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  timeoutMs = 60_000,
  everyMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
      last = v;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
    await sleep(everyMs);
  }
}

export async function applyCRDs(cp: ControlPlane): Promise<void> {
  await cp.kubectl([
    'apply',
    '--server-side',
    '--force-conflicts',
    '-f',
    join(ROOT, 'crds/sandboxes.yaml'),
    '-f',
    join(ROOT, 'crds/sandboxnodes.yaml'),
  ]);
  await cp.kubectl([
    'wait',
    '--for=condition=Established',
    'crd/sandboxes.sandpit.dev',
    'crd/sandboxnodes.sandpit.dev',
  ]);
}

export async function applyManifests(cp: ControlPlane): Promise<void> {
  await cp.kubectl(['create', 'namespace', 'sandpit-system']).catch(() => undefined);
  const dir = join(ROOT, 'controllers/manifests');
  await cp.kubectl([
    'apply',
    '-f',
    join(dir, 'rbac-controller.yaml'),
    '-f',
    join(dir, 'rbac-agent.yaml'),
    '-f',
    join(dir, 'admission-policy.yaml'),
  ]);
}

export interface ControllerProcess {
  child: ChildProcess;
  identity: string;
  healthPort: number;
  logPath: string;
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `node dist/controllers/main.js` against the control plane, logging to a file in its directory. */
export async function startController(
  cp: ControlPlane,
  identity: string,
  args: string[] = [],
): Promise<ControllerProcess> {
  const healthPort = await freePort();
  const logPath = join(cp.dir, `controller-${identity}.log`);
  const fd = openSync(logPath, 'a');
  const child = spawn(
    process.execPath,
    [
      join(ROOT, 'dist/controllers/main.js'),
      '--kubeconfig',
      cp.kubeconfigPath,
      '--identity',
      identity,
      '--health-addr',
      `127.0.0.1:${healthPort}`,
      ...args,
    ],
    { stdio: ['ignore', fd, fd], env: { ...process.env, SANDPIT_LOG_LEVEL: process.env.SANDPIT_LOG_LEVEL ?? 'info' } },
  );
  closeSync(fd);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const proc: ControllerProcess = {
    child,
    identity,
    healthPort,
    logPath,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      const done = await Promise.race([exited, sleep(15_000).then(() => 'timeout' as const)]);
      if (done === 'timeout') {
        child.kill('SIGKILL');
        return exited;
      }
      return done;
    },
  };
  return proc;
}

export interface AgentProcess {
  child: ChildProcess;
  /** Port of the agent API on 127.0.0.1. */
  apiPort: number;
  logPath: string;
  /** Settles when the process has exited, whoever ended it. */
  exited: Promise<void>;
  /** Signals the agent and waits until it has exited; nothing when it already has. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface AgentOptions {
  /** Credentials of the agent's pod, from agentKubeconfig. */
  kubeconfig: string;
  node: string;
  /** --node-labels, such as `sandpit.test/e2e=yes`: what the test's Sandboxes select. */
  labels: string;
  stateRoot: string;
  cgroupParent: string;
  /** The agent's output is appended here. */
  logPath: string;
  /** Port of the agent API; a free one when unset. A test that restarts the agent passes the same port again. */
  apiPort?: number;
  /** --lease-duration in seconds; the agent's default when unset. */
  leaseDuration?: number;
  /** --allow-dir-images: where the test's unpacked dir: images live. */
  allowDirImages?: string;
  /** Further flags, after the common ones. */
  args?: string[];
  /** Environment over the defaults (SANDPIT_STATE_ROOT, SANDPIT_IMAGE_ROOT `${stateRoot}-images`, SANDPIT_CGROUP_PARENT, SANDPIT_LOG_LEVEL info). */
  env?: Record<string, string>;
}

/**
 * Starts `node dist/node-agent/main.js` as a DaemonSet pod would run it: against the
 * control plane with the pod's credentials, its API and health ports on 127.0.0.1.
 */
export async function startAgentProcess(o: AgentOptions): Promise<AgentProcess> {
  const apiPort = o.apiPort ?? (await freePort());
  const fd = openSync(o.logPath, 'a');
  const child = spawn(
    process.execPath,
    [
      join(ROOT, 'dist/node-agent/main.js'),
      '--kubeconfig',
      o.kubeconfig,
      '--node-name',
      o.node,
      '--listen',
      `127.0.0.1:${apiPort}`,
      '--advertise-address',
      '127.0.0.1',
      '--health-addr',
      `127.0.0.1:${await freePort()}`,
      ...(o.leaseDuration === undefined ? [] : ['--lease-duration', String(o.leaseDuration)]),
      '--node-labels',
      o.labels,
      ...(o.allowDirImages === undefined ? [] : ['--allow-dir-images', o.allowDirImages]),
      ...(o.args ?? []),
    ],
    {
      stdio: ['ignore', fd, fd],
      env: {
        ...process.env,
        SANDPIT_STATE_ROOT: o.stateRoot,
        SANDPIT_IMAGE_ROOT: `${o.stateRoot}-images`,
        SANDPIT_CGROUP_PARENT: o.cgroupParent,
        SANDPIT_LOG_LEVEL: 'info',
        ...o.env,
      },
    },
  );
  closeSync(fd);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    apiPort,
    logPath: o.logPath,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await exited;
    },
  };
}

export async function controllerLog(p: ControllerProcess): Promise<string> {
  return readFile(p.logPath, 'utf8').catch(() => '');
}

/** GETs a path on a controller's health port and returns the status code. */
export async function probe(port: number, path: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  await res.text();
  return res.status;
}

/**
 * Credentials of an agent pod on `node`: creates the Node and a Pod bound to
 * it (no kubelet runs it; the API server only needs it to exist) and mints a
 * token for the agent ServiceAccount bound to that pod, so the API server
 * puts the node name into the token's user info, as for a DaemonSet pod.
 */
export async function agentKubeconfig(
  cp: ControlPlane,
  node: string,
  sa = 'sandpit-agent',
  namespace = 'sandpit-system',
): Promise<string> {
  await cp.kubectl(['create', 'namespace', namespace]).catch(() => undefined);
  await cp.kubectl(['-n', namespace, 'create', 'serviceaccount', sa]).catch(() => undefined);
  await cp.kubectl(['apply', '-f', '-'], {
    input: JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: node } }),
  });
  const pod = `${sa}-${node}`;
  await cp.kubectl(['apply', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: pod, namespace },
      spec: { nodeName: node, serviceAccountName: sa, containers: [{ name: 'agent', image: 'sandpit-agent:test' }] },
    }),
  });
  const uid = (await cp.kubectl(['-n', namespace, 'get', 'pod', pod, '-o', 'jsonpath={.metadata.uid}'])).stdout.trim();
  const token = (
    await cp.kubectl([
      '-n',
      namespace,
      'create',
      'token',
      sa,
      '--duration',
      '2h',
      '--bound-object-kind',
      'Pod',
      '--bound-object-name',
      pod,
      '--bound-object-uid',
      uid,
    ])
  ).stdout.trim();
  const caData = (await readFile(join(cp.dir, 'pki', 'ca.crt'))).toString('base64');
  const path = join(cp.dir, `agent-${node}-${sa}.kubeconfig`);
  await writeFile(
    path,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'sandpit', cluster: { server: cp.server, 'certificate-authority-data': caData } }],
      users: [{ name: sa, user: { token } }],
      contexts: [{ name: 'sandpit', context: { cluster: 'sandpit', user: sa, namespace } }],
      'current-context': 'sandpit',
    }),
    { mode: 0o600 },
  );
  return path;
}

export interface SandboxJson {
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    generation: number;
    finalizers?: string[];
    deletionTimestamp?: string;
    resourceVersion: string;
  };
  spec: Record<string, unknown>;
  status?: {
    phase?: string;
    nodeName?: string;
    reason?: string;
    message?: string;
    observedGeneration?: number;
    conditions?: { type: string; status: string; reason: string; message: string }[];
  };
}

export async function getSandbox(cp: ControlPlane, ns: string, name: string): Promise<SandboxJson | undefined> {
  const r = await cp.kubectlResult(['-n', ns, 'get', 'sandbox', name, '-o', 'json']);
  if (r.code !== 0) {
    if (/NotFound/.test(r.stderr)) return undefined;
    throw new Error(r.stderr);
  }
  return JSON.parse(r.stdout) as SandboxJson;
}

export const condition = (s: SandboxJson | undefined, type: string) =>
  s?.status?.conditions?.find((c) => c.type === type);

/** A minimal Sandbox manifest. */
export function sandboxManifest(ns: string, name: string, spec: Record<string, unknown> = {}): string {
  return JSON.stringify({
    apiVersion: 'sandpit.dev/v1alpha1',
    kind: 'Sandbox',
    metadata: { name, namespace: ns },
    spec: { containers: [{ name: 'main', image: 'busybox:1.36', command: ['sleep', '3600'] }], ...spec },
  });
}

/** Removes every Sandbox of a namespace (finalizers stripped) and the given SandboxNodes, so the next test file starts clean. */
export async function cleanUp(cp: ControlPlane, namespaces: string[], nodes: string[]): Promise<void> {
  for (const ns of namespaces) {
    const r = await cp.kubectlResult(['-n', ns, 'get', 'sandboxes', '-o', 'name']);
    for (const name of r.stdout.split('\n').filter(Boolean)) {
      await cp.kubectlResult(['-n', ns, 'patch', name, '--type=merge', '-p', '{"metadata":{"finalizers":null}}']);
      await cp.kubectlResult(['-n', ns, 'delete', name, '--wait=false']);
    }
  }
  for (const n of nodes) await cp.kubectlResult(['delete', 'sandboxnode', n, '--wait=false']);
}

/** Removes an empty cgroup tree, children first (cgroupfs directories are removed with rmdir only). */
export async function rmdirDeep(dir: string): Promise<void> {
  for (const e of readdirSync(dir)) {
    const child = join(dir, e);
    if (statSync(child).isDirectory()) await rmdirDeep(child);
  }
  for (let i = 0; i < 50; i++) {
    try {
      rmdirSync(dir);
      return;
    } catch {
      await sleep(200); // the last sandbox processes may still be exiting
    }
  }
}
