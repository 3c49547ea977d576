import { CAPABILITIES } from '../../crds/common.js';
import { SandpitError } from '../../lib/errors.js';

/* Capability names and the sets a container gets. Pure: tested without root. */

export const CAP_NUMBERS: Record<string, number> = Object.fromEntries(CAPABILITIES.map((name, bit) => [name, bit]));

/** Docker's and containerd's default grant. */
export const DEFAULT_CAPS = [
  'CHOWN', 'DAC_OVERRIDE', 'FSETID', 'FOWNER', 'MKNOD', 'NET_RAW', 'SETGID', 'SETUID',
  'SETFCAP', 'SETPCAP', 'NET_BIND_SERVICE', 'SYS_CHROOT', 'KILL', 'AUDIT_WRITE',
];

export const normalizeCap = (name: string) => name.toUpperCase().replace(/^CAP_/, '');

export function capMask(names: Iterable<string>): bigint {
  let mask = 0n;
  for (const n of names) {
    const bit = CAP_NUMBERS[normalizeCap(n)];
    if (bit === undefined) throw new SandpitError({ step: 'capabilities', message: `unknown capability ${n}` });
    mask |= 1n << BigInt(bit);
  }
  return mask;
}

export const ALL_CAPS = Object.keys(CAP_NUMBERS);

/**
 * The capability names a container keeps: the defaults, minus drops (ALL
 * drops every default), plus adds. Adds beyond the defaults and privileged
 * mode need the agent's permission, because they widen what the node trusts.
 */
export function containerCaps(
  opts: { privileged?: boolean; add?: string[]; drop?: string[] },
  policy: { allowPrivileged: boolean; allowedCapabilities: string[] },
  sandbox?: string,
): string[] {
  if (opts.privileged) {
    if (!policy.allowPrivileged) throw new SandpitError({ sandbox, step: 'capabilities', message: 'privileged containers are not allowed on this node', hint: 'start the agent with --allow-privileged' });
    return ALL_CAPS;
  }
  const drop = new Set((opts.drop ?? []).map(normalizeCap));
  const caps = new Set(drop.has('ALL') ? [] : DEFAULT_CAPS.filter((c) => !drop.has(c)));
  for (const a of (opts.add ?? []).map(normalizeCap)) {
    if (!(a in CAP_NUMBERS)) throw new SandpitError({ sandbox, step: 'capabilities', message: `unknown capability ${a}` });
    if (!DEFAULT_CAPS.includes(a) && !policy.allowedCapabilities.map(normalizeCap).includes(a) && !policy.allowPrivileged)
      throw new SandpitError({ sandbox, step: 'capabilities', message: `capability ${a} is not allowed on this node`, hint: 'add it to the agent --allow-capability list' });
    caps.add(a);
  }
  return [...caps];
}
