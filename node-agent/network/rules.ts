import type { SandboxId } from '../contracts.js';
import type { NftObject } from './nftables.js';

/*
 * The nftables rule set as pure functions from data to nft scripts. Everything
 * lives in one `inet <table>` table. Node-level rules sit in base chains that
 * are rewritten whole (flush + add) whenever the agent ensures them, so that is
 * idempotent; per-sandbox rules sit in the regular chains `hostports` and
 * `sandbox-egress` and carry the comment `sandpit:<id> ...`, so teardown and GC
 * find them by listing the table: no stored state.
 */

export interface RuleConfig {
  /** nftables table name (family inet), `sandpit` on a real node. */
  table: string;
  bridge: string;
  /** Sandbox subnet CIDR. */
  subnet: string;
  /** Sandbox IPv6 prefix on a dual-stack node. */
  subnet6?: string;
}

export interface PortRule {
  /** Name from the spec, reported in status only. */
  name?: string;
  hostIP?: string;
  hostPort: number;
  containerPort: number;
  protocol: 'TCP' | 'UDP';
}

export interface SandboxRules {
  id: SandboxId;
  /** `namespace/name`, written into the comment of each port rule so a clash can name who holds the port. */
  owner?: string;
  address: string;
  /** Its IPv6 address on a dual-stack node. */
  address6?: string;
  /** Host end of its veth: frames entering the bridge from it must carry `address` (anti-spoofing). */
  hostLink?: string;
  ports: PortRule[];
  /** Egress Deny: only DNS to these resolvers leaves the sandbox. undefined means egress Allow. */
  denyEgressExcept?: string[];
  /** The same for IPv6 resolvers (dual-stack; with egress Deny, IPv6 is denied too). */
  denyEgressExcept6?: string[];
}

/** The comment every rule of a sandbox carries; the part after the id says what the rule is. */
export const sandboxComment = (id: SandboxId, what: string) => `sandpit:${id} ${what}`;
const portKey = (p: PortRule) => `${p.hostIP ?? '*'}:${p.protocol.toLowerCase()}/${p.hostPort}`;
/** nftables keeps at most 128 bytes of comment; the owner's name is cut to fit (it is only for people). */
const MAX_COMMENT = 127;
const portComment = (id: SandboxId, p: PortRule, owner: string | undefined) => {
  const base = sandboxComment(id, `port ${portKey(p)}`);
  const who = (owner ?? '').replace(/[^a-zA-Z0-9./_-]/g, '_').slice(0, MAX_COMMENT - base.length - ' for '.length);
  return who ? `${base} for ${who}` : base;
};
const q = (s: string) => `"${s}"`;

/** Comment on the rules we add to another table (iptables-nft's FORWARD), naming our bridge. */
export const compatComment = (bridge: string) => `sandpit bridge ${bridge}`;

/** Creates the table and (re)writes its node-level rules. Safe to run again: base chains are flushed first. */
export function nodeRulesScript(c: RuleConfig): string {
  const t = `inet ${c.table}`;
  const br = q(c.bridge);
  return [
    `add table ${t}`,
    `add chain ${t} hostports`,
    // Per-port anti-spoofing needs the bridge port, which only the bridge family sees: a same-named bridge table.
    `add table bridge ${c.table}`,
    `add chain bridge ${c.table} anti-spoof { type filter hook prerouting priority -300; policy accept; }`,
    `add chain ${t} sandbox-egress`,
    // route_localnet on the bridge lets 127.0.0.1 be DNATed to a sandbox; never let a sandbox send to the node's loopback (CVE-2020-8558).
    `add chain ${t} raw-prerouting { type filter hook prerouting priority raw; policy accept; }`,
    `flush chain ${t} raw-prerouting`,
    `add rule ${t} raw-prerouting iifname ${br} ip daddr 127.0.0.0/8 drop comment "sandpit: node loopback is not for sandboxes"`,
    ...(c.subnet6
      ? [
          `add rule ${t} raw-prerouting iifname ${br} ip6 daddr ::1 drop comment "sandpit: node loopback is not for sandboxes"`,
        ]
      : []),
    `add chain ${t} nat-prerouting { type nat hook prerouting priority dstnat; policy accept; }`,
    `flush chain ${t} nat-prerouting`,
    `add rule ${t} nat-prerouting fib daddr type local jump hostports`,
    `add chain ${t} nat-output { type nat hook output priority -100; policy accept; }`,
    `flush chain ${t} nat-output`,
    `add rule ${t} nat-output fib daddr type local jump hostports`,
    `add chain ${t} nat-postrouting { type nat hook postrouting priority srcnat; policy accept; }`,
    `flush chain ${t} nat-postrouting`,
    `add rule ${t} nat-postrouting oifname ${br} ip saddr 127.0.0.0/8 masquerade comment "sandpit: node loopback to published port"`,
    `add rule ${t} nat-postrouting oifname ${br} ip saddr ${c.subnet} ct status dnat masquerade comment "sandpit: hairpin"`,
    `add rule ${t} nat-postrouting oifname != ${br} ip saddr ${c.subnet} ip daddr != 224.0.0.0/4 masquerade comment "sandpit: egress"`,
    ...(c.subnet6
      ? [
          `add rule ${t} nat-postrouting oifname ${br} ip6 saddr ${c.subnet6} ct status dnat masquerade comment "sandpit: hairpin"`,
          `add rule ${t} nat-postrouting oifname != ${br} ip6 saddr ${c.subnet6} ip6 daddr != ff00::/8 masquerade comment "sandpit: egress"`,
        ]
      : []),
    `add chain ${t} forward { type filter hook forward priority filter; policy accept; }`,
    `flush chain ${t} forward`,
    `add rule ${t} forward iifname ${br} jump sandbox-egress`,
    `add rule ${t} forward oifname ${br} ct state established,related accept`,
    `add rule ${t} forward oifname ${br} iifname ${br} accept comment "sandpit: between sandboxes"`,
    `add rule ${t} forward oifname ${br} ct status dnat accept comment "sandpit: published ports"`,
    `add rule ${t} forward oifname ${br} drop comment "sandpit: no direct access to sandbox addresses"`,
    `add chain ${t} input { type filter hook input priority filter; policy accept; }`,
    `flush chain ${t} input`,
    `add rule ${t} input iifname ${br} jump sandbox-egress`,
    '',
  ].join('\n');
}

/** Deletes the tables (node uninstall, tests); one script per table, as either may be gone already. */
export const deleteTableScripts = (c: RuleConfig) => [
  `delete table inet ${c.table}\n`,
  `delete table bridge ${c.table}\n`,
];

/**
 * Accept rules for our bridge in iptables' `ip filter FORWARD` chain, for hosts
 * where Docker or kube-proxy set its policy to DROP. An accept in our own table
 * cannot overrule a drop in another base chain on the same hook, so the accept
 * has to be in that chain. They are appended (after DOCKER-USER and friends, so
 * admin rules still come first), say nothing but the bridge name, and our own
 * `forward` chain keeps the policy: its drops are final.
 */
export function compatRulesScript(c: RuleConfig, family: 'ip' | 'ip6' = 'ip'): string {
  const comment = q(compatComment(c.bridge));
  return [
    `add rule ${family} filter FORWARD iifname ${q(c.bridge)} counter accept comment ${comment}`,
    `add rule ${family} filter FORWARD oifname ${q(c.bridge)} counter accept comment ${comment}`,
    '',
  ].join('\n');
}

/** True when the listing of a chain has our compat rules. */
export const hasCompatRules = (listing: NftObject[], c: RuleConfig) =>
  rulesOf(listing).filter((r) => r.comment === compatComment(c.bridge)).length >= 2;

/** Deletes our compat rules from the listing of `ip filter FORWARD`. */
export function deleteCompatScript(listing: NftObject[], c: RuleConfig, family: 'ip' | 'ip6' = 'ip'): string {
  return rulesOf(listing)
    .filter((r) => r.comment === compatComment(c.bridge))
    .map((r) => `delete rule ${family} filter FORWARD handle ${r.handle}\n`)
    .join('');
}

/** Rules for one sandbox: DNAT of its published ports, and egress Deny. */
export function sandboxRulesScript(c: RuleConfig, s: SandboxRules): string {
  const t = `inet ${c.table}`;
  const lines: string[] = [];
  for (const p of s.ports) {
    const proto = p.protocol.toLowerCase();
    const daddr = p.hostIP ? ` ip daddr ${p.hostIP}` : '';
    lines.push(
      `add rule ${t} hostports meta nfproto ipv4${daddr} ${proto} dport ${p.hostPort} dnat ip to ${s.address}:${p.containerPort} comment ${q(portComment(s.id, p, s.owner))}`,
    );
    // A port published on every address is published on the node's IPv6 addresses too (a hostIP is IPv4).
    if (s.address6 && !p.hostIP) {
      lines.push(
        `add rule ${t} hostports meta nfproto ipv6 ${proto} dport ${p.hostPort} dnat ip6 to [${s.address6}]:${p.containerPort} comment ${q(portComment(s.id, p, s.owner))}`,
      );
    }
  }
  if (s.hostLink) {
    // Policy matches sandboxes by source address, so a sandbox must not send from another one (it has CAP_NET_RAW).
    const comment = q(sandboxComment(s.id, 'anti-spoof'));
    lines.push(
      `add rule bridge ${c.table} anti-spoof iifname ${q(s.hostLink)} ether type ip ip saddr != ${s.address} drop comment ${comment}`,
    );
    lines.push(
      `add rule bridge ${c.table} anti-spoof iifname ${q(s.hostLink)} ether type arp arp saddr ip != ${s.address} drop comment ${comment}`,
    );
    if (s.address6) {
      // Link-local and the unspecified address are what neighbour discovery and MLD send from; neither routes off the bridge.
      lines.push(
        `add rule bridge ${c.table} anti-spoof iifname ${q(s.hostLink)} ether type ip6 ip6 saddr != { ${s.address6}, fe80::/10, :: } drop comment ${comment}`,
      );
    }
  }
  if (s.denyEgressExcept) {
    const comment = q(sandboxComment(s.id, 'egress deny'));
    lines.push(
      `add rule ${t} sandbox-egress ip saddr ${s.address} ct state established,related return comment ${comment}`,
    );
    if (s.denyEgressExcept.length > 0) {
      const resolvers = `{ ${s.denyEgressExcept.join(', ')} }`;
      lines.push(
        `add rule ${t} sandbox-egress ip saddr ${s.address} ip daddr ${resolvers} meta l4proto { tcp, udp } th dport 53 return comment ${comment}`,
      );
    }
    lines.push(
      `add rule ${t} sandbox-egress ip saddr ${s.address} reject with icmpx admin-prohibited comment ${comment}`,
    );
    if (s.address6) {
      lines.push(
        `add rule ${t} sandbox-egress ip6 saddr ${s.address6} ct state established,related return comment ${comment}`,
      );
      // Neighbour discovery is ICMPv6 (ARP is not IP, so IPv4 needs no such rule): without it the sandbox cannot find its gateway.
      lines.push(
        `add rule ${t} sandbox-egress ip6 saddr ${s.address6} icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } return comment ${comment}`,
      );
      if (s.denyEgressExcept6?.length) {
        lines.push(
          `add rule ${t} sandbox-egress ip6 saddr ${s.address6} ip6 daddr { ${s.denyEgressExcept6.join(', ')} } meta l4proto { tcp, udp } th dport 53 return comment ${comment}`,
        );
      }
      lines.push(
        `add rule ${t} sandbox-egress ip6 saddr ${s.address6} reject with icmpx admin-prohibited comment ${comment}`,
      );
    }
  }
  return lines.length ? `${lines.join('\n')}\n` : '';
}

export interface ListedRule {
  family: string;
  chain: string;
  handle: number;
  comment: string | undefined;
}

/** The rules of a `list table`/`list chain` JSON listing. */
export function rulesOf(listing: NftObject[]): ListedRule[] {
  return listing
    .filter((o) => o.rule)
    .map((o) => ({
      family: String(o.rule!.family ?? 'inet'),
      chain: String(o.rule!.chain),
      handle: Number(o.rule!.handle),
      comment: o.rule!.comment as string | undefined,
    }));
}

/** The sandbox a rule belongs to, from its comment. */
export function ruleOwner(comment: string | undefined): SandboxId | undefined {
  return /^sandpit:([0-9a-f]{12})(?: |$)/.exec(comment ?? '')?.[1];
}

/** Deletes every rule of the sandboxes `doomed` says yes to. */
export function deleteSandboxRulesScript(
  c: RuleConfig,
  rules: ListedRule[],
  doomed: (id: SandboxId) => boolean,
): string {
  return rules
    .filter((r) => {
      const owner = ruleOwner(r.comment);
      return owner !== undefined && doomed(owner);
    })
    .map((r) => `delete rule ${r.family} ${c.table} ${r.chain} handle ${r.handle}\n`)
    .join('');
}

/**
 * The rules a script adds, without handles (-1): what the provider remembers
 * after a setup, until a listing tells it the handles.
 */
export function plannedRules(script: string): ListedRule[] {
  const out: ListedRule[] = [];
  for (const line of script.split('\n')) {
    const m = /^add rule (\S+) \S+ (\S+) .* comment "([^"]*)"$/.exec(line.trim());
    if (m) out.push({ family: m[1]!, chain: m[2]!, handle: -1, comment: m[3] });
  }
  return out;
}

/** Sandboxes that have rules in the listing. */
export const sandboxesWithRules = (rules: ListedRule[]) =>
  new Set(rules.map((r) => ruleOwner(r.comment)).filter((id): id is SandboxId => id !== undefined));

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

/**
 * Published ports as the rules' comments name them ("... port <hostIP or *>:<tcp|udp>/<hostPort> for <name>"),
 * one entry per sandbox and port however many rules carry it: what an agent
 * restarted with sandboxes running must hold again.
 */
export function publishedByRules(
  rules: ListedRule[],
): { owner: SandboxId; protocol: 'TCP' | 'UDP'; hostPort: number; hostIP?: string; ownerName?: string }[] {
  const out = new Map<
    string,
    { owner: SandboxId; protocol: 'TCP' | 'UDP'; hostPort: number; hostIP?: string; ownerName?: string }
  >();
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
