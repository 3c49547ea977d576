import { closeSync } from 'node:fs';
import type { NetworkRequest, SandboxId } from '../contracts.js';
import { gatewayOf, type Subnet } from './cidr.js';
import { ip6ToBytes, pairedIp6, type Subnet6 } from './cidr6.js';
import { HOST_VETH, hostVethName, SANDBOX_IFNAME } from './config.js';
import {
  addAddress,
  addAddress6,
  addDefaultRoute,
  addDefaultRoute6,
  createVeth,
  decodeLink,
  deleteLink,
  getLink,
  linkDump,
  setHairpin,
  setLinkUp,
} from './netlink/links.js';
import { NetlinkError, RtnlSocket } from './netlink/socket.js';
import { inNetns, openNetns } from './netns.js';
import type { NodeBridge } from './node.js';
import { NetworkReason, networkStep } from './status.js';
import { sandboxSysctls, sandboxSysctls6, writeSysctl } from './sysctl.js';

/** mode None: loopback up in the sandbox's namespace, nothing on the node. */
export function setLoopbackUp(netnsPath: string, who: string): void {
  inNetns(netnsPath, who, () => {
    const rt = new RtnlSocket();
    try {
      networkStep(NetworkReason.LinkSetupFailed, 'set loopback up', who, () => rt.exec([setLinkUp(1, 'lo')]));
    } finally {
      rt.close();
    }
  });
}

/**
 * A sandbox's links: its veth on the node's bridge (host end `spv<id[1:]>`,
 * peer `eth0` in the sandbox), and inside the sandbox its addresses, default
 * routes and sysctls. `rtnl` is a socket of the node's namespace.
 */
export class SandboxLinks {
  readonly #rtnl: RtnlSocket;
  readonly #subnet: Subnet;
  readonly #subnet6: Subnet6 | undefined;

  constructor(rtnl: RtnlSocket, subnet: Subnet, subnet6: Subnet6 | undefined) {
    this.#rtnl = rtnl;
    this.#subnet = subnet;
    this.#subnet6 = subnet6;
  }

  /**
   * One RTM_NEWLINK makes the veth with its peer born in the sandbox's
   * namespace (no namespace move); then hairpin on the bridge port, and with
   * the thread briefly in the sandbox's namespace, its sysctls and one datagram
   * for `lo`, the address, `eth0` and the default route.
   */
  create(req: NetworkRequest, address: string, address6: string | undefined, node: NodeBridge, who: string): void {
    const hostName = hostVethName(req.sandbox.id);
    this.#createVeth(req.netnsPath, hostName, node, who);
    const hostIndex = networkStep(
      NetworkReason.LinkSetupFailed,
      'find host veth',
      who,
      () => decodeLink(this.#rtnl.query(getLink(hostName))).index,
    );
    networkStep(NetworkReason.LinkSetupFailed, 'set hairpin', who, () =>
      this.#rtnl.exec([setHairpin(hostIndex, hostName)]),
    );
    inNetns(req.netnsPath, who, () => {
      const rt = new RtnlSocket();
      try {
        for (const [key, value] of sandboxSysctls) writeSysctl(key, value, who);
        if (address6) for (const [key, value] of sandboxSysctls6(SANDBOX_IFNAME)) writeSysctl(key, value, who);
        networkStep(NetworkReason.LinkSetupFailed, 'configure sandbox interface', who, () =>
          rt.exec(this.#interfaceRequests(decodeLink(rt.query(getLink(SANDBOX_IFNAME))).index, address, address6)),
        );
      } finally {
        rt.close();
      }
    });
  }

  /** Deletes the sandbox's veth on the calling thread (its peer dies with it); gone already is fine. */
  delete(id: SandboxId, who: string): void {
    networkStep(NetworkReason.LinkSetupFailed, 'delete veth', who, () =>
      this.#rtnl.exec([deleteLink(hostVethName(id))]),
    );
  }

  /** Host veths on the bridge whose sandbox is not in `live`. */
  leaked(bridgeIndex: number, live: Set<SandboxId>): string[] {
    const liveSuffixes = new Set([...live].map((id) => id.slice(1)));
    return this.#rtnl
      .dump(linkDump.type, linkDump.body)
      .map(linkDump.decode)
      .filter((l) => {
        const m = HOST_VETH.exec(l.name);
        return m && l.master === bridgeIndex && !liveSuffixes.has(m[1]!);
      })
      .map((l) => l.name);
  }

  #createVeth(netnsPath: string, hostName: string, node: NodeBridge, who: string): void {
    const fd = openNetns(netnsPath, who);
    try {
      const veth = createVeth({
        hostName,
        peerName: SANDBOX_IFNAME,
        netnsFd: fd,
        mtu: node.mtu,
        bridgeIndex: node.bridgeIndex,
      });
      networkStep(NetworkReason.LinkSetupFailed, 'create veth', who, () => {
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
  }

  /** `lo` up, the address, `eth0` up, the default route via the bridge (and the IPv6 ones on a dual-stack node). */
  #interfaceRequests(index: number, address: string, address6: string | undefined) {
    const gateway = gatewayOf(this.#subnet);
    const v6 =
      address6 && this.#subnet6
        ? { gw: pairedIp6(this.#subnet6, gateway), len: this.#subnet6.prefixLength }
        : undefined;
    return [
      setLinkUp(1, 'lo'),
      addAddress(index, SANDBOX_IFNAME, address, this.#subnet.prefixLength),
      setLinkUp(index, SANDBOX_IFNAME),
      addDefaultRoute(index, gateway),
      ...(v6 && address6
        ? [
            addAddress6(index, SANDBOX_IFNAME, ip6ToBytes(address6), address6, v6.len),
            addDefaultRoute6(index, ip6ToBytes(v6.gw), v6.gw),
          ]
        : []),
    ];
  }
}
