import { readFileSync } from 'node:fs';
import { MNT_DETACH, umount2 } from '../sys/mount.js';

/** Host mount points at or below `dir`, deepest first. */
export function mountsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mp = line.split(' ')[4];
    if (mp && (mp === dir || mp.startsWith(`${dir}/`))) out.push(mp.replace(/\\040/g, ' '));
  }
  return out.sort((a, b) => b.length - a.length);
}

/** Unmounts what we mounted on the host under a sandbox dir (shm, volumes), deepest first. */
export function unmountUnder(dir: string, who: string): void {
  for (const m of mountsUnder(dir)) umount2(m, MNT_DETACH, { sandbox: who, step: `unmount ${m}` });
}
