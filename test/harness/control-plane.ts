import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, closeSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { TestPki } from './pki.js';

const execFileP = promisify(execFile);

/** Directory holding kube-apiserver, etcd, kubectl and helm (see hack/tools.sh). */
export function toolsBinDir(): string {
  const dir =
    process.env.SANDPIT_TOOLS_BIN ??
    join(process.env.SANDPIT_CACHE ?? join(homedir(), '.cache', 'sandpit'), 'bin', 'current');
  for (const tool of ['kube-apiserver', 'etcd', 'kubectl']) {
    if (!existsSync(join(dir, tool))) {
      throw new Error(
        `${tool} not found in ${dir}: run \`bash hack/tools.sh\` first (it builds the control plane once and caches it)`,
      );
    }
  }
  return dir;
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Managed {
  name: string;
  child: ChildProcess;
  exited: Promise<void>;
}

/**
 * A real control plane for tests and the quick start: etcd and the upstream
 * kube-apiserver as processes on 127.0.0.1, with RBAC, ServiceAccount tokens and
 * the default admission plugins (ValidatingAdmissionPolicy included), like a
 * kubeadm cluster. There is no controller-manager, so namespaces are never
 * finalized and garbage collection does not run: tests use fresh namespaces.
 */
export class ControlPlane {
  readonly kubeconfigPath: string;
  readonly server: string;
  #etcd: Managed | undefined;
  #apiserver: Managed | undefined;
  #apiserverArgs: string[] = [];

  private constructor(
    readonly dir: string,
    readonly bin: string,
    readonly apiserverPort: number,
    private readonly keepDir: boolean,
  ) {
    this.kubeconfigPath = join(dir, 'admin.kubeconfig');
    this.server = `https://127.0.0.1:${apiserverPort}`;
  }

  /** Starts etcd and kube-apiserver and waits until /readyz says ok. */
  static async start(opts: { dir?: string; port?: number } = {}): Promise<ControlPlane> {
    const bin = toolsBinDir();
    const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'sandpit-cp-')));
    await mkdir(dir, { recursive: true });
    const cp = new ControlPlane(dir, bin, opts.port ?? (await freePort()), opts.dir !== undefined);
    try {
      await cp.#boot();
    } catch (err) {
      await cp.stop();
      throw err;
    }
    return cp;
  }

  async #boot(): Promise<void> {
    const pkiDir = join(this.dir, 'pki');
    const pki = await TestPki.create(pkiDir, 'sandpit-control-plane-ca');
    const serving = await pki.issue('apiserver', {
      commonName: 'kube-apiserver',
      dnsNames: [
        'localhost',
        'kubernetes',
        'kubernetes.default',
        'kubernetes.default.svc',
        'kubernetes.default.svc.cluster.local',
      ],
      ipAddresses: ['127.0.0.1', '10.96.0.1'],
      usage: 'server',
    });
    const admin = await pki.issue('admin', {
      commonName: 'sandpit-admin',
      organizations: ['system:masters'],
      usage: 'client',
    });
    const sa = await pki.serviceAccountKey();

    const etcdClient = await freePort();
    const etcdPeer = await freePort();
    this.#etcd = this.#launch('etcd', join(this.bin, 'etcd'), [
      '--name=default',
      `--data-dir=${join(this.dir, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=default=http://127.0.0.1:${etcdPeer}`,
      // Test data is disposable; fsync dominates etcd latency on these VMs.
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);

    this.#apiserverArgs = [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${this.apiserverPort}`,
      `--cert-dir=${pkiDir}`,
      `--tls-cert-file=${serving.cert}`,
      `--tls-private-key-file=${serving.key}`,
      `--client-ca-file=${pki.ca.cert}`,
      '--authorization-mode=Node,RBAC',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${sa.publicKey}`,
      `--service-account-signing-key-file=${sa.privateKey}`,
      '--api-audiences=https://kubernetes.default.svc.cluster.local',
      '--service-cluster-ip-range=10.96.0.0/16',
      '--allow-privileged=true',
      '--profiling=false',
      '--endpoint-reconciler-type=none',
      '--v=0',
    ];
    await this.startApiServer();

    const caData = (await readFile(pki.ca.cert)).toString('base64');
    await writeFile(
      this.kubeconfigPath,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'sandpit', cluster: { server: this.server, 'certificate-authority-data': caData } }],
        users: [
          {
            name: 'sandpit-admin',
            user: {
              'client-certificate-data': (await readFile(admin.cert)).toString('base64'),
              'client-key-data': (await readFile(admin.key)).toString('base64'),
            },
          },
        ],
        contexts: [{ name: 'sandpit', context: { cluster: 'sandpit', user: 'sandpit-admin', namespace: 'default' } }],
        'current-context': 'sandpit',
      }),
      { mode: 0o600 },
    );
    await this.#waitReady(pki.ca.cert, admin.cert, admin.key);
  }

  #launch(name: string, file: string, args: string[]): Managed {
    const logFd = openSync(join(this.dir, `${name}.log`), 'a');
    // setpriv --pdeathsig: if the test process dies without cleaning up (SIGKILL,
    // a crash), the kernel kills the control plane too instead of leaking it.
    const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', file, ...args], { stdio: ['ignore', logFd, logFd] });
    closeSync(logFd);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.once('error', () => undefined);
    return { name, child, exited };
  }

  /** Starts (or restarts) kube-apiserver on the same port and etcd. */
  async startApiServer(): Promise<void> {
    if (this.#apiserver && this.#apiserver.child.exitCode === null) return;
    this.#apiserver = this.#launch('kube-apiserver', join(this.bin, 'kube-apiserver'), this.#apiserverArgs);
    if (existsSync(this.kubeconfigPath)) {
      const pki = join(this.dir, 'pki');
      await this.#waitReady(join(pki, 'ca.crt'), join(pki, 'admin.crt'), join(pki, 'admin.key'));
    }
  }

  /** Stops kube-apiserver, leaving etcd and the data in place (for outage tests). */
  async stopApiServer(): Promise<void> {
    await stopProcess(this.#apiserver);
    this.#apiserver = undefined;
  }

  async #waitReady(ca: string, cert: string, key: string): Promise<void> {
    const [caPem, certPem, keyPem] = await Promise.all([readFile(ca), readFile(cert), readFile(key)]);
    const deadline = Date.now() + 120_000;
    let last = '';
    while (Date.now() < deadline) {
      for (const m of [this.#etcd, this.#apiserver]) {
        if (m && m.child.exitCode !== null) {
          const tail = await readFile(join(this.dir, `${m.name}.log`), 'utf8').catch(() => '');
          throw new Error(
            `${m.name} exited with code ${m.child.exitCode}; last log lines:\n${tail.split('\n').slice(-20).join('\n')}`,
          );
        }
      }
      last = await new Promise<string>((resolve) => {
        const req = request(
          {
            host: '127.0.0.1',
            port: this.apiserverPort,
            path: '/readyz',
            ca: caPem,
            cert: certPem,
            key: keyPem,
            timeout: 2000,
          },
          (res) => {
            let body = '';
            res.on('data', (c: Buffer) => (body += c.toString()));
            res.on('end', () => resolve(res.statusCode === 200 ? 'ok' : `${res.statusCode} ${body.slice(0, 200)}`));
          },
        );
        req.on('error', (e) => resolve(e.message));
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.end();
      });
      if (last === 'ok') return;
      await sleep(250);
    }
    throw new Error(`kube-apiserver not ready after 120 s: ${last} (logs in ${this.dir})`);
  }

  /** A client-node KubeConfig with the admin credential. */
  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromFile(this.kubeconfigPath);
    return kc;
  }

  /** Runs kubectl against this control plane as admin. Rejects with stderr on a non-zero exit. */
  async kubectl(
    args: string[],
    opts: { input?: string; kubeconfig?: string } = {},
  ): Promise<{ stdout: string; stderr: string }> {
    return runTool(
      join(this.bin, 'kubectl'),
      ['--kubeconfig', opts.kubeconfig ?? this.kubeconfigPath, ...args],
      opts.input,
    );
  }

  /** Like kubectl(), but resolves with the exit code instead of rejecting. */
  async kubectlResult(
    args: string[],
    opts: { input?: string; kubeconfig?: string } = {},
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      return { code: 0, ...(await this.kubectl(args, opts)) };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? String(err) };
    }
  }

  /**
   * Creates (if needed) a ServiceAccount and returns a kubeconfig path that
   * authenticates as it with a bound token minted by the TokenRequest API.
   */
  async serviceAccountKubeconfig(
    namespace: string,
    name: string,
    opts: { audience?: string; duration?: string } = {},
  ): Promise<string> {
    await this.kubectl(['create', 'namespace', namespace]).catch(() => undefined);
    await this.kubectl(['-n', namespace, 'create', 'serviceaccount', name]).catch(() => undefined);
    const args = ['-n', namespace, 'create', 'token', name, '--duration', opts.duration ?? '1h'];
    if (opts.audience) args.push('--audience', opts.audience);
    const token = (await this.kubectl(args)).stdout.trim();
    const admin = this.kubeConfig();
    const cluster = admin.getCurrentCluster();
    const path = join(this.dir, `sa-${namespace}-${name}.kubeconfig`);
    const caData = (await readFile(join(this.dir, 'pki', 'ca.crt'))).toString('base64');
    await writeFile(
      path,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'sandpit', cluster: { server: cluster?.server, 'certificate-authority-data': caData } }],
        users: [{ name, user: { token } }],
        contexts: [{ name: 'sandpit', context: { cluster: 'sandpit', user: name, namespace } }],
        'current-context': 'sandpit',
      }),
      { mode: 0o600 },
    );
    return path;
  }

  /** Stops both processes (by the PIDs this object started) and removes the data dir. */
  async stop(): Promise<void> {
    await stopProcess(this.#apiserver);
    await stopProcess(this.#etcd);
    this.#apiserver = this.#etcd = undefined;
    if (!this.keepDir) await rm(this.dir, { recursive: true, force: true });
  }
}

async function stopProcess(m: Managed | undefined): Promise<void> {
  if (!m || m.child.exitCode !== null || m.child.signalCode !== null) return;
  m.child.kill('SIGTERM');
  const killed = await Promise.race([m.exited.then(() => true), sleep(10_000).then(() => false)]);
  if (!killed) {
    m.child.kill('SIGKILL');
    await m.exited;
  }
}

/** Runs a command-line tool, collecting its output. Rejects with stdout/stderr attached on failure. */
export async function runTool(
  file: string,
  args: string[],
  input?: string,
): Promise<{ stdout: string; stderr: string }> {
  if (input === undefined) {
    const { stdout, stderr } = await execFileP(file, args, { maxBuffer: 64 << 20 });
    return { stdout, stderr };
  }
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(Object.assign(err, { stdout, stderr }));
      else resolve({ stdout, stderr });
    });
    child.stdin?.end(input);
  });
}

let shared: Promise<ControlPlane> | undefined;

/** One control plane shared by every cluster-tier test file of a mocha run. */
export function sharedControlPlane(): Promise<ControlPlane> {
  shared ??= ControlPlane.start();
  return shared;
}

/** Stops the shared control plane, if one was started (mocha root hook). */
export async function stopSharedControlPlane(): Promise<void> {
  if (!shared) return;
  const cp = await shared.catch(() => undefined);
  shared = undefined;
  await cp?.stop();
}
