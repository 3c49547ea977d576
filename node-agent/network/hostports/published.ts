import type { PublishedPortStatus } from '../../../crds/sandbox.js';
import type { SandboxId } from '../../contracts.js';
import { ruleOwner, sandboxComment, type ListedRule } from '../rule-index.js';
import type { PortRule } from './validate.js';

/*
 * Which ports are published, and by whom, is read from the DNAT rules' comments
 * ("sandpit:<id> port <hostIP or *>:<tcp|udp>/<hostPort> for <namespace/name>"):
 * the table is the only record, so a restarted agent knows what it published.
 */

const portKey = (p: PortRule) => `${p.hostIP ?? '*'}:${p.protocol.toLowerCase()}/${p.hostPort}`;
/** nftables keeps at most 128 bytes of comment; the owner's name is cut to fit (it is only for people). */
const MAX_COMMENT = 127;

/** The comment of a sandbox's DNAT rule for `p`, naming its owner so a clash can say who holds the port. */
export const portComment = (id: SandboxId, p: PortRule, owner: string | undefined) => {
  const base = sandboxComment(id, `port ${portKey(p)}`);
  const who = (owner ?? '').replace(/[^a-zA-Z0-9./_-]/g, '_').slice(0, MAX_COMMENT - base.length - ' for '.length);
  return who ? `${base} for ${who}` : base;
};

export interface PublishedPort {
  owner: SandboxId;
  protocol: 'TCP' | 'UDP';
  hostPort: number;
  hostIP?: string;
  ownerName?: string;
}

/**
 * Published ports as the rules' comments name them, one entry per sandbox and
 * port however many rules carry it (IPv4 and IPv6 DNAT): what an agent
 * restarted with sandboxes running must hold again.
 */
export function publishedByRules(rules: ListedRule[]): PublishedPort[] {
  const out = new Map<string, PublishedPort>();
  for (const r of rules) {
    const owner = ruleOwner(r.comment);
    const m = / port (\S+):(tcp|udp)\/(\d+)(?: for (\S+))?$/.exec(r.comment ?? '');
    if (!owner || !m) continue;
    const entry = {
      owner,
      protocol: m[2] === 'tcp' ? ('TCP' as const) : ('UDP' as const),
      hostPort: Number(m[3]),
      ...(m[1] !== '*' ? { hostIP: m[1]! } : {}),
      ...(m[4] ? { ownerName: m[4] } : {}),
    };
    out.set(`${owner}/${entry.protocol}/${m[1]}/${entry.hostPort}`, entry);
  }
  return [...out.values()];
}

/**
 * Published ports of other sandboxes that clash with `ports`: same protocol and
 * hostPort, and host addresses that overlap (no hostIP means every address).
 */
export function hostPortConflicts(
  rules: ListedRule[],
  id: SandboxId,
  ports: PortRule[],
): { port: PortRule; owner: SandboxId; ownerName?: string }[] {
  const taken = publishedByRules(rules).filter((t) => t.owner !== id);
  const out: { port: PortRule; owner: SandboxId; ownerName?: string }[] = [];
  for (const p of ports) {
    const hit = taken.find(
      (t) =>
        t.protocol === p.protocol && t.hostPort === p.hostPort && (!t.hostIP || !p.hostIP || t.hostIP === p.hostIP),
    );
    if (hit) out.push({ port: p, owner: hit.owner, ...(hit.ownerName ? { ownerName: hit.ownerName } : {}) });
  }
  return out;
}

/** The ports as status.publishedPorts reports them: hostIP `0.0.0.0` for every node address. */
export const publishedPortStatus = (ports: PortRule[]): PublishedPortStatus[] =>
  ports.map((p) => ({
    ...(p.name ? { name: p.name } : {}),
    containerPort: p.containerPort,
    hostPort: p.hostPort,
    protocol: p.protocol,
    hostIP: p.hostIP ?? '0.0.0.0',
  }));
