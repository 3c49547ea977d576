import {
  MS_BIND,
  MS_NODEV,
  MS_NOEXEC,
  MS_NOSUID,
  MS_RDONLY,
  MS_REC,
  MS_REMOUNT,
  MS_STRICTATIME,
} from '../sys/mount.js';

/*
 * The root filesystem of one container as a list of small named steps, built
 * here as plain data (pure, tested without root) and carried out by the
 * launcher thread inside the container's new mount namespace, before
 * pivot_root. Paths starting with the root are inside the new root; every
 * other path is a host path as seen from the sandbox's infra mount namespace.
 */

export type RootfsStep =
  | {
      op: 'mount';
      source: string | null;
      target: string;
      fstype: string | null;
      flags: number;
      data: string | null;
      ifExists?: boolean;
    }
  | { op: 'mkdir'; path: string; mode: number }
  | { op: 'touch'; path: string }
  | { op: 'symlink'; path: string; target: string }
  | { op: 'mask'; path: string }
  | { op: 'readonly'; path: string }
  /** A /proc of the container's own PID namespace, mounted by its PID 1 (see applyRootfs). */
  | { op: 'proc'; target: string }
  /** `source` mounted at `target` with owners shifted through the user namespace behind fd `userns`. */
  | { op: 'idmap'; source: string; target: string; userns: number }
  /** Lazily unmounts `target` (an idmapped layer, once the overlay holds its own reference). */
  | { op: 'detach'; target: string };

export interface RootfsSpec {
  /** Mount point of the container root on the host (an empty directory). */
  root: string;
  /** Image layers, lowest first, and this container's upper and work dirs. */
  layers: string[];
  upper: string;
  work: string;
  /** The sandbox's /dev/shm (a sized tmpfs on the host), shared by its containers. */
  shm: string;
  /** Files from the sandbox state dir bind-mounted at /etc/<name>. */
  etcFiles: { hostname: string; hosts: string; resolvConf: string };
  volumes: { source: string; mountPath: string; readOnly: boolean }[];
  /** The host file bind-mounted at the container's terminationMessagePath. */
  terminationLog?: { source: string; path: string };
  readOnlyRoot: boolean;
  privileged: boolean;
  /** shareProcessNamespace: false: /proc comes from the container's own PID namespace, not the sandbox's. */
  ownPidNamespace?: boolean;
  /**
   * hostUsers: false. Each layer is idmapped through the sandbox's user
   * namespace (fd) onto the matching empty dir of `layerMounts`, so root-owned
   * image files show as the container's root; /dev and its pty group are
   * owned by the host ids container 0 and 5 map to. The upper and work dirs
   * must already be owned by `base` (files the container creates land there as base).
   */
  userns?: { fd: number; base: number; layerMounts: string[] };
}

/** containerd's masked paths plus Docker's /proc/interrupts. */
export const MASKED_PATHS = [
  '/proc/acpi',
  '/proc/asound',
  '/proc/interrupts',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
];
export const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];
export const DEVICES = ['null', 'zero', 'full', 'random', 'urandom', 'tty'];

const nsd = MS_NOSUID | MS_NODEV;

export function buildRootfsPlan(s: RootfsSpec): RootfsStep[] {
  const r = (p: string) => `${s.root}${p}`;
  const steps: RootfsStep[] = [];
  const u = s.userns;
  // overlayfs takes idmapped lower layers and keeps its own reference to each: the idmapped mounts go once it is up.
  const layers = u ? s.layers.map((_, i) => u.layerMounts[i]!) : s.layers;
  if (u) s.layers.forEach((layer, i) => steps.push({ op: 'idmap', source: layer, target: layers[i]!, userns: u.fd }));
  const lower = [...layers].reverse().join(':');
  steps.push({
    op: 'mount',
    source: 'overlay',
    target: s.root,
    fstype: 'overlay',
    flags: MS_NODEV,
    data: `lowerdir=${lower},upperdir=${s.upper},workdir=${s.work}`,
  });
  if (u) for (const l of layers) steps.push({ op: 'detach', target: l });
  for (const d of ['/proc', '/dev', '/sys', '/etc']) steps.push({ op: 'mkdir', path: r(d), mode: 0o755 });

  if (s.ownPidNamespace) {
    steps.push({ op: 'proc', target: r('/proc') });
  } else {
    steps.push({ op: 'mount', source: '/proc', target: r('/proc'), fstype: null, flags: MS_BIND, data: null });
    steps.push({
      op: 'mount',
      source: null,
      target: r('/proc'),
      fstype: null,
      flags: MS_BIND | MS_REMOUNT | nsd | MS_NOEXEC,
      data: null,
    });
  }

  // /dev: a small tmpfs that cannot hold usable device nodes (nodev); the standard
  // nodes are bind mounts of the host's, so CAP_MKNOD gains nothing.
  steps.push({
    op: 'mount',
    source: 'tmpfs',
    target: r('/dev'),
    fstype: 'tmpfs',
    flags: nsd | MS_STRICTATIME,
    data: `mode=755,size=65536k${u ? `,uid=${u.base},gid=${u.base}` : ''}`,
  });
  for (const d of DEVICES) {
    steps.push({ op: 'touch', path: r(`/dev/${d}`) });
    steps.push({ op: 'mount', source: `/dev/${d}`, target: r(`/dev/${d}`), fstype: null, flags: MS_BIND, data: null });
    steps.push({
      op: 'mount',
      source: null,
      target: r(`/dev/${d}`),
      fstype: null,
      flags: MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NOEXEC,
      data: null,
    });
  }
  steps.push({ op: 'mkdir', path: r('/dev/pts'), mode: 0o755 });
  steps.push({
    op: 'mount',
    source: 'devpts',
    target: r('/dev/pts'),
    fstype: 'devpts',
    flags: MS_NOSUID | MS_NOEXEC,
    data: `newinstance,ptmxmode=0666,mode=0620,gid=${u ? u.base + 5 : 5}`,
  });
  steps.push({ op: 'symlink', path: r('/dev/ptmx'), target: 'pts/ptmx' });
  steps.push({ op: 'mkdir', path: r('/dev/shm'), mode: 0o1777 });
  steps.push({ op: 'mount', source: s.shm, target: r('/dev/shm'), fstype: null, flags: MS_BIND, data: null });
  steps.push({
    op: 'mount',
    source: null,
    target: r('/dev/shm'),
    fstype: null,
    flags: MS_BIND | MS_REMOUNT | nsd | MS_NOEXEC,
    data: null,
  });
  steps.push({ op: 'mkdir', path: r('/dev/mqueue'), mode: 0o755 });
  steps.push({
    op: 'mount',
    source: 'mqueue',
    target: r('/dev/mqueue'),
    fstype: 'mqueue',
    flags: nsd | MS_NOEXEC,
    data: null,
  });
  for (const [name, target] of [
    ['fd', '/proc/self/fd'],
    ['stdin', '/proc/self/fd/0'],
    ['stdout', '/proc/self/fd/1'],
    ['stderr', '/proc/self/fd/2'],
  ] as const)
    steps.push({ op: 'symlink', path: r(`/dev/${name}`), target });

  steps.push({
    op: 'mount',
    source: 'sysfs',
    target: r('/sys'),
    fstype: 'sysfs',
    flags: nsd | MS_NOEXEC | (s.privileged ? 0 : MS_RDONLY),
    data: null,
  });

  for (const [name, source] of [
    ['hostname', s.etcFiles.hostname],
    ['hosts', s.etcFiles.hosts],
    ['resolv.conf', s.etcFiles.resolvConf],
  ] as const) {
    steps.push({ op: 'touch', path: r(`/etc/${name}`) });
    steps.push({ op: 'mount', source, target: r(`/etc/${name}`), fstype: null, flags: MS_BIND, data: null });
  }

  for (const v of s.volumes) {
    steps.push({ op: 'mkdir', path: r(v.mountPath), mode: 0o755 });
    steps.push({
      op: 'mount',
      source: v.source,
      target: r(v.mountPath),
      fstype: null,
      flags: MS_BIND | MS_REC,
      data: null,
    });
    if (v.readOnly)
      steps.push({
        op: 'mount',
        source: null,
        target: r(v.mountPath),
        fstype: null,
        flags: MS_BIND | MS_REMOUNT | MS_RDONLY | nsd,
        data: null,
      });
  }

  if (s.terminationLog) {
    const target = r(s.terminationLog.path);
    const parent = target.slice(0, target.lastIndexOf('/'));
    if (parent.length > s.root.length) steps.push({ op: 'mkdir', path: parent, mode: 0o755 });
    steps.push({ op: 'touch', path: target });
    steps.push({ op: 'mount', source: s.terminationLog.source, target, fstype: null, flags: MS_BIND, data: null });
  }

  if (!s.privileged) {
    for (const p of MASKED_PATHS) steps.push({ op: 'mask', path: r(p) });
    for (const p of READONLY_PATHS) steps.push({ op: 'readonly', path: r(p) });
  }
  return steps;
}
