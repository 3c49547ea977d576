import type { SandboxId } from '../contracts.js';
import { portComment } from './hostports/published.js';
import type { PortRule } from './hostports/validate.js';
import { sandboxComment } from './rule-index.js';

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

const q = (s: string) => `"${s}"`;

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
