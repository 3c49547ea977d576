import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Logger } from '../../lib/log.js';
import { NftError, type Nft, type NftObject } from './nftables.js';
import { rulesOf } from './rule-index.js';
import type { RuleConfig } from './rules.js';

/*
 * Hosts with iptables' `filter FORWARD` chain (Docker, kube-proxy) may drop
 * forwarded traffic there, and an accept in our own table cannot overrule a
 * drop in another base chain on the same hook. So node set-up appends two
 * accept rules for the bridge to that chain: through nftables where iptables-nft
 * keeps it, through the iptables-legacy binary where x_tables does.
 */

const q = (s: string) => `"${s}"`;

/** Comment on the accept rules we add to iptables' FORWARD chain, naming our bridge. */
export const compatComment = (bridge: string) => `sandpit bridge ${bridge}`;

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

/** iptables' (or ip6tables') FORWARD chain as iptables-nft keeps it, or undefined when the host has none. */
function listForward(nft: Nft, family: 'ip' | 'ip6'): NftObject[] | undefined {
  try {
    return nft.list(`list chain ${family} filter FORWARD`);
  } catch (err) {
    if (err instanceof NftError && err.notFound) return undefined;
    throw err;
  }
}

/** Adds the accept rules to each iptables-nft FORWARD chain (ip, and ip6 on a dual-stack node) that lacks them. */
export function ensureForwardAccept(nft: Nft, c: RuleConfig, log: Logger): void {
  for (const family of c.subnet6 ? (['ip', 'ip6'] as const) : (['ip'] as const)) {
    const forward = listForward(nft, family);
    if (!forward || hasCompatRules(forward, c)) continue;
    nft.apply(compatRulesScript(c, family));
    log.info(
      { bridge: c.bridge, family },
      "added accept rules for the bridge to iptables' FORWARD chain (its policy or rules may drop forwarded traffic)",
    );
  }
}

/** Deletes the accept rules from both families' chains, even on an IPv4-only node: a dual-stack agent may have added them to the same bridge before. */
export function removeForwardAccept(nft: Nft, c: RuleConfig): void {
  for (const family of ['ip', 'ip6'] as const) {
    const forward = listForward(nft, family);
    const script = forward && deleteCompatScript(forward, c, family);
    if (script) nft.apply(script);
  }
}

/**
 * The same accept rules for hosts still on iptables-legacy (x_tables), whose
 * FORWARD chain nftables cannot see. Only when x_tables has a filter table in
 * this namespace; through the iptables-legacy binary, at node set-up only.
 */
export function legacyForwardAccept(action: 'ensure' | 'remove', bridge: string, log: Logger): void {
  let tables: string;
  try {
    tables = readFileSync('/proc/thread-self/net/ip_tables_names', 'utf8');
  } catch {
    return;
  }
  if (!tables.split('\n').includes('filter')) return;
  for (const dir of ['-i', '-o']) {
    const rule = ['FORWARD', dir, bridge, '-m', 'comment', '--comment', compatComment(bridge), '-j', 'ACCEPT'];
    const run = (op: string) => execFileSync('iptables-legacy', ['-w', op, ...rule], { stdio: 'ignore' });
    try {
      run('-C');
      if (action === 'remove') run('-D');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        log.warn(
          'iptables-legacy has a filter table but its binary is missing: forwarded sandbox traffic may be dropped by its FORWARD chain (install the iptables package)',
        );
        return;
      }
      if (action === 'ensure') {
        run('-A');
        if (dir === '-i') log.info({ bridge }, "added accept rules for the bridge to iptables-legacy's FORWARD chain");
      }
    }
  }
}
