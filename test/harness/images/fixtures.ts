import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  copyFileSync,
  writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';

/*
 * Test images built by real tools: busybox-static and a debootstrap'ed Debian
 * rootfs, packed with umoci into one OCI layout and pushed with skopeo. The
 * layout is cached in /var/cache/sandpit-test/images (the debootstrap tarball
 * too: it takes 1-5 minutes) — outside the clone, so a fresh CI clone on the
 * same machine reuses it. SANDPIT_IMAGES_TEST_CACHE moves it; deleting the dir
 * rebuilds everything from scratch.
 */

export const FIXTURE_VERSION = 'v3';
export const CACHE_DIR = resolve(process.env.SANDPIT_IMAGES_TEST_CACHE ?? '/var/cache/sandpit-test/images');
export const LAYOUT = join(CACHE_DIR, `oci-${FIXTURE_VERSION}`);

/** Tags in the layout. `multi` is an index of busybox (amd64) and arm (arm64). */
export const TAGS = ['busybox', 'app1', 'app2', 'corrupt', 'arm', 'multi', 'debian'] as const;

const run = (cmd: string, args: string[], cwd?: string) =>
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], cwd, maxBuffer: 1 << 26 });

function debianMirror(): string {
  for (const f of ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list']) {
    if (!existsSync(f)) continue;
    const text = readFileSync(f, 'utf8');
    const m = /^URIs:\s*(\S+)/m.exec(text) ?? /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)/m.exec(text);
    if (m) return m[1]!;
  }
  return 'http://deb.debian.org/debian';
}

/** A tar of a minbase Debian bookworm rootfs, made once. */
export function debianRootfsTar(): string {
  const tar = join(CACHE_DIR, 'debian-bookworm-minbase.tar');
  if (existsSync(tar)) return tar;
  mkdirSync(CACHE_DIR, { recursive: true });
  const dir = join(CACHE_DIR, 'debootstrap.tmp');
  rmSync(dir, { recursive: true, force: true });
  run('debootstrap', ['--variant=minbase', 'bookworm', dir, debianMirror()]);
  run('tar', ['--numeric-owner', '--xattrs', '-C', dir, '-cf', `${tar}.tmp`, '.']);
  renameSync(`${tar}.tmp`, tar);
  rmSync(dir, { recursive: true, force: true });
  return tar;
}

function manifestFor(layout: string, tag: string): { mediaType: string; digest: string; size: number } {
  const idx = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as {
    manifests: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[];
  };
  const m = idx.manifests.find((x) => x.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!m) throw new Error(`tag ${tag} not in layout`);
  return { mediaType: m.mediaType, digest: m.digest, size: m.size };
}

/** Builds the OCI layout (or returns the cached one). */
export function buildFixtures(): string {
  if (existsSync(join(LAYOUT, 'index.json'))) return LAYOUT;
  mkdirSync(CACHE_DIR, { recursive: true });
  const debTar = debianRootfsTar();
  const L = `${LAYOUT}.tmp`;
  const B = join(CACHE_DIR, 'bundle.tmp');
  rmSync(L, { recursive: true, force: true });
  rmSync(B, { recursive: true, force: true });
  run('umoci', ['init', '--layout', L]);

  // busybox: one layer with the static busybox and a few applet links.
  run('umoci', ['new', '--image', `${L}:busybox`]);
  run('umoci', ['unpack', '--image', `${L}:busybox`, B]);
  mkdirSync(join(B, 'rootfs/bin'), { recursive: true });
  copyFileSync('/bin/busybox', join(B, 'rootfs/bin/busybox'));
  for (const a of ['sh', 'ls', 'cat', 'echo']) symlinkSync('busybox', join(B, 'rootfs/bin', a));
  mkdirSync(join(B, 'rootfs/etc'));
  writeFileSync(join(B, 'rootfs/etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  run('umoci', ['repack', '--image', `${L}:busybox`, B]);
  run('umoci', [
    'config',
    '--image',
    `${L}:busybox`,
    '--config.cmd',
    '/bin/sh',
    '--config.env',
    'FROM_IMAGE=1',
    '--config.workingdir',
    '/',
  ]);
  rmSync(B, { recursive: true, force: true });

  // app1, app2, corrupt: busybox plus one small layer each (shared base layer).
  for (const app of ['app1', 'app2', 'corrupt']) {
    run('umoci', ['unpack', '--image', `${L}:busybox`, B]);
    const data =
      app === 'corrupt' ? createHash('sha512').update(app).digest().toString('hex').repeat(4096) : `${app}\n`;
    writeFileSync(join(B, `rootfs/${app}.txt`), data);
    run('umoci', ['repack', '--image', `${L}:${app}`, B]);
    rmSync(B, { recursive: true, force: true });
  }

  // arm: a tiny image that says arm64, for the index.
  run('umoci', ['new', '--image', `${L}:arm`]);
  run('umoci', ['unpack', '--image', `${L}:arm`, B]);
  writeFileSync(join(B, 'rootfs/arch.txt'), 'arm64\n');
  run('umoci', ['repack', '--image', `${L}:arm`, B]);
  run('umoci', ['config', '--image', `${L}:arm`, '--architecture', 'arm64', '--config.cmd', '/nothing']);
  rmSync(B, { recursive: true, force: true });

  // multi: an OCI index over busybox (linux/amd64) and arm (linux/arm64).
  const idx = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [
      { ...manifestFor(L, 'busybox'), platform: { os: 'linux', architecture: 'amd64' } },
      { ...manifestFor(L, 'arm'), platform: { os: 'linux', architecture: 'arm64' } },
    ],
  };
  const body = Buffer.from(JSON.stringify(idx));
  const hex = createHash('sha256').update(body).digest('hex');
  writeFileSync(join(L, 'blobs/sha256', hex), body);
  const top = JSON.parse(readFileSync(join(L, 'index.json'), 'utf8')) as { manifests: unknown[] };
  top.manifests.push({
    mediaType: idx.mediaType,
    digest: `sha256:${hex}`,
    size: body.length,
    annotations: { 'org.opencontainers.image.ref.name': 'multi' },
  });
  writeFileSync(join(L, 'index.json'), JSON.stringify(top));

  // debian: the debootstrap'ed rootfs in one layer.
  run('umoci', ['new', '--image', `${L}:debian`]);
  run('umoci', ['unpack', '--image', `${L}:debian`, B]);
  run('tar', ['--numeric-owner', '--xattrs', '-C', join(B, 'rootfs'), '-xf', debTar]);
  run('umoci', ['repack', '--image', `${L}:debian`, B]);
  run('umoci', ['config', '--image', `${L}:debian`, '--config.cmd', '/bin/bash']);
  rmSync(B, { recursive: true, force: true });

  run('umoci', ['gc', '--layout', L]);
  renameSync(L, LAYOUT);
  return LAYOUT;
}

/**
 * Pushes tags of the layout to a registry with skopeo (plain HTTP on 127.0.0.1),
 * as repository `as` (default: the tag's name) and tag `to` (default: latest).
 * Asynchronous: the token endpoint skopeo talks to runs in this process.
 */
export async function push(
  layout: string,
  registry: string,
  items: { tag: string; as?: string; docker?: boolean; to?: string }[],
  creds?: string,
): Promise<void> {
  for (const it of items) {
    const args = ['copy', '--quiet', '--dest-tls-verify=false'];
    if (creds) args.push('--dest-creds', creds);
    if (it.docker) args.push('--format', 'v2s2');
    if (it.tag === 'multi') args.push('--multi-arch', 'all');
    args.push(`oci:${layout}:${it.tag}`, `docker://${registry}/${it.as ?? it.tag}:${it.to ?? 'latest'}`);
    await promisify(execFile)('skopeo', args);
  }
}

/** The manifest digest of a tag in the layout, and its layer digests. */
export function layersOf(layout: string, tag: string): string[] {
  const m = manifestFor(layout, tag);
  const doc = JSON.parse(readFileSync(join(layout, 'blobs/sha256', m.digest.slice(7)), 'utf8')) as {
    layers: { digest: string }[];
  };
  return doc.layers.map((l) => l.digest);
}
