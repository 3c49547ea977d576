import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ControlPlane } from '../harness/control-plane.js';

/*
 * Helpers of the kubectl-sandpit cluster tests: the plugin on a PATH so that
 * kubectl itself finds it, users bound by RBAC, and a path from the API
 * server to the controller's streams port. kube-apiserver refuses Endpoints
 * on loopback, so the Service's endpoint is an address inside a network
 * namespace this test creates; socat there forwards over a Unix socket
 * (which crosses network namespaces) to the controller on 127.0.0.1.
 */

const ROOT = new URL('../../..', import.meta.url).pathname;

/** A directory holding `kubectl-sandpit` (running dist/cli/main.js), to put first on PATH. */
export function pluginDir(dir: string): string {
  const bin = join(dir, 'kubectl-sandpit');
  writeFileSync(bin, `#!/bin/sh\nexec "${process.execPath}" "${join(ROOT, 'dist/cli/main.js')}" "$@"\n`);
  chmodSync(bin, 0o755);
  return dir;
}

/** Runs `kubectl sandpit ARGS` through kubectl's plugin lookup, as a user. */
export function kubectlSandpit(
  cp: ControlPlane,
  plugins: string,
  kubeconfig: string,
  args: string[],
  opts: { input?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawnPlugin(cp, plugins, kubeconfig, args);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin!.end(opts.input ?? '');
    child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

export function spawnPlugin(cp: ControlPlane, plugins: string, kubeconfig: string, args: string[]): ChildProcess {
  return spawn(join(cp.bin, 'kubectl'), ['sandpit', ...args], {
    env: pluginEnv(cp, plugins, kubeconfig),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

export function pluginEnv(cp: ControlPlane, plugins: string, kubeconfig: string): NodeJS.ProcessEnv {
  return { ...process.env, PATH: `${plugins}:${cp.bin}:${process.env.PATH ?? ''}`, KUBECONFIG: kubeconfig };
}

export interface StreamsPath {
  netns: string;
  address: string;
  /** Removes the relays, the veth and the netns, and the Service, Endpoints and Pod objects. */
  stop(): Promise<void>;
}

/**
 * Makes the controller's streams port reachable by the API server at an
 * address inside a fresh network namespace (veth to the host), and points a
 * selector-less Service `sandpit-controller` (port `streams`) at it.
 */
export async function exposeStreams(
  cp: ControlPlane,
  namespace: string,
  controllerPort: number,
  dir: string,
): Promise<StreamsPath> {
  const tag = (process.pid % 0xffff).toString(16).padStart(4, '0');
  const netns = `sptest-cli-${tag}`;
  const hostIf = `sptc${tag}h`;
  const nsIf = `sptc${tag}n`;
  const octet = (process.pid % 200) + 20;
  const hostAddr = `10.251.${octet}.1`;
  const address = `10.251.${octet}.2`;
  const sh = (args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });
  sh(['netns', 'add', netns]);
  const children: ChildProcess[] = [];
  const pod = 'sandpit-controller-cli';
  const stopLocal = () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    try {
      sh(['link', 'del', hostIf]);
    } catch {
      /* gone with the netns */
    }
    try {
      sh(['netns', 'del', netns]);
    } catch {
      /* already gone */
    }
  };
  const stop = async () => {
    stopLocal();
    for (const obj of ['service/sandpit-controller', 'endpoints/sandpit-controller', `pod/${pod}`])
      await cp.kubectlResult(['-n', namespace, 'delete', obj, '--wait=false', '--ignore-not-found']);
  };
  try {
    sh(['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf, 'netns', netns]);
    sh(['addr', 'add', `${hostAddr}/30`, 'dev', hostIf]);
    sh(['link', 'set', hostIf, 'up']);
    sh(['-n', netns, 'addr', 'add', `${address}/30`, 'dev', nsIf]);
    sh(['-n', netns, 'link', 'set', nsIf, 'up']);
    sh(['-n', netns, 'link', 'set', 'lo', 'up']);
    const sock = join(dir, 'streams.sock');
    children.push(
      spawn('socat', [`UNIX-LISTEN:${sock},fork,unlink-early`, `TCP:127.0.0.1:${controllerPort}`], { stdio: 'ignore' }),
    );
    children.push(
      spawn(
        'ip',
        ['netns', 'exec', netns, 'socat', `TCP-LISTEN:8443,bind=${address},fork,reuseaddr`, `UNIX-CONNECT:${sock}`],
        { stdio: 'ignore' },
      ),
    );
    // The service proxy only uses an endpoint address that names a Pod of the namespace with that IP
    // (isValidAddress in the API server), so the controller gets a Pod object whose status carries it.
    await cp.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'List',
        items: [
          {
            apiVersion: 'v1',
            kind: 'Pod',
            metadata: { name: pod, namespace, labels: { app: 'sandpit-controller' } },
            spec: {
              serviceAccountName: 'sandpit-controller',
              automountServiceAccountToken: false,
              containers: [{ name: 'controller', image: 'sandpit-controller:test' }],
            },
          },
          {
            apiVersion: 'v1',
            kind: 'Service',
            metadata: { name: 'sandpit-controller', namespace },
            spec: { ports: [{ name: 'streams', port: 8443, targetPort: 8443 }] },
          },
        ],
      }),
    });
    await cp.kubectl([
      '-n',
      namespace,
      'patch',
      'pod',
      pod,
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({ status: { phase: 'Running', podIP: address, podIPs: [{ ip: address }] } }),
    ]);
    await cp.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'Endpoints',
        metadata: { name: 'sandpit-controller', namespace },
        subsets: [
          {
            addresses: [{ ip: address, targetRef: { kind: 'Pod', name: pod, namespace } }],
            ports: [{ name: 'streams', port: 8443 }],
          },
        ],
      }),
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return { netns, address, stop };
}

/** PIDs in a container's cgroup (every hierarchy that has it), as the kernel lists them. */
export function cgroupPids(cgroupParent: string, sandboxId: string, container: string): number[] {
  const pids = new Set<number>();
  for (const root of readdirSync('/sys/fs/cgroup')) {
    const candidates = [
      join('/sys/fs/cgroup', root, cgroupParent, sandboxId, `c-${container}`, 'cgroup.procs'),
      join('/sys/fs/cgroup', cgroupParent, sandboxId, `c-${container}`, 'cgroup.procs'),
    ];
    for (const f of candidates) {
      if (!existsSync(f)) continue;
      for (const p of readFileSync(f, 'utf8').split('\n').filter(Boolean)) pids.add(Number(p));
    }
  }
  return [...pids];
}
