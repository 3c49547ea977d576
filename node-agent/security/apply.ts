import { readFileSync } from 'node:fs';
import type { CallSite } from '../sys/libc.js';
import {
  capset, prctl, prctl3, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS,
  seccompFilter, setgroups, setresgid, setresuid,
} from '../sys/proc.js';
import { capMask, CAP_NUMBERS } from './capabilities.js';

/** Who the workload runs as and what it may do; applied to the launcher thread, inherited by the child. */
export interface Identity {
  uid: number;
  gid: number;
  groups: number[];
  caps: string[];
  noNewPrivs: boolean;
  /** sock_filter[] bytes, or null for Unconfined. */
  seccomp: Uint8Array | null;
}

/**
 * Order matters: the bounding set is dropped while we still hold CAP_SETPCAP;
 * the filter is installed while we still hold CAP_SYS_ADMIN (so it works even
 * without no_new_privs); then the raw per-thread credential calls, which clear
 * the permitted set on a switch to non-root; then the final capability sets.
 */
export function applyIdentity(id: Identity, site: CallSite): void {
  const keep = new Set(id.caps);
  const last = Number(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8').trim());
  for (let cap = 0; cap <= last; cap++) {
    const name = Object.keys(CAP_NUMBERS).find((n) => CAP_NUMBERS[n] === cap);
    if (!name || !keep.has(name)) prctl(PR_CAPBSET_DROP, cap, { ...site, step: `${site.step}: drop bounding cap ${name ?? cap}` });
  }
  prctl3(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, site);
  if (id.seccomp) seccompFilter(Buffer.from(id.seccomp), { ...site, step: `${site.step}: seccomp` });
  setgroups(id.groups, { ...site, step: `${site.step}: setgroups` });
  setresgid(id.gid, { ...site, step: `${site.step}: setresgid` });
  setresuid(id.uid, { ...site, step: `${site.step}: setresuid` });
  const mask = id.uid === 0 ? capMask(id.caps) : 0n;
  capset(mask, mask, 0n, { ...site, step: `${site.step}: capset` });
  if (id.noNewPrivs) prctl(PR_SET_NO_NEW_PRIVS, 1, { ...site, step: `${site.step}: no_new_privs` });
}
