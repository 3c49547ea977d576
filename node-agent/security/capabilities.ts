import { CAPABILITIES } from '../../crds/common.js';
import { SandpitError } from '../../lib/errors.js';

/* Capability names and the sets a container gets. Pure: tested without root. */

export const CAP_NUMBERS: Record<string, number> = Object.fromEntries(CAPABILITIES.map((name, bit) => [name, bit]));

/** Docker's and containerd's default grant. */
export const DEFAULT_CAPS = [
  'CHOWN',
  'DAC_OVERRIDE',
  'FSETID',
  'FOWNER',
  'MKNOD',
  'NET_RAW',
  'SETGID',
  'SETUID',
  'SETFCAP',
  'SETPCAP',
  'NET_BIND_SERVICE',
  'SYS_CHROOT',
  'KILL',
  'AUDIT_WRITE',
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
 * The agent's --allow-capability values (repeatable, or comma-separated as in
 * SANDPIT_ALLOW_CAPABILITIES), normalised to names without CAP_. An unknown
 * name stops the agent at start instead of surprising a Sandbox later.
 * Shared by the cluster agent (node-agent/config.ts) and standalone mode.
 */
export function parseAllowedCapabilities(values: readonly string[]): string[] {
  const names = values
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter(Boolean)
    .map(normalizeCap);
  for (const n of names)
    if (!(n in CAP_NUMBERS))
      throw new Error(`--allow-capability: unknown capability ${n} (known: ${ALL_CAPS.join(', ')})`);
  return [...new Set(names)];
}

/** Which agent the refusal hints speak to: the flag, env variable and chart value each one has. */
export type PolicyHints = 'cluster' | 'standalone';

export function allowPrivilegedHint(mode: PolicyHints = 'cluster'): string {
  return mode === 'standalone'
    ? 'start the agent with --allow-privileged'
    : 'allow it on the node: set SANDPIT_ALLOW_PRIVILEGED=true on the agent (chart value agent.allowPrivileged, which needs agent.privileged=true)';
}

function allowCapabilityHint(cap: string, mode: PolicyHints = 'cluster'): string {
  return mode === 'standalone'
    ? `start the agent with --allow-capability ${cap}`
    : `allow it on the node: agent flag --allow-capability ${cap} (env SANDPIT_ALLOW_CAPABILITIES, chart value agent.allowCapabilities), or drop it from the spec`;
}

/**
 * The capability names a container keeps: the defaults, minus drops (ALL
 * drops every default), plus adds. Adds beyond the defaults and privileged
 * mode need the agent's permission, because they widen what the node trusts.
 */
export function containerCaps(
  opts: { privileged?: boolean; add?: string[]; drop?: string[] },
  policy: {
    allowPrivileged: boolean;
    allowedCapabilities: string[];
    hints?: PolicyHints;
    bounding?: ReadonlySet<string>;
  },
  sandbox?: string,
): string[] {
  // The agent cannot give what it does not hold: a capability outside its own bounding set makes
  // capset fail in the shim (EPERM), so privileged means every capability the agent has, as with runc.
  const held = (c: string) => policy.bounding?.has(c) ?? true;
  if (opts.privileged) {
    if (!policy.allowPrivileged)
      throw new SandpitError({
        sandbox,
        step: 'capabilities',
        message: 'privileged containers are not allowed on this node',
        hint: allowPrivilegedHint(policy.hints),
      });
    return ALL_CAPS.filter(held);
  }
  const drop = new Set((opts.drop ?? []).map(normalizeCap));
  const caps = new Set(drop.has('ALL') ? [] : DEFAULT_CAPS.filter((c) => !drop.has(c)));
  for (const a of (opts.add ?? []).map(normalizeCap)) {
    if (!(a in CAP_NUMBERS))
      throw new SandpitError({ sandbox, step: 'capabilities', message: `unknown capability ${a}` });
    if (
      !DEFAULT_CAPS.includes(a) &&
      !policy.allowedCapabilities.map(normalizeCap).includes(a) &&
      !policy.allowPrivileged
    )
      throw new SandpitError({
        sandbox,
        step: 'capabilities',
        message: `capability ${a} is not allowed on this node`,
        hint: allowCapabilityHint(a, policy.hints),
      });
    if (!held(a))
      throw new SandpitError({
        sandbox,
        step: 'capabilities',
        message: `capability ${a} is not in the agent's bounding set on this node`,
        hint: "the node (or the agent's container) withholds it; drop it from capabilities.add",
      });
    caps.add(a);
  }
  return [...caps].filter(held);
}

/** The capability names in a /proc/PID/status text's CapBnd line. */
export function boundingCaps(status: string): Set<string> {
  const hex = /^CapBnd:\s+([0-9a-f]+)$/m.exec(status)?.[1];
  if (!hex) return new Set(ALL_CAPS);
  const mask = BigInt(`0x${hex}`);
  return new Set(ALL_CAPS.filter((c) => (mask >> BigInt(CAP_NUMBERS[c]!)) & 1n));
}
