import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
  chmodSync,
} from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';

/*
 * A private Docker engine for the e2e tier: Debian's dockerd (docker.io), with
 * its own data root, exec root, pidfile, unix socket, managed containerd and
 * containerd namespaces, all under one temporary directory, so it shares
 * nothing with a system Docker or with another run.
 *
 * Kept apart from the other tiers (they run on this same kernel):
 * - --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false: the
 *   host's FORWARD policy, nat table and ip_forward stay as they were, and
 *   br_netfilter is not loaded by us. Containers reach each other on the bridge
 *   (layer 2) and the host reaches them through the bridge address; nothing
 *   needs NAT because nothing leaves the machine.
 * - --bridge=none: no docker0; networks are user-defined, named by the caller.
 * - --cgroup-parent=/<name>: container cgroups live under a cgroup named for
 *   this run in every hierarchy, removed at stop.
 * - a config file of its own, so /etc/docker/daemon.json is never read.
 *
 * Privileged containers on this machine kind: the VM's capability bounding set
 * lacks CAP_SYS_RESOURCE, and dockerd's --privileged asks runc for every
 * capability it knows, which fails ("unable to apply caps"). The engine's
 * default runtime is therefore a wrapper around Debian's runc that removes
 * CAP_SYS_RESOURCE from the OCI config (container create and exec) before
 * runc sees it; everything else about --privileged stays (all devices, rw
 * /sys and cgroups, no seccomp/AppArmor, no masked paths).
 */

const execFileP = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const DOCKERD = '/usr/sbin/dockerd';
export const RUNC = '/usr/sbin/runc';

/** The host state the engine must leave alone; compared before and after. */
export interface HostNetSnapshot {
  forwardPolicy: string;
  iptablesRules: string;
  nftRuleset: string;
  ipForward: string;
  brNetfilter: string;
}

function tryRead(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch (err) {
    return `error: ${(err as Error).message.split('\n')[0]}`;
  }
}

export function hostNetSnapshot(): HostNetSnapshot {
  const rules = tryRead('iptables', ['-w', '-S']);
  return {
    forwardPolicy: /^-P FORWARD (\S+)/m.exec(rules)?.[1] ?? rules.slice(0, 200),
    iptablesRules: rules + tryRead('iptables', ['-w', '-t', 'nat', '-S']),
    nftRuleset: tryRead('nft', ['list', 'ruleset']),
    ipForward: readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim(),
    brNetfilter: existsSync('/proc/sys/net/bridge/bridge-nf-call-iptables')
      ? readFileSync('/proc/sys/net/bridge/bridge-nf-call-iptables', 'utf8').trim()
      : 'absent',
  };
}

/**
 * Rules that mention our names or addresses are ours (another tier's test may
 * add and remove its own rules meanwhile); the comparison keeps only those
 * lines plus the policies, so concurrent work by others does not look like a
 * change made by the engine.
 */
export function engineFootprint(s: HostNetSnapshot, markers: string[]): string[] {
  const mine = (line: string) => /docker|DOCKER/.test(line) || markers.some((m) => line.includes(m));
  return [
    `FORWARD policy ${s.forwardPolicy}`,
    `ip_forward ${s.ipForward}`,
    `bridge-nf-call-iptables ${s.brNetfilter}`,
    ...s.iptablesRules.split('\n').filter(mine),
    ...s.nftRuleset.split('\n').filter(mine),
  ];
}

/** Depth-first rmdir of a cgroup subtree (cgroup dirs hold only kernel files, rmdir removes them). */
export function removeCgroupTree(dir: string): void {
  if (!existsSync(dir)) return;
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeCgroupTree(join(dir, e.name));
  for (let i = 0; i < 50; i++) {
    try {
      rmdirSync(dir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      // EBUSY: the last task is still exiting; give it a moment.
      execFileSync('sleep', ['0.1']);
    }
  }
  rmdirSync(dir);
}

/** Every cgroup hierarchy mount point (v1 controllers and the v2 unified mount). */
export function cgroupRoots(): string[] {
  const roots: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (sep < 0) continue;
    if (f[sep + 1] === 'cgroup' || f[sep + 1] === 'cgroup2') roots.push(f[4]!);
  }
  return roots;
}

export interface EngineOptions {
  /** Short unique suffix (at most 4 characters: bridge names are 15 bytes). */
  id: string;
  /** Where the temporary directory is made (default /tmp). */
  parent?: string;
}

export class DockerEngine {
  readonly dir: string;
  readonly socket: string;
  readonly host: string;
  readonly cgroupParent: string;
  readonly name: string;
  #child: ChildProcess | undefined;
  #exited: Promise<void> | undefined;
  #pids: number[] = [];
  readonly before: HostNetSnapshot;

  private constructor(
    readonly id: string,
    parent: string,
  ) {
    this.name = `sptest-e2e-${id}`;
    this.dir = mkdtempSync(join(parent, `${this.name}-`));
    this.socket = join(this.dir, 'docker.sock');
    this.host = `unix://${this.socket}`;
    this.cgroupParent = this.name;
    this.before = hostNetSnapshot();
  }

  /** Starts dockerd and waits until it answers /_ping. */
  static async start(opts: EngineOptions): Promise<DockerEngine> {
    if (!/^[a-z0-9]{1,4}$/.test(opts.id))
      throw new Error(`engine id must be 1-4 lowercase letters/digits, got "${opts.id}"`);
    if (!existsSync(DOCKERD))
      throw new Error(`${DOCKERD} not found: install Debian's docker.io (see .ci/packages/e2e.txt and .ci/run)`);
    const e = new DockerEngine(opts.id, opts.parent ?? '/tmp');
    try {
      await e.#boot();
    } catch (err) {
      await e.stop();
      throw err;
    }
    return e;
  }

  async #boot(): Promise<void> {
    const runc = join(this.dir, 'runc');
    writeFileSync(
      runc,
      `#!/bin/sh
# The engine's runtime: Debian's runc, minus CAP_SYS_RESOURCE (absent from this
# machine's bounding set) in the bundle config (create/run) and exec process files.
prev=""
for a in "$@"; do
  f=""
  case "$prev" in --bundle|-b) f="$a/config.json" ;; --process|-p) f="$a" ;; esac
  case "$a" in --bundle=*) f="\${a#--bundle=}/config.json" ;; --process=*) f="\${a#--process=}" ;; esac
  if [ -n "$f" ] && [ -f "$f" ]; then sed -i 's/"CAP_SYS_RESOURCE",//g; s/,"CAP_SYS_RESOURCE"//g' "$f"; fi
  prev="$a"
done
exec ${RUNC} "$@"
`,
    );
    chmodSync(runc, 0o755);
    const config = join(this.dir, 'daemon.json');
    writeFileSync(config, '{}\n');
    const args = [
      `--config-file=${config}`,
      `--data-root=${join(this.dir, 'data')}`,
      `--exec-root=${join(this.dir, 'exec')}`,
      `--pidfile=${join(this.dir, 'dockerd.pid')}`,
      `--host=${this.host}`,
      '--iptables=false',
      '--ip6tables=false',
      '--ip-forward=false',
      '--ip-masq=false',
      '--bridge=none',
      '--userland-proxy=false',
      `--cgroup-parent=/${this.cgroupParent}`,
      `--containerd-namespace=${this.name}`,
      `--containerd-plugins-namespace=${this.name}-plugins`,
      `--add-runtime=sptest-runc=${runc}`,
      '--default-runtime=sptest-runc',
      '--storage-driver=overlay2',
      '--shutdown-timeout=2',
      '--log-level=warn',
    ];
    const logFd = openSync(join(this.dir, 'dockerd.log'), 'a');
    // SIGTERM (not KILL) when this process dies: dockerd then stops its containers and containerd.
    this.#child = spawn('setpriv', ['--pdeathsig', 'TERM', '--', DOCKERD, ...args], {
      stdio: ['ignore', logFd, logFd],
      detached: false,
    });
    closeSync(logFd);
    this.#exited = new Promise((resolve) => this.#child!.once('exit', () => resolve()));
    this.#child.once('error', () => undefined);
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (this.#child.exitCode !== null)
        throw new Error(`dockerd exited with ${this.#child.exitCode}: ${this.logTail()}`);
      if (existsSync(this.socket) && (await this.ping())) {
        this.#pids = this.pids();
        return;
      }
      if (Date.now() > deadline)
        throw new Error(`dockerd did not answer on ${this.socket} within 60 s: ${this.logTail()}`);
      await sleep(200);
    }
  }

  logTail(lines = 20): string {
    return readFileSync(join(this.dir, 'dockerd.log'), 'utf8').split('\n').slice(-lines).join('\n');
  }

  ping(): Promise<boolean> {
    return new Promise((resolve) => {
      const req = request({ socketPath: this.socket, path: '/_ping', timeout: 2000 }, (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      });
      req.on('error', () => resolve(false));
      req.on('timeout', () => req.destroy());
      req.end();
    });
  }

  /** Environment for the docker CLI and testcontainers (its reaper cannot be pulled here). */
  env(): NodeJS.ProcessEnv {
    return {
      ...process.env,
      DOCKER_HOST: this.host,
      TESTCONTAINERS_RYUK_DISABLED: 'true',
      TESTCONTAINERS_HOST_OVERRIDE: 'localhost',
      DOCKER_BUILDKIT: '0',
      DOCKER_CLI_HINTS: 'false',
    };
  }

  /** Runs the docker CLI against this engine. */
  async docker(args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<string> {
    if (opts.input === undefined) {
      const { stdout } = await execFileP('docker', args, {
        env: this.env(),
        maxBuffer: 64 << 20,
        timeout: opts.timeoutMs ?? 300_000,
      });
      return stdout;
    }
    return new Promise((resolve, reject) => {
      const child = execFile(
        'docker',
        args,
        { env: this.env(), maxBuffer: 64 << 20, timeout: opts.timeoutMs ?? 300_000 },
        (err, stdout, stderr) => {
          if (err) reject(Object.assign(err, { stdout, stderr }));
          else resolve(stdout);
        },
      );
      child.stdin?.end(opts.input);
    });
  }

  /** Like docker() but returns the exit code and output instead of rejecting. */
  async dockerResult(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const { stdout, stderr } = await execFileP('docker', args, {
        env: this.env(),
        maxBuffer: 64 << 20,
        timeout: 300_000,
      });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? String(err) };
    }
  }

  /** PIDs of dockerd and its containerd, for the leak check. */
  pids(): number[] {
    const out: number[] = [];
    for (const f of [join(this.dir, 'dockerd.pid'), join(this.dir, 'exec', 'containerd', 'containerd.pid')]) {
      try {
        const pid = Number(readFileSync(f, 'utf8').trim());
        if (pid > 0 && existsSync(`/proc/${pid}`)) out.push(pid);
      } catch {
        /* not written (yet) */
      }
    }
    return out;
  }

  /** Mount points under the engine's directory (overlay roots, netns files, shm). */
  mounts(): string[] {
    const out: string[] = [];
    for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      const mp = line.split(' ')[4];
      if (mp && (mp === this.dir || mp.startsWith(`${this.dir}/`))) out.push(mp.replace(/\\040/g, ' '));
    }
    return out;
  }

  /** Cgroup directories of this engine that still exist. */
  cgroups(): string[] {
    return cgroupRoots()
      .map((r) => join(r, this.cgroupParent))
      .filter((d) => existsSync(d));
  }

  /**
   * Removes every container and network of this engine, stops dockerd (and so
   * its containerd), kills what is left of the PIDs it recorded, unmounts and
   * deletes its directory and removes its cgroups. Safe to call twice.
   */
  async stop(): Promise<void> {
    if (this.#child && this.#child.exitCode === null && (await this.ping())) {
      const ids = (await this.dockerResult(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
      if (ids.length) await this.dockerResult(['rm', '-f', '-v', ...ids]);
      const nets = (await this.dockerResult(['network', 'ls', '-q', '--filter', 'type=custom'])).stdout
        .split('\n')
        .filter(Boolean);
      for (const n of nets) await this.dockerResult(['network', 'rm', n]);
    }
    const recorded = [...new Set([...this.#pids, ...this.pids()])];
    if (this.#child && this.#child.exitCode === null && this.#child.signalCode === null) {
      this.#child.kill('SIGTERM');
      const done = await Promise.race([this.#exited!.then(() => true), sleep(20_000).then(() => false)]);
      if (!done) {
        this.#child.kill('SIGKILL');
        await this.#exited;
      }
    }
    // dockerd stops its containerd; if it could not, the PID it recorded is ours to end.
    for (const pid of recorded) {
      for (let i = 0; i < 50 && existsSync(`/proc/${pid}`); i++) await sleep(100);
      if (existsSync(`/proc/${pid}`)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    for (const mp of this.mounts().reverse()) {
      try {
        execFileSync('umount', ['-l', mp], { stdio: 'ignore' });
      } catch {
        /* already gone with its parent */
      }
    }
    for (const cg of this.cgroups()) removeCgroupTree(cg);
    if (existsSync(this.dir) && this.mounts().length === 0) rmSync(this.dir, { recursive: true, force: true });
  }

  /** Whatever of this engine is still on the host (empty after stop()). */
  leftovers(): string[] {
    const out: string[] = [];
    for (const p of this.#pids) if (existsSync(`/proc/${p}`)) out.push(`process ${p}`);
    for (const m of this.mounts()) out.push(`mount ${m}`);
    for (const c of this.cgroups()) out.push(`cgroup ${c}`);
    if (existsSync(this.dir)) out.push(`dir ${this.dir} (${statSync(this.dir).isDirectory() ? 'directory' : 'file'})`);
    for (const l of tryRead('ip', ['-o', 'link', 'show']).split('\n'))
      if (l.includes(this.name)) out.push(`link ${l.split(':')[1]?.trim()}`);
    return out;
  }
}
