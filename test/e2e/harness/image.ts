import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { buildBusyboxRootfs } from '../../fixtures/busybox-rootfs.js';
import { CACHE_DIR, debianRootfsTar } from '../../harness/images/fixtures.js';
import type { DockerEngine } from './engine.js';

/*
 * The node image, built locally from nothing pullable:
 *
 * 1. node-base: the debootstrap'ed Debian bookworm tarball the image tests use
 *    (test/harness/images/fixtures.ts makes it on a cold machine), plus the
 *    Debian packages the agent needs at run time, installed by apt in a chroot
 *    (its own mount namespace, so the /proc it mounts dies with it), plus this
 *    machine's Node.js binary and an unpacked busybox root for `dir:` images.
 *    Cached as a tarball in /var/cache/sandpit-test/images/e2e/, keyed by the
 *    package list, the Debian tarball and the Node.js binary; `docker import`ed
 *    into each run's engine (its data root is temporary).
 * 2. node: node-base plus the built agent (dist/, package.json and only the
 *    production node_modules), one `docker build` layer tagged with a hash of
 *    those files, so a rebuilt dist/ gives a new tag and an unchanged one is
 *    found again within the same engine.
 */

/** Debian packages the agent uses at run time on a node (see node-agent/runtime/config.ts, network/). */
export const NODE_PACKAGES = [
  'busybox-static', // /usr/bin/busybox: the sandbox's init helper binaries
  'catatonit', // PID 1 of each sandbox, and of the node container
  'util-linux', // unshare, mount, nsenter
  'nftables', // nft: fallback door, and the leak checks
  'libnftables1', // the agent's in-process nftables door (koffi)
  'iproute2', // ip: leak checks and the routes between node subnets
  'iptables', // iptables-legacy accept rules on x_tables hosts
  'zstd', // zstd-compressed OCI layers
  'procps', // ps/pgrep for process checks
  'kmod',
];

const BASE_VERSION = 'v1';
export const E2E_CACHE = join(CACHE_DIR, 'e2e');
const ROOT = new URL('../../../..', import.meta.url).pathname.replace(/\/$/, '');
/** Where the busybox root for `dir:` sandbox images sits inside the node image. */
export const NODE_ROOTFS = '/opt/sptest/rootfs';
/** Where the agent's build sits inside the node image. */
export const APP_DIR = '/opt/sandpit';

const sha = (...parts: (string | Buffer)[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest('hex');
};
const fileStamp = (f: string) => {
  const s = statSync(f);
  return `${f}:${s.size}:${s.mtimeMs}`;
};

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 28, ...opts });
}

/** The node-base root filesystem as a tarball (built once per key). */
export function nodeBaseTar(): { tar: string; key: string } {
  const debian = debianRootfsTar();
  const node = process.execPath;
  const key = sha(
    BASE_VERSION,
    NODE_PACKAGES.join(' '),
    fileStamp(debian),
    fileStamp(node),
    fileStamp('/usr/bin/busybox'),
  ).slice(0, 16);
  const tar = join(E2E_CACHE, `node-base-${key}.tar`);
  if (existsSync(tar)) return { tar, key };
  mkdirSync(E2E_CACHE, { recursive: true });
  const dir = join(E2E_CACHE, `node-base-${key}.tmp`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  try {
    run('tar', ['--numeric-owner', '--xattrs', '-C', dir, '-xf', debian]);
    // apt in the chroot uses this machine's sources, keys and settings (the ones that work here).
    for (const p of [
      'sources.list',
      'sources.list.d',
      'apt.conf.d',
      'auth.conf.d',
      'preferences.d',
      'trusted.gpg',
      'trusted.gpg.d',
      'keyrings',
    ]) {
      const src = join('/etc/apt', p);
      if (existsSync(src)) cpSync(src, join(dir, 'etc/apt', p), { recursive: true, force: true });
    }
    copyFileSync('/etc/resolv.conf', join(dir, 'etc/resolv.conf'));
    writeFileSync(join(dir, 'usr/sbin/policy-rc.d'), '#!/bin/sh\nexit 101\n', { mode: 0o755 });
    const script = [
      'set -e',
      'mount -t proc proc /proc',
      'export DEBIAN_FRONTEND=noninteractive',
      'apt-get update -qq',
      `apt-get install -y -qq --no-install-recommends ${NODE_PACKAGES.join(' ')} >/dev/null`,
      'apt-get clean',
      'rm -rf /var/lib/apt/lists/*',
      'umount /proc',
    ].join('\n');
    run('unshare', ['--mount', '--propagation', 'private', '--fork', 'chroot', dir, '/bin/sh', '-c', script]);
    copyFileSync(node, join(dir, 'usr/local/bin/node'));
    execFileSync('chmod', ['755', join(dir, 'usr/local/bin/node')]);
    buildBusyboxRootfs(join(dir, NODE_ROOTFS.slice(1)));
    writeFileSync(join(dir, 'etc/hostname'), 'sptest-node\n');
    run('tar', ['--numeric-owner', '--xattrs', '-C', dir, '-cf', `${tar}.tmp`, '.']);
    renameSync(`${tar}.tmp`, tar);
    // Tarballs of other keys (an older package list or Node.js) are not used again.
    for (const f of readdirSync(E2E_CACHE))
      if (/^node-base-[0-9a-f]+\.tar$/.test(f) && f !== `node-base-${key}.tar`)
        rmSync(join(E2E_CACHE, f), { force: true });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return { tar, key };
}

/** The files of the agent's build that go into the image: dist/, package.json, production node_modules. */
export function appFiles(root = ROOT): string[] {
  const prod = run('npm', ['ls', '--omit=dev', '--parseable', '--all'], { cwd: root })
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith(`${root}/node_modules/`))
    .map((l) => relative(root, l));
  // Keep only top-most package dirs (nested ones are inside them already).
  prod.sort();
  const top: string[] = [];
  for (const p of prod) if (!top.some((t) => p.startsWith(`${t}/`))) top.push(p);
  return ['package.json', 'dist', ...top];
}

function hashTree(root: string, rel: string, h: ReturnType<typeof createHash>): void {
  const p = join(root, rel);
  const s = statSync(p);
  if (s.isDirectory()) {
    for (const e of readdirSync(p).sort()) hashTree(root, join(rel, e), h);
  } else if (s.isFile()) {
    h.update(rel).update('\0').update(String(s.size)).update('\0');
    // dist/ changes with every build: hash its contents; packages: size and name are enough.
    if (rel.startsWith('dist/') || rel === 'package.json') h.update(readFileSync(p));
  }
}

/**
 * Builds (or finds) the node image in the engine and returns its tag.
 * `root` is a checkout with a built dist/ (the upgrade scenario builds from a copy).
 */
export async function nodeImage(engine: DockerEngine, root = ROOT): Promise<string> {
  const base = nodeBaseTar();
  const baseTag = `sptest-e2e/node-base:${base.key}`;
  if ((await engine.dockerResult(['image', 'inspect', baseTag])).code !== 0) {
    await engine.docker([
      'import',
      '--change',
      'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      base.tar,
      baseTag,
    ]);
  }
  const files = appFiles(root);
  const h = createHash('sha256').update(baseTag);
  for (const f of files) hashTree(root, f, h);
  const tag = `sptest-e2e/node:${h.digest('hex').slice(0, 16)}`;
  if ((await engine.dockerResult(['image', 'inspect', tag])).code === 0) return tag;
  const ctx = join(engine.dir, `build-${tag.split(':')[1]}`);
  rmSync(ctx, { recursive: true, force: true });
  mkdirSync(join(ctx, 'app'), { recursive: true });
  try {
    for (const f of files) {
      mkdirSync(dirname(join(ctx, 'app', f)), { recursive: true });
      // Hard links when the checkout and the engine dir share a filesystem: no copying.
      try {
        run('cp', ['-al', join(root, f), join(ctx, 'app', f)]);
      } catch {
        run('cp', ['-a', join(root, f), join(ctx, 'app', f)]);
      }
    }
    writeFileSync(
      join(ctx, 'Dockerfile'),
      `FROM ${baseTag}\nCOPY app ${APP_DIR}\nCMD ["/usr/bin/catatonit", "--", "/bin/sleep", "infinity"]\n`,
    );
    await engine.docker(['build', '-q', '-t', tag, ctx], { timeoutMs: 600_000 });
  } finally {
    rmSync(ctx, { recursive: true, force: true });
  }
  return tag;
}
