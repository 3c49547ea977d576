import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { buildInitramfs, INITRAMFS_VERSION } from './initramfs.js';

/*
 * The guest kernel: Debian's stock linux-image-*-amd64, fetched with
 * `apt-get download` and unpacked with `dpkg-deb -x` into a cache directory —
 * never installed, so the host's /boot, initramfs-tools hooks and bootloader
 * are left alone. The cache entry holds vmlinuz, the full module tree (with a
 * modules.dep from depmod, so the guest can modprobe veth, bridge, nf_tables …)
 * and our initramfs. It is built in a temporary directory and renamed into
 * place, so concurrent first runs do not see half a cache.
 */

export interface GuestKernel {
  /** Directory of this cache entry: ~/.cache/sandpit/vm/<kernel release>-<initramfs version>. */
  dir: string;
  release: string;
  vmlinuz: string;
  initramfs: string;
  /** lib/modules/<release> on the host, bind-mounted by the guest at the same place in its root. */
  modules: string;
}

export function cacheRoot(): string {
  return process.env.SANDPIT_VM_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'sandpit', 'vm');
}

/** Modules the initramfs loads itself (to mount the host's root); the rest come from the bind-mounted tree. */
export const INITRAMFS_MODULES = ['virtio_pci', '9pnet_virtio', '9p', 'overlay', 'virtio_console'];

/** The binary kernel package that linux-image-amd64 currently points at, e.g. linux-image-6.1.0-56-amd64. */
export function resolveKernelPackage(): string {
  if (process.env.SANDPIT_VM_KERNEL_PACKAGE) return process.env.SANDPIT_VM_KERNEL_PACKAGE;
  const out = run('apt-cache', ['depends', 'linux-image-amd64']);
  const m = /Depends:\s*(linux-image-[0-9][^\s]*-amd64)/.exec(out);
  if (!m) throw new Error(`cannot tell which kernel linux-image-amd64 depends on; apt-cache said:\n${out}`);
  return m[1] as string;
}

export function ensureGuestKernel(log: (line: string) => void = () => {}): GuestKernel {
  const pkg = resolveKernelPackage();
  const release = pkg.replace(/^linux-image-/, '');
  const dir = join(cacheRoot(), `${release}-i${INITRAMFS_VERSION}`);
  const kernel: GuestKernel = {
    dir,
    release,
    vmlinuz: join(dir, 'vmlinuz'),
    initramfs: join(dir, 'initramfs.gz'),
    modules: join(dir, 'lib', 'modules', release),
  };
  if (existsSync(join(dir, 'complete'))) return kernel;

  mkdirSync(cacheRoot(), { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    log(`vm: fetching ${pkg} with apt-get download into ${tmp}`);
    run('apt-get', ['download', '-q', pkg], tmp);
    const deb = readdirSync(tmp).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
    if (!deb) throw new Error(`apt-get download ${pkg} left no .deb in ${tmp}`);
    run('dpkg-deb', ['-x', deb, 'x'], tmp);
    rmSync(join(tmp, deb));
    const modSrc = join(tmp, 'x', 'lib', 'modules', release);
    if (!existsSync(modSrc)) throw new Error(`${deb} has no lib/modules/${release}`);
    mkdirSync(join(tmp, 'lib', 'modules'), { recursive: true });
    renameSync(modSrc, join(tmp, 'lib', 'modules', release));
    renameSync(join(tmp, 'x', 'boot', `vmlinuz-${release}`), join(tmp, 'vmlinuz'));
    rmSync(join(tmp, 'x'), { recursive: true, force: true });
    run('depmod', ['-b', tmp, release]);

    const modules = join(tmp, 'lib', 'modules', release);
    const files = moduleLoadOrder(readFileSync(join(modules, 'modules.dep'), 'utf8'), INITRAMFS_MODULES).map((rel) =>
      join(modules, rel),
    );
    log(`vm: building initramfs with ${files.length} modules`);
    writeFileSync(join(tmp, 'initramfs.gz'), buildInitramfs({ release, modules: files, busybox: findBusybox() }));
    writeFileSync(join(tmp, 'complete'), `${pkg}\n`);
    if (existsSync(join(dir, 'complete'))) {
      rmSync(tmp, { recursive: true, force: true }); // another run finished first: use its entry, which may be in use
    } else {
      rmSync(dir, { recursive: true, force: true });
      renameSync(tmp, dir);
    }
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  return kernel;
}

/**
 * Module files (relative to lib/modules/<release>) in an order insmod accepts:
 * each module after everything it depends on, per depmod's modules.dep.
 */
export function moduleLoadOrder(modulesDep: string, wanted: string[]): string[] {
  const deps = new Map<string, string[]>();
  const byName = new Map<string, string>();
  for (const line of modulesDep.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const file = line.slice(0, colon);
    deps.set(
      file,
      line
        .slice(colon + 1)
        .trim()
        .split(/\s+/)
        .filter(Boolean),
    );
    byName.set(moduleName(file), file);
  }
  const out: string[] = [];
  const visit = (file: string, trail: string[]) => {
    if (out.includes(file)) return;
    if (trail.includes(file)) throw new Error(`module dependency cycle: ${[...trail, file].join(' -> ')}`);
    for (const d of deps.get(file) ?? []) visit(d, [...trail, file]);
    out.push(file);
  };
  for (const name of wanted) {
    const file = byName.get(name.replace(/-/g, '_'));
    if (!file) throw new Error(`module ${name} is not in modules.dep`);
    visit(file, []);
  }
  return out;
}

function moduleName(file: string): string {
  const base = file.slice(file.lastIndexOf('/') + 1);
  return base.replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');
}

function findBusybox(): string {
  for (const p of ['/bin/busybox', '/usr/bin/busybox']) if (existsSync(p)) return p;
  throw new Error('busybox not found: install busybox-static (listed in .ci/packages/vm.txt)');
}

function run(cmd: string, args: string[], cwd?: string): string {
  try {
    return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`, { cause: err });
  }
}
