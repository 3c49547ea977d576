import { execFileSync } from 'node:child_process';
import { closeSync, readFileSync } from 'node:fs';
import type { Logger } from '../../lib/log.js';
import type { NetworkProvider, NetworkRequest, NetworkResult, SandboxId, SandboxRef } from '../contracts.js';
import { describeSandbox } from '../contracts.js';
import { gatewayOf, ipToNumber, isIPv4, overlaps, parseSubnet, type Subnet } from './cidr.js';
import { ip6ToBytes, isIPv6, pairedIp6, parseSubnet6, type Subnet6 } from './cidr6.js';
import {
  bridgeMac,
  DEFAULT_SUBNET,
  defaults,
  HOST_VETH,
  hostVethName,
  LINK_NAME,
  SANDBOX_IFNAME,
  TABLE_NAME,
  type BridgeNetworkOptions,
} from './config.js';
import { readNodeResolvConf, renderHosts, renderResolvConf } from './dns.js';
import { allocateAddress, reclaimAddresses, releaseAddress } from './ipam.js';
import { LeaseStore } from './ipam-store.js';
import { LinkReaper } from './link-reaper.js';
import { hostListeners, shadowedListeners, socketHolder } from './listeners.js';
import { forgetUdpFlows } from './netlink/conntrack.js';
import { NETLINK_SOCK_DIAG } from './netlink/sockdiag.js';
import { PortHolders } from './port-holders.js';
import {
  addAddress,
  addAddress6,
  addDefaultRoute,
  addDefaultRoute6,
  addressDump,
  createBridge,
  createVeth,
  decodeLink,
  deleteLink,
  getLink,
  linkDump,
  routeDump,
  RT_TABLE_MAIN,
  setBridgeNetfilter,
  setHairpin,
  setLinkUp,
} from './netlink/links.js';
import { NetlinkError, RtnlSocket } from './netlink/socket.js';
import { inNetns, openNetns } from './netns.js';
import { NftError, openNftables, type Nft, type NftObject } from './nftables.js';
import {
  compatComment,
  compatRulesScript,
  deleteCompatScript,
  deleteSandboxRulesScript,
  deleteTableScripts,
  plannedRules,
  hasCompatRules,
  hostPortConflicts,
  nodeRulesScript,
  publishedByRules,
  ruleOwner,
  rulesOf,
  sandboxesWithRules,
  sandboxRulesScript,
  type ListedRule,
  type PortRule,
  type RuleConfig,
  type SandboxRules,
} from './rules.js';
import { NetworkError, NetworkReason, type NetworkReasonValue } from './status.js';
import { nodeSysctls, nodeSysctls6, sandboxSysctls, sandboxSysctls6, writeSysctl } from './sysctl.js';

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
  /** sock_diag, to see programs of the node listening on a hostPort. */
  readonly #diag = new RtnlSocket(NETLINK_SOCK_DIAG);
  readonly #reaper = new LinkReaper();
  /** Sockets bound to the published hostPorts, so no program of the node can bind them later. */
  readonly #holders = new PortHolders();
  readonly #nft: Nft;
  readonly #leases: LeaseStore;
  readonly #rules: RuleConfig;
  #node: { bridgeIndex: number; mtu: number; hostIP: string } | undefined;
  /**
   * Per-sandbox rules, read from the table once and then kept in memory.
   * Listing the table (or asking nft to echo handles) costs ~30-70 µs per rule
   * in the table, too slow for every setup on a busy node, so setup only adds
   * rules and records them without handles (-1); the first delete that needs a
   * handle lists the table once and learns the handles of every sandbox.
   * Rebuilt on every GC, and whenever nft refuses a delete as stale.
   */
  #index: Map<SandboxId, ListedRule[]> | undefined;

  constructor(opts: BridgeNetworkOptions = {}) {
    this.#opts = opts;
    this.subnet = parseSubnet(opts.subnet ?? DEFAULT_SUBNET);
    this.subnet6 = opts.subnet6 ? parseSubnet6(opts.subnet6) : undefined;
    this.bridge = opts.bridge ?? defaults.bridge;
    this.table = opts.table ?? defaults.table;
    if (!LINK_NAME.test(this.bridge)) throw new Error(`bridge name ${this.bridge} is not a valid interface name`);
    if (!TABLE_NAME.test(this.table)) throw new Error(`nftables table name ${this.table} is not valid`);
    this.#nft = openNftables(opts.nftBackend);
    this.#leases = new LeaseStore(opts.stateDir ?? defaults.stateDir, this.subnet);
    this.#rules = {
      table: this.table,
      bridge: this.bridge,
      subnet: this.subnet.cidr,
      ...(this.subnet6 ? { subnet6: this.subnet6.cidr } : {}),
    };
  }

  /** Which nftables door is in use (libnftables in-process, or the nft binary). */
  get nftBackend(): 'libnftables' | 'nft' {
    return this.#nft.backend;
  }

  /**
   * Makes the node side exist: sysctls, the bridge with its gateway address, the
   * table and its node-level rules, and the accept rules in iptables' FORWARD
   * chain when one exists. Idempotent; GC runs it again so rules flushed by a
   * host firewall reload come back.
   */
  ensureNode(log: Logger): { bridgeIndex: number; mtu: number; hostIP: string } {
    const step = <T>(reason: NetworkReasonValue, name: string, fn: () => T): T => wrap(reason, name, undefined, fn);
    const mtu =
      this.#opts.mtu ?? step(NetworkReason.LinkSetupFailed, 'read default route', () => this.#defaultRouteMtu());
    this.#refuseSubnetInUse();
    step(NetworkReason.LinkSetupFailed, 'create bridge', () =>
      this.#rtnl.exec([createBridge(this.bridge, mtu, bridgeMac(this.bridge))]),
    );
    const bridgeIndex = step(
      NetworkReason.LinkSetupFailed,
      'find bridge',
      () => decodeLink(this.#rtnl.query(getLink(this.bridge))).index,
    );
    step(NetworkReason.LinkSetupFailed, 'configure bridge', () =>
      this.#rtnl.exec([
        addAddress(bridgeIndex, this.bridge, gatewayOf(this.subnet), this.subnet.prefixLength),
        setBridgeNetfilter(bridgeIndex, this.bridge),
        setLinkUp(bridgeIndex, this.bridge),
      ]),
    );
    for (const [key, value] of nodeSysctls(this.bridge)) writeSysctl(key, value);
    if (this.subnet6) {
      const s6 = this.subnet6;
      const gw6 = pairedIp6(s6, gatewayOf(this.subnet));
      for (const [key, value] of nodeSysctls6(this.bridge)) writeSysctl(key, value);
      step(NetworkReason.LinkSetupFailed, 'add bridge IPv6 address', () =>
        this.#rtnl.exec([addAddress6(bridgeIndex, this.bridge, ip6ToBytes(gw6), gw6, s6.prefixLength)]),
      );
    }
    step(NetworkReason.FirewallSetupFailed, 'install nftables node rules', () =>
      this.#nft.apply(nodeRulesScript(this.#rules)),
    );
    this.#ensureCompatRules(log);
    this.#holdPublishedAgain(log);
    this.#legacyCompat('ensure', log);
    this.#node = undefined;
    const hostIP = this.nodeIP();
    this.#node = { bridgeIndex, mtu, hostIP };
    return this.#node;
  }

  /** The node address reported as a sandbox's hostIP (without making the bridge): --host-ip, else the default route's source, else the bridge address. */
  nodeIP(): string {
    return this.#node?.hostIP ?? this.#opts.hostIP ?? this.#defaultRouteSource() ?? gatewayOf(this.subnet);
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
      inNetns(req.netnsPath, who, () => {
        const rt = new RtnlSocket();
        try {
          wrap(NetworkReason.LinkSetupFailed, 'set loopback up', who, () => rt.exec([setLinkUp(1, 'lo')]));
        } finally {
          rt.close();
        }
      });
      return {
        hostIP: (this.#node ?? this.ensureNode(log)).hostIP,
        resolvConf: resolv.text,
        hosts: renderHosts(req.hostname, undefined),
      };
    }

    const node = this.#node ?? this.ensureNode(log);
    const ports = validatePorts(network.ports ?? [], who);
    const denyEgressExcept = network.egress === 'Deny' ? resolv.nameservers.filter(isIPv4) : undefined;
    const denyEgressExcept6 = network.egress === 'Deny' ? resolv.nameservers.filter(isIPv6) : undefined;
    // Refused before anything is taken from the node: a clash leaves nothing half-installed.
    this.#refuseTakenPorts(id, ports, who);
    // Bound now, the ports are ours: a program racing the check above gets HostPortInUse here.
    this.#holders.hold(id, ports, who, this.subnet6 !== undefined);
    let address: string;
    try {
      address = this.#allocate(id, who);
    } catch (err) {
      this.#holders.release(id);
      throw err;
    }
    const address6 = this.subnet6 ? pairedIp6(this.subnet6, address) : undefined;
    try {
      this.#createLinks(req, address, address6, node, who);
      this.#installRules(
        {
          id,
          owner: describeSandbox(req.sandbox),
          address,
          address6,
          hostLink: hostVethName(id),
          ports,
          denyEgressExcept,
          denyEgressExcept6,
        },
        who,
      );
      wrap(NetworkReason.FirewallSetupFailed, 'forget stale UDP flows', who, () =>
        forgetUdpFlows(ports.filter((p) => p.protocol === 'UDP').map((p) => p.hostPort)),
      );
    } catch (err) {
      this.teardownSync(req.sandbox, log);
      throw err;
    }
    log.debug({ sandbox: who, address, ports: ports.length, egress: network.egress }, 'sandbox network ready');
    const publishedPorts = ports.map((p) => ({
      ...(p.name ? { name: p.name } : {}),
      containerPort: p.containerPort,
      hostPort: p.hostPort,
      protocol: p.protocol,
      hostIP: p.hostIP ?? '0.0.0.0',
    }));
    return {
      sandboxIP: address,
      ...(address6 ? { sandboxIPs: [address, address6] } : {}),
      hostIP: node.hostIP,
      ...(publishedPorts.length ? { publishedPorts } : {}),
      resolvConf: resolv.text,
      hosts: renderHosts(req.hostname, address, address6),
    };
  }

  /**
   * Refuses ports another sandbox publishes (HostPortConflict) or a program of
   * the node listens on (HostPortInUse): the DNAT would take that program's
   * traffic without a word. A program that tries later finds the port held (PortHolders).
   */
  #refuseTakenPorts(id: SandboxId, ports: PortRule[], who: string): void {
    if (ports.length === 0) return;
    const conflicts = hostPortConflicts(this.#indexedRules(), id, ports);
    if (conflicts.length) {
      const c = conflicts[0]!;
      const holder = c.ownerName ? `sandbox ${c.ownerName} (id ${c.owner})` : `sandbox id ${c.owner}`;
      throw new NetworkError(NetworkReason.HostPortConflict, {
        step: 'publish ports',
        sandbox: who,
        message: `hostPort ${c.port.hostPort}/${c.port.protocol}${c.port.hostIP ? ` on ${c.port.hostIP}` : ''} is already published by ${holder} on this node`,
        hint: 'choose another hostPort, delete the other sandbox, or let the scheduler place this one on another node',
      });
    }
    const listeners = hostListeners(this.#diag, ports);
    for (const p of ports) {
      const l = shadowedListeners(listeners, p, this.subnet6 !== undefined).filter(
        (x) => !this.#holders.owns(x.inode),
      )[0];
      if (!l) continue;
      const holder = socketHolder(l.inode) ?? 'a process this agent cannot see';
      const at = l.address.includes(':') ? `[${l.address}]:${l.port}` : `${l.address}:${l.port}`;
      throw new NetworkError(NetworkReason.HostPortInUse, {
        step: 'publish ports',
        sandbox: who,
        message: `hostPort ${p.hostPort}/${p.protocol} is in use on the node by ${holder}, listening on ${at}; publishing it would take that program's traffic`,
        hint: 'choose another hostPort, or stop that program, or give the port a hostIP the program does not listen on',
      });
    }
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
    wrap(NetworkReason.LinkSetupFailed, 'delete veth', who, () =>
      this.#rtnl.exec([deleteLink(hostVethName(sandbox.id))]),
    );
    this.#forget(sandbox, who, log);
  }

  #forget(sandbox: SandboxRef, who: string, log: Logger): void {
    this.#deleteRules((id) => id === sandbox.id, who);
    this.#holders.release(sandbox.id);
    this.#leases.update((table) => {
      const next = releaseAddress(table, sandbox.id);
      return {
        table: Object.keys(next.leases).length === Object.keys(table.leases).length ? table : next,
        result: undefined,
      };
    });
    log.debug({ sandbox: who }, 'sandbox network removed');
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
    if (!this.#node && !this.#bridgeExists()) return;
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

  #bridgeExists(): boolean {
    try {
      this.#rtnl.query(getLink(this.bridge));
      return true;
    } catch (err) {
      if (err instanceof NetlinkError && err.code === 'ENODEV') return false;
      throw err;
    }
  }

  #leakedLinks(live: Set<SandboxId>, log: Logger): string[] {
    this.ensureNode(log);
    const liveSuffixes = new Set([...live].map((id) => id.slice(1)));
    return this.#rtnl
      .dump(linkDump.type, linkDump.body)
      .map(linkDump.decode)
      .filter((l) => {
        const m = HOST_VETH.exec(l.name);
        return m && l.master === this.#node!.bridgeIndex && !liveSuffixes.has(m[1]!);
      })
      .map((l) => l.name);
  }

  #collectRulesAndLeases(
    live: Set<SandboxId>,
    links: string[],
    log: Logger,
  ): { links: string[]; rules: SandboxId[]; leases: SandboxId[] } {
    this.#index = undefined;
    const rules = [...sandboxesWithRules(this.#indexedRules())].filter((id) => !live.has(id));
    if (rules.length) this.#deleteRules((id) => !live.has(id), undefined);
    for (const id of this.#holders.holding()) if (!live.has(id)) this.#holders.release(id);
    const leases = this.#leases.update((table) => {
      const { table: next, reclaimed } = reclaimAddresses(table, live);
      return { table: reclaimed.length ? next : table, result: reclaimed };
    });
    if (links.length || rules.length || leases.length)
      log.info({ links, rules, leases }, 'collected leaked sandbox network objects');
    return { links, rules, leases };
  }

  /** Removes everything of this provider from the node: veths on the bridge, the bridge, the table, the compat rules. Leases stay unless `dropLeases`. */
  removeNode(log: Logger, dropLeases = false): void {
    const links = this.#rtnl.dump(linkDump.type, linkDump.body).map(linkDump.decode);
    const bridgeIndex = links.find((l) => l.name === this.bridge)?.index;
    const ours = links.filter(
      (l) =>
        (HOST_VETH.test(l.name) && bridgeIndex !== undefined && l.master === bridgeIndex) || l.name === this.bridge,
    );
    this.#rtnl.exec(ours.map((l) => deleteLink(l.name)));
    for (const script of deleteTableScripts(this.#rules)) {
      try {
        this.#nft.apply(script);
      } catch (err) {
        if (!(err instanceof NftError && err.notFound)) throw err;
      }
    }
    // ip6 too even on an IPv4-only provider: a dual-stack one may have added them to the same bridge before.
    for (const family of ['ip', 'ip6'] as const) {
      const forward = this.#listForward(family);
      const script = forward && deleteCompatScript(forward, this.#rules, family);
      if (script) this.#nft.apply(script);
    }
    this.#legacyCompat('remove', log);
    this.#holders.close();
    if (dropLeases)
      this.#leases.update((table) => ({ table: { ...table, last: undefined, leases: {} }, result: undefined }));
    this.#node = undefined;
    this.#index = undefined;
    log.info({ bridge: this.bridge, table: this.table }, 'sandbox network removed from the node');
  }

  /** Current leases (address → sandbox), for status and tests. */
  leases(): Record<string, SandboxId> {
    return this.#leases.read().leases;
  }

  close(): void {
    this.#holders.close();
    this.#rtnl.close();
    this.#diag.close();
    void this.#reaper.close();
  }

  /**
   * Binds again the hostPorts that the rules say are published: after an agent
   * restart the sandboxes still run and their DNAT still works, but the sockets
   * that kept the ports from programs of the node died with the old agent. A
   * port a program bound in between is reported; its traffic still goes to the
   * sandbox (the DNAT comes first), as it did before the program started.
   */
  #holdPublishedAgain(log: Logger): void {
    const bySandbox = new Map<
      SandboxId,
      { ports: { protocol: 'TCP' | 'UDP'; hostPort: number; hostIP?: string }[]; name?: string }
    >();
    for (const p of publishedByRules(this.#indexedRules())) {
      const entry = bySandbox.get(p.owner) ?? { ports: [], name: p.ownerName };
      entry.ports.push({ protocol: p.protocol, hostPort: p.hostPort, ...(p.hostIP ? { hostIP: p.hostIP } : {}) });
      bySandbox.set(p.owner, entry);
    }
    for (const [id, { ports, name }] of bySandbox) {
      try {
        this.#holders.hold(id, ports, name ?? id, this.subnet6 !== undefined);
      } catch (err) {
        log.warn(
          { err, sandbox: name ?? id, id, step: 'hold published ports again' },
          'a published hostPort was bound by a program of the node while the agent was down; the sandbox keeps its traffic',
        );
      }
    }
  }

  #allocate(id: SandboxId, who: string): string {
    const address = this.#leases.update((table) => {
      const got = allocateAddress(table, this.subnet, id);
      return got ? { table: got.table, result: got.address } : { table, result: undefined };
    });
    if (!address) {
      throw new NetworkError(NetworkReason.AddressPoolExhausted, {
        step: 'allocate address',
        sandbox: who,
        message: `every address of ${this.subnet.cidr} is leased`,
        hint: 'delete sandboxes, or give the agent a larger subnet (SANDPIT_SUBNET, chart value agent.network.subnet)',
      });
    }
    return address;
  }

  #createLinks(
    req: NetworkRequest,
    address: string,
    address6: string | undefined,
    node: { bridgeIndex: number; mtu: number },
    who: string,
  ): void {
    const hostName = hostVethName(req.sandbox.id);
    const fd = openNetns(req.netnsPath, who);
    try {
      const veth = createVeth({
        hostName,
        peerName: SANDBOX_IFNAME,
        netnsFd: fd,
        mtu: node.mtu,
        bridgeIndex: node.bridgeIndex,
      });
      wrap(NetworkReason.LinkSetupFailed, 'create veth', who, () => {
        try {
          this.#rtnl.exec([veth]);
        } catch (err) {
          // A veth left by a crashed agent: start over rather than trust its half-done state.
          if (!(err instanceof NetlinkError && err.code === 'EEXIST')) throw err;
          this.#rtnl.exec([deleteLink(hostName), veth]);
        }
      });
    } finally {
      closeSync(fd);
    }
    const hostIndex = wrap(
      NetworkReason.LinkSetupFailed,
      'find host veth',
      who,
      () => decodeLink(this.#rtnl.query(getLink(hostName))).index,
    );
    wrap(NetworkReason.LinkSetupFailed, 'set hairpin', who, () => this.#rtnl.exec([setHairpin(hostIndex, hostName)]));
    inNetns(req.netnsPath, who, () => {
      const rt = new RtnlSocket();
      try {
        for (const [key, value] of sandboxSysctls) writeSysctl(key, value, who);
        if (address6) for (const [key, value] of sandboxSysctls6(SANDBOX_IFNAME)) writeSysctl(key, value, who);
        wrap(NetworkReason.LinkSetupFailed, 'configure sandbox interface', who, () => {
          const index = decodeLink(rt.query(getLink(SANDBOX_IFNAME))).index;
          const v6 =
            address6 && this.subnet6
              ? { gw: pairedIp6(this.subnet6, gatewayOf(this.subnet)), len: this.subnet6.prefixLength }
              : undefined;
          rt.exec([
            setLinkUp(1, 'lo'),
            addAddress(index, SANDBOX_IFNAME, address, this.subnet.prefixLength),
            setLinkUp(index, SANDBOX_IFNAME),
            addDefaultRoute(index, gatewayOf(this.subnet)),
            ...(v6 && address6
              ? [
                  addAddress6(index, SANDBOX_IFNAME, ip6ToBytes(address6), address6, v6.len),
                  addDefaultRoute6(index, ip6ToBytes(v6.gw), v6.gw),
                ]
              : []),
          ]);
        });
      } finally {
        rt.close();
      }
    });
  }

  #installRules(rules: SandboxRules, who: string): void {
    const { id } = rules;
    const script = sandboxRulesScript(this.#rules, rules);
    // Rules of an earlier setup of the same sandbox go in the same transaction, so a repeat never duplicates.
    const apply = () => {
      const stale = deleteSandboxRulesScript(
        this.#rules,
        this.#rulesWithHandles((owner) => owner === id),
        () => true,
      );
      if (!stale && !script) return;
      this.#nft.apply(stale + script);
      this.#ruleIndex().set(id, plannedRules(script));
    };
    wrap(NetworkReason.FirewallSetupFailed, 'install nftables sandbox rules', who, () =>
      this.#retryWithFreshIndex(apply),
    );
  }

  #deleteRules(doomed: (id: SandboxId) => boolean, who: string | undefined): void {
    const apply = () => {
      const script = deleteSandboxRulesScript(this.#rules, this.#rulesWithHandles(doomed), () => true);
      if (script) this.#nft.apply(script);
      const index = this.#ruleIndex();
      for (const i of [...index.keys()].filter(doomed)) index.delete(i);
    };
    wrap(NetworkReason.FirewallSetupFailed, 'delete nftables sandbox rules', who, () =>
      this.#retryWithFreshIndex(apply),
    );
  }

  /** The indexed rules of the sandboxes `which` picks, listing the table first if some handle is not known yet. */
  #rulesWithHandles(which: (id: SandboxId) => boolean): ListedRule[] {
    const pick = () => [...this.#ruleIndex()].filter(([id]) => which(id)).flatMap(([, rules]) => rules);
    if (pick().some((r) => r.handle < 0)) this.#index = undefined;
    return pick();
  }

  /** Runs `fn`; if nft refuses (a handle someone else deleted), re-reads the table and runs it once more. */
  #retryWithFreshIndex(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      if (!(err instanceof NftError)) throw err;
      this.#index = undefined;
      fn();
    }
  }

  #ruleIndex(): Map<SandboxId, ListedRule[]> {
    if (!this.#index) {
      this.#index = new Map();
      for (const r of rulesOf(this.#listTable())) {
        const owner = ruleOwner(r.comment);
        if (owner) this.#index.set(owner, [...(this.#index.get(owner) ?? []), r]);
      }
    }
    return this.#index;
  }

  #indexedRules(): ListedRule[] {
    return [...this.#ruleIndex().values()].flat();
  }

  /** Our tables (inet, and bridge for anti-spoofing) as one listing. */
  #listTable(): NftObject[] {
    return ['inet', 'bridge'].flatMap((family) => {
      try {
        return this.#nft.list(`list table ${family} ${this.table}`);
      } catch (err) {
        if (err instanceof NftError && err.notFound) return [];
        throw err;
      }
    });
  }

  /** iptables' (or ip6tables') FORWARD chain as iptables-nft keeps it, or undefined when the host has none. */
  #listForward(family: 'ip' | 'ip6' = 'ip'): NftObject[] | undefined {
    try {
      return this.#nft.list(`list chain ${family} filter FORWARD`);
    } catch (err) {
      if (err instanceof NftError && err.notFound) return undefined;
      throw err;
    }
  }

  #ensureCompatRules(log: Logger): void {
    for (const family of this.subnet6 ? (['ip', 'ip6'] as const) : (['ip'] as const)) {
      const forward = this.#listForward(family);
      if (!forward || hasCompatRules(forward, this.#rules)) continue;
      this.#nft.apply(compatRulesScript(this.#rules, family));
      log.info(
        { bridge: this.bridge, family },
        "added accept rules for the bridge to iptables' FORWARD chain (its policy or rules may drop forwarded traffic)",
      );
    }
  }

  /**
   * Refuses a sandbox subnet that overlaps an address or a route on another
   * link of the node (say the LAN is 10.88.0.0/16): sandboxes would shadow real
   * hosts, and the failure would look like random unreachability.
   */
  #refuseSubnetInUse(): void {
    const bridgeIndex = (() => {
      try {
        return decodeLink(this.#rtnl.query(getLink(this.bridge))).index;
      } catch {
        return -1;
      }
    })();
    const clash =
      this.#rtnl
        .dump(addressDump.type, addressDump.body)
        .map(addressDump.decode)
        .find(
          (a) =>
            a &&
            a.index !== bridgeIndex &&
            overlaps(this.subnet, { network: ipToNumber(a.address), prefixLength: a.prefixLength }),
        )?.address ??
      this.#rtnl
        .dump(routeDump.type, routeDump.body)
        .map(routeDump.decode)
        .find(
          (r) =>
            r.table === RT_TABLE_MAIN &&
            r.dstLength > 0 &&
            r.dst &&
            r.oif !== bridgeIndex &&
            overlaps(this.subnet, { network: ipToNumber(r.dst), prefixLength: r.dstLength }),
        )?.dst;
    if (clash) {
      throw new NetworkError(NetworkReason.SubnetInUse, {
        step: 'check sandbox subnet',
        message: `sandbox subnet ${this.subnet.cidr} overlaps ${clash}, already used on the node`,
        hint: "set the agent's subnet (SANDPIT_SUBNET, chart value agent.network.subnet) to a range the node does not use",
      });
    }
  }

  /**
   * The same accept rules for hosts still on iptables-legacy (x_tables), whose
   * FORWARD chain nftables cannot see. Only when x_tables has a filter table in
   * this namespace; through the iptables-legacy binary, at node set-up only.
   */
  #legacyCompat(action: 'ensure' | 'remove', log: Logger): void {
    let tables: string;
    try {
      tables = readFileSync('/proc/thread-self/net/ip_tables_names', 'utf8');
    } catch {
      return;
    }
    if (!tables.split('\n').includes('filter')) return;
    for (const dir of ['-i', '-o']) {
      const rule = [
        'FORWARD',
        dir,
        this.bridge,
        '-m',
        'comment',
        '--comment',
        compatComment(this.bridge),
        '-j',
        'ACCEPT',
      ];
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
          if (dir === '-i')
            log.info({ bridge: this.bridge }, "added accept rules for the bridge to iptables-legacy's FORWARD chain");
        }
      }
    }
  }

  #defaultRoute() {
    return this.#rtnl
      .dump(routeDump.type, routeDump.body)
      .map(routeDump.decode)
      .find((r) => r.dstLength === 0 && r.table === RT_TABLE_MAIN && r.oif > 0);
  }

  #defaultRouteMtu(): number {
    const route = this.#defaultRoute();
    const link =
      route &&
      this.#rtnl
        .dump(linkDump.type, linkDump.body)
        .map(linkDump.decode)
        .find((l) => l.index === route.oif);
    return link?.mtu || 1500;
  }

  #defaultRouteSource(): string | undefined {
    const route = this.#defaultRoute();
    if (!route) return undefined;
    if (route.prefsrc) return route.prefsrc;
    return this.#rtnl
      .dump(addressDump.type, addressDump.body)
      .map(addressDump.decode)
      .find((a) => a && a.index === route.oif)?.address;
  }
}

function validatePorts(ports: NonNullable<NetworkRequest['network']['ports']>, who: string): PortRule[] {
  const seen = new Set<string>();
  return ports.map((p) => {
    if (p.hostIP !== undefined && p.hostIP !== '' && p.hostIP !== '0.0.0.0' && !isIPv4(p.hostIP)) {
      throw new NetworkError(NetworkReason.InvalidNetworkSpec, {
        step: 'publish ports',
        sandbox: who,
        message: `hostIP ${p.hostIP} is not an IPv4 address`,
        hint: 'IPv6 hostIPs are not supported yet',
      });
    }
    const protocol = p.protocol ?? 'TCP';
    // The API server refuses these (list-map keys); standalone manifests do not pass through it.
    if (seen.has(`${protocol}/${p.hostPort}`)) {
      throw new NetworkError(NetworkReason.InvalidNetworkSpec, {
        step: 'publish ports',
        sandbox: who,
        message: `hostPort ${p.hostPort}/${protocol} is listed twice`,
        hint: 'publish each hostPort and protocol once',
      });
    }
    seen.add(`${protocol}/${p.hostPort}`);
    const hostIP = p.hostIP && p.hostIP !== '0.0.0.0' ? p.hostIP : undefined;
    return {
      ...(p.name ? { name: p.name } : {}),
      hostIP,
      hostPort: p.hostPort,
      containerPort: p.containerPort,
      protocol,
    };
  });
}

/** Runs one step and turns a kernel refusal into a NetworkError naming the step and the reason. */
function wrap<T>(reason: NetworkReasonValue, step: string, sandbox: string | undefined, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof NetworkError) throw err;
    const code = err instanceof NetlinkError ? err.code : undefined;
    throw new NetworkError(reason, { step, sandbox, message: (err as Error).message, code, cause: err });
  }
}
