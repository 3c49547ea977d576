import type { Logger } from '../../lib/log.js';
import type { NetworkProvider, NetworkRequest, NetworkResult, SandboxId, SandboxRef } from '../contracts.js';
import { describeSandbox } from '../contracts.js';
import { gatewayOf, isIPv4, parseSubnet, type Subnet } from './cidr.js';
import { isIPv6, pairedIp6, parseSubnet6, type Subnet6 } from './cidr6.js';
import { checkNames, DEFAULT_SUBNET, defaults, hostVethName, type BridgeNetworkOptions } from './config.js';
import { readNodeResolvConf, renderHosts, renderResolvConf } from './dns.js';
import { HostPorts } from './hostports/host-ports.js';
import { publishedPortStatus } from './hostports/published.js';
import { validatePorts } from './hostports/validate.js';
import { LeaseStore } from './ipam-store.js';
import { LinkReaper } from './link-reaper.js';
import { deleteLink } from './netlink/links.js';
import { RtnlSocket } from './netlink/socket.js';
import { openNftables, type Nft } from './nftables.js';
import { NodeNetwork } from './node.js';
import { RuleIndex, sandboxesWithRules } from './rule-index.js';
import { sandboxRulesScript, type RuleConfig, type SandboxRules } from './rules.js';
import { setLoopbackUp, SandboxLinks } from './sandbox-links.js';
import { NetworkError, NetworkReason, networkStep } from './status.js';

/**
 * The node's sandbox network: one bridge, a veth per sandbox, leases on disk,
 * and one nftables table. Construct it on the agent's main thread while that
 * thread is in the node's network namespace: its netlink and nftables sockets
 * are bound to the namespace they are opened in.
 *
 * Every kernel object is named from the SandboxId (host veth `spv<id[1:]>`,
 * rule comments `sandpit:<id> ...`), so teardown and GC need no stored state
 * beyond the lease table.
 */
export class BridgeNetworkProvider implements NetworkProvider {
  readonly subnet: Subnet;
  /** The IPv6 prefix on a dual-stack node. */
  readonly subnet6: Subnet6 | undefined;
  readonly bridge: string;
  readonly table: string;
  readonly #opts: BridgeNetworkOptions;
  readonly #rtnl = new RtnlSocket();
  readonly #reaper = new LinkReaper();
  readonly #hostPorts: HostPorts;
  readonly #nft: Nft;
  readonly #leases: LeaseStore;
  readonly #rules: RuleConfig;
  readonly #index: RuleIndex;
  readonly #nodeNet: NodeNetwork;
  readonly #links: SandboxLinks;
  #node: { bridgeIndex: number; mtu: number; hostIP: string } | undefined;

  constructor(opts: BridgeNetworkOptions = {}) {
    this.#opts = opts;
    this.subnet = parseSubnet(opts.subnet ?? DEFAULT_SUBNET);
    this.subnet6 = opts.subnet6 ? parseSubnet6(opts.subnet6) : undefined;
    this.bridge = opts.bridge ?? defaults.bridge;
    this.table = opts.table ?? defaults.table;
    this.#hostPorts = new HostPorts(this.subnet6 !== undefined);
    checkNames(this.bridge, this.table);
    this.#nft = openNftables(opts.nftBackend);
    this.#leases = new LeaseStore(opts.stateDir ?? defaults.stateDir, this.subnet);
    this.#rules = {
      table: this.table,
      bridge: this.bridge,
      subnet: this.subnet.cidr,
      ...(this.subnet6 ? { subnet6: this.subnet6.cidr } : {}),
    };
    this.#index = new RuleIndex(this.#nft, this.table);
    this.#nodeNet = new NodeNetwork(this.#rtnl, this.#nft, {
      subnet: this.subnet,
      subnet6: this.subnet6,
      rules: this.#rules,
      mtu: opts.mtu,
    });
    this.#links = new SandboxLinks(this.#rtnl, this.subnet, this.subnet6);
  }

  /** Which nftables door is in use (libnftables in-process, or the nft binary). */
  get nftBackend(): 'libnftables' | 'nft' {
    return this.#nft.backend;
  }

  /**
   * Makes the node side exist (node.ts), and holds again the ports the rules
   * say are published. Idempotent; GC runs it again so rules flushed by a host
   * firewall reload come back.
   */
  ensureNode(log: Logger): { bridgeIndex: number; mtu: number; hostIP: string } {
    const bridge = this.#nodeNet.ensureBridge();
    this.#nodeNet.ensureRules(log);
    this.#hostPorts.holdAgain(this.#index.rules(), log);
    this.#nodeNet.ensureLegacyRules(log);
    this.#node = undefined;
    const hostIP = this.nodeIP();
    this.#node = { ...bridge, hostIP };
    return this.#node;
  }

  /** The node address reported as a sandbox's hostIP (without making the bridge): --host-ip, else the default route's source, else the bridge address. */
  nodeIP(): string {
    return this.#node?.hostIP ?? this.#opts.hostIP ?? this.#nodeNet.defaultRouteSource() ?? gatewayOf(this.subnet);
  }

  async setup(req: NetworkRequest, log: Logger): Promise<NetworkResult> {
    await Promise.resolve();
    return this.setupSync(req, log);
  }

  /** setup() without the promise: the work is synchronous syscalls (benchmarks call this directly). */
  setupSync(req: NetworkRequest, log: Logger): NetworkResult {
    const who = describeSandbox(req.sandbox);
    const id = req.sandbox.id;
    const network = req.network ?? { mode: 'Bridge', egress: 'Allow' };
    const dns = readNodeResolvConf(
      this.#opts.resolvConfPath ?? defaults.resolvConfPath,
      this.#opts.upstreamResolvConfPath ?? defaults.upstreamResolvConfPath,
    );
    const resolv = renderResolvConf({
      ...dns,
      spec: network.dns,
      fallback: this.#opts.fallbackNameservers ?? defaults.fallbackNameservers,
    });

    if (network.mode === 'None') {
      setLoopbackUp(req.netnsPath, who);
      const hostIP = (this.#node ?? this.ensureNode(log)).hostIP;
      return { hostIP, resolvConf: resolv.text, hosts: renderHosts(req.hostname, undefined) };
    }

    const node = this.#node ?? this.ensureNode(log);
    const ports = validatePorts(network.ports ?? [], who);
    this.#hostPorts.claim(id, ports, () => this.#index.rules(), who);
    let address: string;
    try {
      address = this.#leases.lease(id, who);
    } catch (err) {
      this.#hostPorts.release(id);
      throw err;
    }
    const address6 = this.subnet6 ? pairedIp6(this.subnet6, address) : undefined;
    const deny = network.egress === 'Deny';
    try {
      this.#links.create(req, address, address6, node, who);
      this.#installRules(
        {
          id,
          owner: who,
          address,
          address6,
          hostLink: hostVethName(id),
          ports,
          denyEgressExcept: deny ? resolv.nameservers.filter(isIPv4) : undefined,
          denyEgressExcept6: deny ? resolv.nameservers.filter(isIPv6) : undefined,
        },
        who,
      );
      this.#hostPorts.forgetStaleFlows(ports, who);
    } catch (err) {
      this.teardownSync(req.sandbox, log);
      throw err;
    }
    log.debug({ sandbox: who, address, ports: ports.length, egress: network.egress }, 'sandbox network ready');
    const publishedPorts = publishedPortStatus(ports);
    return {
      sandboxIP: address,
      ...(address6 ? { sandboxIPs: [address, address6] } : {}),
      hostIP: node.hostIP,
      ...(publishedPorts.length ? { publishedPorts } : {}),
      resolvConf: resolv.text,
      hosts: renderHosts(req.hostname, address, address6),
    };
  }

  /** Removes the sandbox's veth (its peer dies with it; deleted off the main thread), rules and lease; each part is skipped when already gone. */
  async teardown(sandbox: SandboxRef, log: Logger): Promise<void> {
    const who = describeSandbox(sandbox);
    await this.#reaper.delete([hostVethName(sandbox.id)]).catch((err: unknown) => {
      throw new NetworkError(NetworkReason.LinkSetupFailed, {
        step: 'delete veth',
        sandbox: who,
        message: (err as Error).message,
        cause: err,
      });
    });
    this.#forget(sandbox, who, log);
  }

  /** teardown() on the calling thread: blocks it for the kernel's veth unregistration (benchmarks and tests). */
  teardownSync(sandbox: SandboxRef, log: Logger): void {
    const who = describeSandbox(sandbox);
    this.#links.delete(sandbox.id, who);
    this.#forget(sandbox, who, log);
  }

  /**
   * Removes veths, rules and leases of sandboxes not in `live`, and re-ensures
   * the node rules. Everything is decided and the rules and leases removed in
   * one synchronous step, so a setup that starts meanwhile is never judged
   * against a stale `live`; only the veth deletions wait on the reaper thread
   * (which deletes in order, before any later teardown or setup of the same
   * name). A node where no bridge was ever made is left alone: there is
   * nothing to collect, and no reason to create the bridge for it.
   */
  async collectGarbage(live: Set<SandboxId>, log: Logger): Promise<void> {
    if (!this.#node && !this.#nodeNet.bridgeExists()) return;
    const links = this.#leakedLinks(live, log);
    this.#collectRulesAndLeases(live, links, log);
    await this.#reaper.delete(links);
  }

  /** collectGarbage() on the calling thread (tests): veths are deleted here too. Returns what was collected. */
  collectGarbageSync(live: Set<SandboxId>, log: Logger): { links: string[]; rules: SandboxId[]; leases: SandboxId[] } {
    const links = this.#leakedLinks(live, log);
    if (links.length) this.#rtnl.exec(links.map(deleteLink));
    return this.#collectRulesAndLeases(live, links, log);
  }

  /** Removes everything of this provider from the node: veths on the bridge, the bridge, the table, the compat rules. Leases stay unless `dropLeases`. */
  removeNode(log: Logger, dropLeases = false): void {
    this.#nodeNet.remove(log);
    this.#hostPorts.releaseAll();
    if (dropLeases) this.#leases.clear();
    this.#node = undefined;
    this.#index.invalidate();
    log.info({ bridge: this.bridge, table: this.table }, 'sandbox network removed from the node');
  }

  /** Current leases (address → sandbox), for status and tests. */
  leases(): Record<string, SandboxId> {
    return this.#leases.read().leases;
  }

  close(): void {
    this.#hostPorts.close();
    this.#rtnl.close();
    void this.#reaper.close();
  }

  /** Rules of an earlier setup of the same sandbox go in the same transaction, so a repeat never duplicates. */
  #installRules(rules: SandboxRules, who: string): void {
    const script = sandboxRulesScript(this.#rules, rules);
    networkStep(NetworkReason.FirewallSetupFailed, 'install nftables sandbox rules', who, () =>
      this.#index.install(rules.id, script),
    );
  }

  #deleteRules(doomed: (id: SandboxId) => boolean, who: string | undefined): void {
    networkStep(NetworkReason.FirewallSetupFailed, 'delete nftables sandbox rules', who, () =>
      this.#index.remove(doomed),
    );
  }

  #forget(sandbox: SandboxRef, who: string, log: Logger): void {
    this.#deleteRules((id) => id === sandbox.id, who);
    this.#hostPorts.release(sandbox.id);
    this.#leases.release(sandbox.id);
    log.debug({ sandbox: who }, 'sandbox network removed');
  }

  #leakedLinks(live: Set<SandboxId>, log: Logger): string[] {
    this.ensureNode(log);
    return this.#links.leaked(this.#node!.bridgeIndex, live);
  }

  #collectRulesAndLeases(
    live: Set<SandboxId>,
    links: string[],
    log: Logger,
  ): { links: string[]; rules: SandboxId[]; leases: SandboxId[] } {
    this.#index.invalidate();
    const rules = [...sandboxesWithRules(this.#index.rules())].filter((id) => !live.has(id));
    if (rules.length) this.#deleteRules((id) => !live.has(id), undefined);
    this.#hostPorts.releaseAllBut(live);
    const leases = this.#leases.reclaim(live);
    if (links.length || rules.length || leases.length)
      log.info({ links, rules, leases }, 'collected leaked sandbox network objects');
    return { links, rules, leases };
  }
}
