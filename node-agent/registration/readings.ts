import { existsSync, readFileSync, statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Reading, Readings } from './pressure.js';

/*
 * The readings behind the node pressure conditions (pressure.ts), from the
 * kernel: /proc/meminfo, statfs of the agent's state and image directories,
 * the PID limits and the number of tasks. Each reading that fails is left
 * out, and its condition becomes Unknown rather than a guess.
 */

export interface ReadingPaths {
  /** Where sandbox state, logs and writable layers live (kubelet's nodefs). */
  nodefs: string;
  /** Where the image store lives (kubelet's imagefs); often the same filesystem. */
  imagefs: string;
  /** /proc, for tests. */
  proc?: string;
}

/** MemAvailable and MemTotal from /proc/meminfo (the kernel's estimate of what can be had without swapping). */
export function readMemory(proc = '/proc'): Reading {
  const text = readFileSync(`${proc}/meminfo`, 'utf8');
  const kib = (key: string) => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB$`, 'm').exec(text);
    if (!m) throw new Error(`${proc}/meminfo has no ${key}`);
    return Number(m[1]) * 1024;
  };
  return { available: kib('MemAvailable'), capacity: kib('MemTotal') };
}

/** The directory itself, or its nearest existing parent (the agent may not have made it yet). */
function existing(path: string): string {
  let p = path;
  while (!existsSync(p) && dirname(p) !== p) p = dirname(p);
  return p;
}

/** Space for unprivileged writers (bavail) and free inodes of the filesystem holding `path`; inodes are null where the filesystem has no fixed count (btrfs reports 0). */
export function readFilesystem(path: string): { space: Reading; inodes: Reading | null } {
  const s = statfsSync(existing(path));
  return {
    space: { available: s.bavail * s.bsize, capacity: s.blocks * s.bsize },
    inodes: s.files > 0 ? { available: s.ffree, capacity: s.files } : null,
  };
}

/**
 * PIDs left: the smaller of kernel.pid_max and kernel.threads-max, less the
 * tasks (processes and threads) that exist, as /proc/loadavg counts them.
 * This is the node-wide limit kubelet's pid.available uses too.
 */
export function readPids(proc = '/proc'): Reading {
  const max = Math.min(
    Number(readFileSync(`${proc}/sys/kernel/pid_max`, 'utf8')),
    Number(readFileSync(`${proc}/sys/kernel/threads-max`, 'utf8')),
  );
  const tasks = Number(/^\S+ \S+ \S+ \d+\/(\d+) /.exec(readFileSync(`${proc}/loadavg`, 'utf8'))?.[1]);
  if (!Number.isFinite(max) || !Number.isFinite(tasks))
    throw new Error(`cannot read the PID limit or task count from ${proc}`);
  return { available: max - tasks, capacity: max };
}

/** Every reading that can be taken now; `onError` hears about the others. */
export function takeReadings(
  paths: ReadingPaths,
  onError: (what: string, err: Error) => void = () => undefined,
): Readings {
  const out: Readings = {};
  const attempt = (what: string, fn: () => void) => {
    try {
      fn();
    } catch (err) {
      onError(what, err as Error);
    }
  };
  attempt('memory', () => (out['memory.available'] = readMemory(paths.proc)));
  attempt(`filesystem of ${paths.nodefs}`, () => {
    const fs = readFilesystem(paths.nodefs);
    out['nodefs.available'] = fs.space;
    out['nodefs.inodesFree'] = fs.inodes;
  });
  attempt(`filesystem of ${paths.imagefs}`, () => {
    const fs = readFilesystem(paths.imagefs);
    out['imagefs.available'] = fs.space;
    out['imagefs.inodesFree'] = fs.inodes;
  });
  attempt('PIDs', () => (out['pid.available'] = readPids(paths.proc)));
  return out;
}
