/*
 * Which cgroup hierarchies this node has. Detected from /proc/self/mountinfo so
 * that the same code runs on pure cgroup v2, pure v1 and the hybrid layout (v1
 * controllers plus a cgroup2 mount, often at /sys/fs/cgroup/unified, that may
 * carry no controllers at all but still offers cgroup.kill and cgroup.freeze).
 */

/** The v1 controllers sandpit uses; others (cpuset, devices, blkio, name=systemd) are left alone. */
export const V1_CONTROLLERS = ['memory', 'pids', 'cpu', 'cpuacct', 'freezer'] as const;
export type V1Controller = (typeof V1_CONTROLLERS)[number];

export interface CgroupLayout {
  kind: 'v2' | 'v1' | 'hybrid';
  /** Mount point of the cgroup2 hierarchy, when there is one. */
  unified?: string;
  /** Controllers enabled at the cgroup2 root (cgroup.controllers). */
  unifiedControllers: string[];
  /** Mount point of each v1 controller this node has. */
  v1: Partial<Record<V1Controller, string>>;
}

/** Parses mountinfo text; pure so it can be tested against each layout. */
export function parseCgroupMounts(mountinfo: string): { unified?: string; v1: Partial<Record<V1Controller, string>> } {
  const v1: Partial<Record<V1Controller, string>> = {};
  let unified: string | undefined;
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const pre = line.slice(0, sep).split(' ');
    const post = line.slice(sep + 3).split(' ');
    const mountPoint = unescapeMountinfo(pre[4] ?? '');
    const root = pre[3];
    if (root !== '/') continue; // a bind of a sub-tree (inside a container): not the hierarchy root
    if (post[0] === 'cgroup2') unified ??= mountPoint;
    if (post[0] === 'cgroup') {
      const opts = (post[2] ?? '').split(',');
      for (const c of V1_CONTROLLERS) if (opts.includes(c)) v1[c] ??= mountPoint;
    }
  }
  return { unified, v1 };
}

export function classify(
  mounts: { unified?: string; v1: Partial<Record<V1Controller, string>> },
  unifiedControllers: string[],
): CgroupLayout {
  const hasV1 = Object.keys(mounts.v1).length > 0;
  const kind = mounts.unified && !hasV1 ? 'v2' : mounts.unified ? 'hybrid' : 'v1';
  return { kind, unified: mounts.unified, unifiedControllers, v1: mounts.v1 };
}

function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}
