import { readFileSync } from 'node:fs';
import { mount, MNT_DETACH, MS_NODEV, MS_NOEXEC, MS_NOSUID, umount2 } from '../sys/mount.js';

type Site = { sandbox?: string; step: string };

/**
 * The mounts the runtime makes on the host for a sandbox (its /dev/shm and
 * tmpfs emptyDirs under the sandbox's state dir) and removes again; handed
 * in through RuntimeDeps. Containers' own roots are built by launcher
 * threads in the containers' mount namespaces and never appear here.
 */
export interface SandboxMounts {
  /** A tmpfs of `size` bytes, mode 1777, nosuid and nodev (and noexec if asked), owned by `owner` when given. */
  tmpfs(source: string, target: string, opts: { size: number; noexec?: boolean; owner?: number }, site: Site): void;
  /** Host mount points at or below `dir`, deepest first. */
  under(dir: string): string[];
  /** Detaches every mount at or below `dir`, deepest first. */
  detachUnder(dir: string, site: Site): void;
}

/** The host's own mount table, through mount(2) and /proc/self/mountinfo. */
export const hostMounts: SandboxMounts = {
  tmpfs(source, target, opts, site) {
    const owner = opts.owner === undefined ? '' : `,uid=${opts.owner},gid=${opts.owner}`;
    const flags = MS_NOSUID | MS_NODEV | (opts.noexec ? MS_NOEXEC : 0);
    mount(source, target, 'tmpfs', flags, `mode=1777,size=${opts.size}${owner}`, site);
  },
  under: mountsUnder,
  detachUnder(dir, site) {
    for (const m of mountsUnder(dir)) umount2(m, MNT_DETACH, { ...site, step: `${site.step}: unmount ${m}` });
  },
};

/** Host mount points at or below `dir`, deepest first. */
export function mountsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mp = line.split(' ')[4];
    if (mp && (mp === dir || mp.startsWith(`${dir}/`))) out.push(mp.replace(/\\040/g, ' '));
  }
  return out.sort((a, b) => b.length - a.length);
}
