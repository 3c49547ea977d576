import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SandpitError } from '../../lib/errors.js';
import { kill, open, O_CLOEXEC, O_WRONLY } from '../sys/proc.js';
import { weightFromShares } from './cpu-shares.js';
import { childCgroups, mkdir, removeTree, trySilently, write, type Site } from './fs.js';
import { classify, parseCgroupMounts, V1_CONTROLLERS, type CgroupLayout, type V1Controller } from './layout.js';

/*
 * Sandpit's cgroups: <parent>/<sandbox id>/{infra, c-<container>} (paths.ts) in
 * every hierarchy this node has. Only directories under <parent> are ever written,
 * removed or killed; the one exception is enabling controllers in the root's
 * cgroup.subtree_control on pure v2, which is required to use them at all.
 */

export interface CgroupLimits {
  /** Bytes. Swap is off: memory+swap is capped at the same value. */
  memory?: number;
  /** CPU cores, such as 0.5. */
  cpu?: number;
  pids?: number;
}

export interface CgroupUsage {
  cpuNanos: number;
  memoryBytes: number;
  pids: number;
}

const CFS_PERIOD = 100_000;

export class CgroupManager {
  readonly layout: CgroupLayout;
  readonly parent: string;

  constructor(layout: CgroupLayout, parent: string) {
    this.layout = layout;
    this.parent = parent;
  }

  static detect(parent: string): CgroupManager {
    const mounts = parseCgroupMounts(readFileSync('/proc/self/mountinfo', 'utf8'));
    const unifiedControllers = mounts.unified
      ? readFileSync(join(mounts.unified, 'cgroup.controllers'), 'utf8').trim().split(/\s+/).filter(Boolean)
      : [];
    return new CgroupManager(classify(mounts, unifiedControllers), parent);
  }

  /** Every hierarchy root we keep a directory in: the unified one first, then each distinct v1 mount. */
  hierarchies(): string[] {
    const roots = new Set<string>();
    if (this.layout.unified) roots.add(this.layout.unified);
    for (const c of V1_CONTROLLERS) {
      const m = this.layout.v1[c];
      if (m) roots.add(m);
    }
    return [...roots];
  }

  private dirs(rel: string): string[] {
    return this.hierarchies().map((h) => join(h, this.parent, rel));
  }

  /** Where a controller's files for `rel` live, or undefined when the node lacks it. */
  private controllerDir(controller: V1Controller, rel: string): string | undefined {
    const v1 = this.layout.v1[controller];
    if (v1) return join(v1, this.parent, rel);
    const v2name = controller === 'cpuacct' ? 'cpu' : controller;
    if (this.layout.unified && this.layout.unifiedControllers.includes(v2name))
      return join(this.layout.unified, this.parent, rel);
    return undefined;
  }

  private v2Controllers(): string[] {
    return ['cpu', 'memory', 'pids'].filter(
      (c) => this.layout.unifiedControllers.includes(c) && !this.layout.v1[c as V1Controller],
    );
  }

  /** Enables our controllers for the children of `dir` (cgroup v2 only). */
  private delegate(dir: string, site: Site): void {
    const wanted = this.v2Controllers();
    if (!wanted.length) return;
    const file = join(dir, 'cgroup.subtree_control');
    const have = readFileSync(file, 'utf8').trim().split(/\s+/);
    const missing = wanted.filter((c) => !have.includes(c));
    if (missing.length) write(file, missing.map((c) => `+${c}`).join(' '), site);
  }

  /** Creates the parent and `rel` in every hierarchy. Idempotent. */
  create(rel: string, site: Site): void {
    if (this.layout.unified && this.v2Controllers().length) {
      this.delegate(this.layout.unified, site);
      mkdir(join(this.layout.unified, this.parent), site);
      this.delegate(join(this.layout.unified, this.parent), site);
    }
    for (const d of this.dirs(rel)) mkdir(d, site);
  }

  /** Lets children of `rel` use our controllers (v2); call once `rel` holds no processes. */
  delegateTo(rel: string, site: Site): void {
    if (this.layout.unified) this.delegate(join(this.layout.unified, this.parent, rel), site);
  }

  setLimits(rel: string, limits: CgroupLimits, site: Site): void {
    const mem = this.controllerDir('memory', rel);
    if (mem) {
      if (this.layout.v1.memory) {
        write(join(mem, 'memory.swappiness'), '0', site);
        if (limits.memory !== undefined) {
          write(join(mem, 'memory.limit_in_bytes'), String(limits.memory), site);
          const memsw = join(mem, 'memory.memsw.limit_in_bytes');
          if (existsSync(memsw)) write(memsw, String(limits.memory), site);
        }
      } else {
        if (limits.memory !== undefined) write(join(mem, 'memory.max'), String(limits.memory), site);
        if (existsSync(join(mem, 'memory.swap.max'))) write(join(mem, 'memory.swap.max'), '0', site);
      }
    }
    const pids = this.controllerDir('pids', rel);
    if (pids && limits.pids !== undefined) write(join(pids, 'pids.max'), String(limits.pids), site);
    const cpu = this.controllerDir('cpu', rel);
    if (cpu && limits.cpu !== undefined) {
      const quota = Math.max(1000, Math.round(limits.cpu * CFS_PERIOD));
      if (this.layout.v1.cpu) {
        write(join(cpu, 'cpu.cfs_period_us'), String(CFS_PERIOD), site);
        write(join(cpu, 'cpu.cfs_quota_us'), String(quota), site);
      } else write(join(cpu, 'cpu.max'), `${quota} ${CFS_PERIOD}`, site);
    }
  }

  /** The CPU weight of `rel` among its siblings: kubelet's shares on v1, their cpu.weight on v2 (cpu-shares.ts). */
  setCpuShares(rel: string, shares: number, site: Site): void {
    const cpu = this.controllerDir('cpu', rel);
    if (!cpu) return;
    if (this.layout.v1.cpu) write(join(cpu, 'cpu.shares'), String(shares), site);
    else write(join(cpu, 'cpu.weight'), String(weightFromShares(shares)), site);
  }

  /**
   * Opens cgroup.procs of `rel` in every hierarchy for writing. A process that
   * inherits these fds can move itself in by writing "0": the kernel checks the
   * credentials the file was opened with, so a non-root workload can join too.
   */
  openProcs(rel: string, site: Site): number[] {
    return this.dirs(rel).map((d) => open(join(d, 'cgroup.procs'), O_WRONLY | O_CLOEXEC, 0, site));
  }

  /** Moves a process (by host PID) into `rel` in every hierarchy. */
  movePid(rel: string, pid: number, site: Site): void {
    for (const d of this.dirs(rel)) write(join(d, 'cgroup.procs'), String(pid), site);
  }

  /**
   * The hierarchies where processes must sit in leaves (v2's "no internal
   * processes"): only the unified one. On v1 hierarchies a sandbox's PID 1 stays
   * in the sandbox cgroup itself, which saves a cgroup migration per hierarchy
   * (each costs milliseconds: it waits for an RCU grace period).
   */
  private leafDirs(rel: string): string[] {
    return this.layout.unified ? [join(this.layout.unified, this.parent, rel)] : [];
  }

  /** openProcs() for the leaf-only hierarchies (see leafDirs). */
  openLeafProcs(rel: string, site: Site): number[] {
    return this.leafDirs(rel).map((d) => open(join(d, 'cgroup.procs'), O_WRONLY | O_CLOEXEC, 0, site));
  }

  /** movePid() for the leaf-only hierarchies (see leafDirs). */
  moveLeafPid(rel: string, pid: number, site: Site): void {
    for (const d of this.leafDirs(rel)) write(join(d, 'cgroup.procs'), String(pid), site);
  }

  /** Host PIDs in `rel` (and below, on v2 via cgroup.procs of each child). */
  pids(rel: string): number[] {
    const found = new Set<number>();
    const walk = (dir: string) => {
      let text: string;
      try {
        text = readFileSync(join(dir, 'cgroup.procs'), 'utf8');
      } catch {
        return;
      }
      for (const l of text.split('\n')) if (l) found.add(Number(l));
      for (const e of childCgroups(dir, { step: `list the processes of cgroup ${rel}` })) walk(join(dir, e));
    };
    for (const d of this.dirs(rel)) walk(d);
    return [...found];
  }

  exists(rel: string): boolean {
    return this.dirs(rel).some((d) => existsSync(d));
  }

  freeze(rel: string, frozen: boolean, site: Site): void {
    if (this.layout.unified) {
      write(join(this.layout.unified, this.parent, rel, 'cgroup.freeze'), frozen ? '1' : '0', site);
      return;
    }
    const f = this.controllerDir('freezer', rel);
    if (!f)
      throw new SandpitError({
        ...site,
        message: 'no freezer on this node (neither cgroup v2 nor the v1 freezer controller)',
      });
    write(join(f, 'freezer.state'), frozen ? 'FROZEN' : 'THAWED', site);
  }

  frozen(rel: string): boolean {
    try {
      if (this.layout.unified)
        return /frozen 1/.test(readFileSync(join(this.layout.unified, this.parent, rel, 'cgroup.events'), 'utf8'));
      const f = this.controllerDir('freezer', rel);
      return !!f && readFileSync(join(f, 'freezer.state'), 'utf8').trim() === 'FROZEN';
    } catch {
      return false;
    }
  }

  /**
   * Kills every process in `rel` and waits until none is left. cgroup.kill
   * (v2, also on the hybrid unified mount) is atomic against forks; on pure v1
   * the tree is frozen first so that nothing forks between listing and killing.
   */
  async killAll(rel: string, site: Site, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const killFile = this.layout.unified ? join(this.layout.unified, this.parent, rel, 'cgroup.kill') : undefined;
    for (;;) {
      const pids = this.pids(rel);
      if (!pids.length) return;
      if (killFile && existsSync(killFile)) write(killFile, '1', site);
      else {
        const frz = this.controllerDir('freezer', rel);
        if (frz) trySilently(() => this.freeze(rel, true, site));
        for (const p of this.pids(rel)) kill(p, 9, site);
        if (frz) trySilently(() => this.freeze(rel, false, site));
      }
      if (Date.now() > deadline)
        throw new SandpitError({ ...site, message: `processes survive in cgroup ${rel}: ${pids.join(' ')}` });
      await sleep(5);
    }
  }

  /** Removes `rel` and everything below it in every hierarchy (deepest first). Idempotent. */
  async remove(rel: string, site: Site): Promise<void> {
    for (const d of this.dirs(rel)) await removeTree(d, site);
  }

  usage(rel: string): CgroupUsage {
    const read = (dir: string | undefined, file: string) => {
      if (!dir) return '';
      try {
        return readFileSync(join(dir, file), 'utf8');
      } catch {
        return '';
      }
    };
    const acct = this.controllerDir('cpuacct', rel);
    const cpuNanos = this.layout.v1.cpuacct
      ? Number(read(acct, 'cpuacct.usage').trim() || 0)
      : Number(
          /usage_usec (\d+)/.exec(
            read(this.layout.unified && join(this.layout.unified, this.parent, rel), 'cpu.stat'),
          )?.[1] ?? 0,
        ) * 1000;
    const mem = this.controllerDir('memory', rel);
    const memoryBytes = Number(
      (this.layout.v1.memory ? read(mem, 'memory.usage_in_bytes') : read(mem, 'memory.current')).trim() || 0,
    );
    const pids = Number(read(this.controllerDir('pids', rel), 'pids.current').trim() || this.pids(rel).length);
    return { cpuNanos, memoryBytes, pids };
  }

  /** How many processes of `rel` the OOM killer has killed so far. */
  oomKills(rel: string): number {
    const mem = this.controllerDir('memory', rel);
    if (!mem) return 0;
    try {
      const text = this.layout.v1.memory
        ? readFileSync(join(mem, 'memory.oom_control'), 'utf8')
        : readFileSync(join(mem, 'memory.events'), 'utf8');
      return Number(/oom_kill (\d+)/.exec(text)?.[1] ?? 0);
    } catch {
      return 0;
    }
  }

  /** Sandbox ids that have a cgroup under the parent in any hierarchy. */
  listSandboxes(): string[] {
    const ids = new Set<string>();
    const site = { step: 'list sandbox cgroups' };
    for (const h of this.hierarchies()) for (const e of childCgroups(join(h, this.parent), site)) ids.add(e);
    return [...ids];
  }

  /** Removes the (empty) parent itself; used by tests that own a private parent. */
  async removeParent(site: Site): Promise<void> {
    for (const h of this.hierarchies()) await removeTree(join(h, this.parent), site);
  }
}
