import type { Logger } from '../../lib/log.js';
import { gatewayOf, ipToNumber, overlaps, type Subnet } from './cidr.js';
import { ip6ToBytes, pairedIp6, type Subnet6 } from './cidr6.js';
import { bridgeMac, HOST_VETH } from './config.js';
import { ensureForwardAccept, legacyForwardAccept, removeForwardAccept } from './iptables-accept.js';
import {
  addAddress,
  addAddress6,
  addressDump,
  createBridge,
  decodeLink,
  deleteLink,
  getLink,
  linkDump,
  routeDump,
  RT_TABLE_MAIN,
  setBridgeNetfilter,
  setLinkUp,
} from './netlink/links.js';
import { NetlinkError, type RtnlSocket } from './netlink/socket.js';
import { NftError, type Nft } from './nftables.js';
import { deleteTableScripts, nodeRulesScript, type RuleConfig } from './rules.js';
import { NetworkError, NetworkReason, networkStep, type NetworkReasonValue } from './status.js';
import { nodeSysctls, nodeSysctls6, writeSysctl } from './sysctl.js';

/** The node's bridge as sandboxes attach to it. */
export interface NodeBridge {
  bridgeIndex: number;
  mtu: number;
}

export interface NodeNetworkConfig {
  subnet: Subnet;
  subnet6: Subnet6 | undefined;
  /** The table, bridge and subnets the rules are written for. */
  rules: RuleConfig;
  /** MTU of the bridge and veths; by default that of the link holding the default route. */
  mtu: number | undefined;
}

const step = <T>(reason: NetworkReasonValue, name: string, fn: () => T): T => networkStep(reason, name, undefined, fn);

/**
 * The node side of the sandbox network: sysctls, the bridge with its gateway
 * address, our nftables tables with their node-level rules, and the accept
 * rules in iptables' FORWARD chain. Every step is idempotent, so GC runs them
 * again and rules flushed by a host firewall reload come back.
 */
export class NodeNetwork {
  readonly #rtnl: RtnlSocket;
  readonly #nft: Nft;
  readonly #c: NodeNetworkConfig;

  constructor(rtnl: RtnlSocket, nft: Nft, c: NodeNetworkConfig) {
    this.#rtnl = rtnl;
    this.#nft = nft;
    this.#c = c;
  }

  get #bridge(): string {
    return this.#c.rules.bridge;
  }

  /** Makes the bridge exist and be configured, after refusing a sandbox subnet the node already uses. */
  ensureBridge(): NodeBridge {
    const { subnet, subnet6 } = this.#c;
    const bridge = this.#bridge;
    const mtu = this.#c.mtu ?? step(NetworkReason.LinkSetupFailed, 'read default route', () => this.#defaultRouteMtu());
    this.#refuseSubnetInUse();
    step(NetworkReason.LinkSetupFailed, 'create bridge', () =>
      this.#rtnl.exec([createBridge(bridge, mtu, bridgeMac(bridge))]),
    );
    const bridgeIndex = step(
      NetworkReason.LinkSetupFailed,
      'find bridge',
      () => decodeLink(this.#rtnl.query(getLink(bridge))).index,
    );
    step(NetworkReason.LinkSetupFailed, 'configure bridge', () =>
      this.#rtnl.exec([
        addAddress(bridgeIndex, bridge, gatewayOf(subnet), subnet.prefixLength),
        setBridgeNetfilter(bridgeIndex, bridge),
        setLinkUp(bridgeIndex, bridge),
      ]),
    );
    for (const [key, value] of nodeSysctls(bridge)) writeSysctl(key, value);
    if (subnet6) {
      const gw6 = pairedIp6(subnet6, gatewayOf(subnet));
      for (const [key, value] of nodeSysctls6(bridge)) writeSysctl(key, value);
      step(NetworkReason.LinkSetupFailed, 'add bridge IPv6 address', () =>
        this.#rtnl.exec([addAddress6(bridgeIndex, bridge, ip6ToBytes(gw6), gw6, subnet6.prefixLength)]),
      );
    }
    return { bridgeIndex, mtu };
  }

  /** Writes the tables' node-level rules, and the accept rules where iptables-nft has a FORWARD chain. */
  ensureRules(log: Logger): void {
    step(NetworkReason.FirewallSetupFailed, 'install nftables node rules', () =>
      this.#nft.apply(nodeRulesScript(this.#c.rules)),
    );
    ensureForwardAccept(this.#nft, this.#c.rules, log);
  }

  /** The accept rules where iptables-legacy has a filter table (an exec, so at node set-up only). */
  ensureLegacyRules(log: Logger): void {
    legacyForwardAccept('ensure', this.#bridge, log);
  }

  bridgeExists(): boolean {
    try {
      this.#rtnl.query(getLink(this.#bridge));
      return true;
    } catch (err) {
      if (err instanceof NetlinkError && err.code === 'ENODEV') return false;
      throw err;
    }
  }

  /** Deletes the veths on the bridge, the bridge, our tables and the accept rules. */
  remove(log: Logger): void {
    const links = this.#rtnl.dump(linkDump.type, linkDump.body).map(linkDump.decode);
    const bridgeIndex = links.find((l) => l.name === this.#bridge)?.index;
    const ours = links.filter(
      (l) =>
        (HOST_VETH.test(l.name) && bridgeIndex !== undefined && l.master === bridgeIndex) || l.name === this.#bridge,
    );
    this.#rtnl.exec(ours.map((l) => deleteLink(l.name)));
    for (const script of deleteTableScripts(this.#c.rules)) {
      try {
        this.#nft.apply(script);
      } catch (err) {
        if (!(err instanceof NftError && err.notFound)) throw err;
      }
    }
    removeForwardAccept(this.#nft, this.#c.rules);
    legacyForwardAccept('remove', this.#bridge, log);
  }

  /** The source address of the default route, or the first address of its link. */
  defaultRouteSource(): string | undefined {
    const route = this.#defaultRoute();
    if (!route) return undefined;
    if (route.prefsrc) return route.prefsrc;
    return this.#rtnl
      .dump(addressDump.type, addressDump.body)
      .map(addressDump.decode)
      .find((a) => a && a.index === route.oif)?.address;
  }

  /**
   * Refuses a sandbox subnet that overlaps an address or a route on another
   * link of the node (say the LAN is 10.88.0.0/16): sandboxes would shadow real
   * hosts, and the failure would look like random unreachability.
   */
  #refuseSubnetInUse(): void {
    const { subnet } = this.#c;
    const bridgeIndex = (() => {
      try {
        return decodeLink(this.#rtnl.query(getLink(this.#bridge))).index;
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
            overlaps(subnet, { network: ipToNumber(a.address), prefixLength: a.prefixLength }),
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
            overlaps(subnet, { network: ipToNumber(r.dst), prefixLength: r.dstLength }),
        )?.dst;
    if (clash) {
      throw new NetworkError(NetworkReason.SubnetInUse, {
        step: 'check sandbox subnet',
        message: `sandbox subnet ${subnet.cidr} overlaps ${clash}, already used on the node`,
        hint: "set the agent's subnet (SANDPIT_SUBNET, chart value agent.network.subnet) to a range the node does not use",
      });
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
}
