/*
 * CPU weight from CPU requests, as kubelet sets it: cpu.shares on cgroup v1
 * (1024 per core requested, 2 at the least, for a best-effort cgroup) and
 * the cpu.weight runc derives from those shares on cgroup v2. Under
 * contention the kernel divides CPU time among sibling cgroups in proportion
 * to their weights, so a sandbox or container that asked for CPU is not
 * starved by a busy neighbour that did not.
 */

/** kubelet's MinShares and MaxShares. */
const MIN_SHARES = 2;
const MAX_SHARES = 262_144;

/** cpu.shares for a request of `milliCpu` millicores (kubelet's MilliCPUToShares). */
export function sharesFromMilliCpu(milliCpu: number): number {
  if (milliCpu <= 0) return MIN_SHARES;
  return Math.min(MAX_SHARES, Math.max(MIN_SHARES, Math.floor((milliCpu * 1024) / 1000)));
}

/** cgroup v2 cpu.weight (1..10000) for v1 shares, as runc and kubelet convert them. */
export function weightFromShares(shares: number): number {
  return 1 + Math.floor(((shares - MIN_SHARES) * 9999) / (MAX_SHARES - MIN_SHARES));
}
