import { ImageError } from './errors.js';
import { DIGEST_RE } from './reference.js';

/*
 * Picking a manifest from an index, like containerd's platform matcher:
 * exact os/arch/variant first, then older variants of the same architecture
 * (amd64 v3 → v2 → v1, arm v7 → v6 → v5), then 386 for amd64. BuildKit's
 * attestation entries (unknown/unknown) are never chosen.
 */

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface IndexEntry {
  mediaType?: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
}

const ARCH_ALIASES: Record<string, string> = {
  x86_64: 'amd64',
  'x86-64': 'amd64',
  aarch64: 'arm64',
  armhf: 'arm',
  i386: '386',
};

export function normalisePlatform(p: Platform): Platform {
  const architecture = ARCH_ALIASES[p.architecture] ?? p.architecture;
  let variant = p.variant;
  if (architecture === 'arm64' && (variant === undefined || variant === '' || variant === '8')) variant = 'v8';
  if (architecture === 'amd64' && (variant === undefined || variant === '')) variant = 'v1';
  if (architecture === 'arm' && (variant === undefined || variant === '')) variant = 'v7';
  return { os: p.os.toLowerCase(), architecture, ...(variant ? { variant } : {}) };
}

/** Platforms acceptable for `want`, best first. */
export function platformPreferences(want: Platform): Platform[] {
  const w = normalisePlatform(want);
  const out: Platform[] = [w];
  const n = Number(w.variant?.slice(1));
  if (w.architecture === 'amd64' && n > 1) for (let v = n - 1; v >= 1; v--) out.push({ ...w, variant: `v${v}` });
  if (w.architecture === 'arm' && n > 5) for (let v = n - 1; v >= 5; v--) out.push({ ...w, variant: `v${v}` });
  if (w.architecture === 'amd64') out.push({ os: w.os, architecture: '386' });
  return out;
}

const same = (a: Platform, b: Platform) =>
  a.os === b.os && a.architecture === b.architecture && (a.variant ?? '') === (b.variant ?? '');

/** The best index entry for the platform, or undefined when none fits. */
export function selectManifest(entries: IndexEntry[], want: Platform): IndexEntry | undefined {
  const candidates = entries.filter(
    (e) =>
      e.platform &&
      e.platform.os !== 'unknown' &&
      e.annotations?.['vnd.docker.reference.type'] !== 'attestation-manifest',
  );
  for (const pref of platformPreferences(want)) {
    const hit = candidates.find((e) => same(normalisePlatform(e.platform!), pref));
    if (hit) return hit;
  }
  return undefined;
}

const noPlatform = (message: string) =>
  new ImageError({ reason: 'ErrImagePull', step: 'select platform', message, retryable: false });

/** The index entry `name` offers for `want`; refused when none fits (naming what it has) or its digest is invalid. */
export function manifestForPlatform(entries: IndexEntry[], want: Platform, name: string): IndexEntry {
  const pick = selectManifest(entries, want);
  if (!pick) {
    const have = entries.map(
      (m) => `${m.platform?.os}/${m.platform?.architecture}${m.platform?.variant ? `/${m.platform.variant}` : ''}`,
    );
    throw noPlatform(`no manifest for ${want.os}/${want.architecture} in ${name} (has ${have.join(', ')})`);
  }
  if (!DIGEST_RE.test(pick.digest)) throw noPlatform(`invalid digest in index: ${pick.digest}`);
  return pick;
}

/** The platform of this node, in OCI terms. */
export function hostPlatform(): Platform {
  const arch = process.arch === 'x64' ? 'amd64' : process.arch === 'ia32' ? '386' : process.arch;
  return { os: 'linux', architecture: arch };
}
