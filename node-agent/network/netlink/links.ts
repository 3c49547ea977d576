import {
  AF_BRIDGE,
  AF_INET,
  AF_INET6,
  attrBytes,
  attrIPv4,
  attrNested,
  attrString,
  attrU32,
  attrU8,
  decodeAddress,
  decodeLink,
  decodeRoute,
  encodeAttrs,
  ifaddrmsg,
  ifinfomsg,
  IFA_ADDRESS,
  IFA_BROADCAST,
  IFA_LOCAL,
  IFF_UP,
  IFLA_ADDRESS,
  IFLA_BRPORT_MODE,
  IFLA_BR_NF_CALL_IPTABLES,
  IFLA_IFNAME,
  IFLA_INFO_DATA,
  IFLA_INFO_KIND,
  IFLA_LINKINFO,
  IFLA_MASTER,
  IFLA_MTU,
  IFLA_NET_NS_FD,
  IFLA_PROTINFO,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  RTA_GATEWAY,
  RTA_OIF,
  RTM_DELLINK,
  RTM_GETADDR,
  RTM_GETLINK,
  RTM_GETROUTE,
  RTM_NEWADDR,
  RTM_NEWLINK,
  RTM_NEWROUTE,
  RTM_SETLINK,
  rtmsg,
  RT_TABLE_MAIN,
  VETH_INFO_PEER,
} from './codec.js';
import type { Request } from './socket.js';

/*
 * Builders for the rtnetlink requests the network subsystem sends. Each returns
 * Request objects rather than sending them, so callers batch a whole step into
 * one datagram (RtnlSocket.exec) and tests can look at what would be sent.
 */

/** A bridge with a fixed MAC, so the bridge address does not follow its lowest port as ports come and go. */
export function createBridge(name: string, mtu: number, mac: Buffer): Request {
  return {
    what: `create bridge ${name}`,
    type: RTM_NEWLINK,
    flags: NLM_F_CREATE | NLM_F_EXCL,
    body: ifinfomsg({ flags: IFF_UP, change: IFF_UP }),
    attrs: [
      attrString(IFLA_IFNAME, name),
      attrU32(IFLA_MTU, mtu),
      { type: IFLA_ADDRESS, value: mac },
      attrNested(IFLA_LINKINFO, [attrString(IFLA_INFO_KIND, 'bridge')]),
    ],
    tolerate: ['EEXIST'],
  };
}

/**
 * A veth pair, up, with the host end enslaved to the bridge and the peer born
 * directly inside the namespace open as `netnsFd` (moving a link between
 * namespaces afterwards costs an RCU barrier per move). The peer comes up
 * from inside its namespace (setLinkUp), after it has its address.
 */
export function createVeth(o: {
  hostName: string;
  peerName: string;
  netnsFd: number;
  mtu: number;
  bridgeIndex: number;
}): Request {
  const peer = Buffer.concat([
    // Not up yet: the peer is registered before its partner exists, and opening a veth without its partner fails (ENOTCONN).
    ifinfomsg({}),
    // The peer's attributes follow its ifinfomsg inside VETH_INFO_PEER.
    encodeAttrs([attrString(IFLA_IFNAME, o.peerName), attrU32(IFLA_MTU, o.mtu), attrU32(IFLA_NET_NS_FD, o.netnsFd)]),
  ]);
  return {
    what: `create veth ${o.hostName}`,
    type: RTM_NEWLINK,
    flags: NLM_F_CREATE | NLM_F_EXCL,
    body: ifinfomsg({ flags: IFF_UP, change: IFF_UP }),
    attrs: [
      attrString(IFLA_IFNAME, o.hostName),
      attrU32(IFLA_MTU, o.mtu),
      attrU32(IFLA_MASTER, o.bridgeIndex),
      attrNested(IFLA_LINKINFO, [
        attrString(IFLA_INFO_KIND, 'veth'),
        attrNested(IFLA_INFO_DATA, [{ type: VETH_INFO_PEER, value: peer }]),
      ]),
    ],
  };
}

/**
 * Sends this bridge's bridged (sandbox↔sandbox) traffic through the IPv4
 * netfilter hooks even when the global bridge-nf-call-iptables sysctl is off,
 * so per-sandbox policy (egress Deny) applies between sandboxes too. Needs
 * br_netfilter in the kernel; without it the flag is accepted and inert.
 */
export function setBridgeNetfilter(index: number, name: string): Request {
  return {
    what: `enable netfilter on bridge ${name}`,
    type: RTM_NEWLINK,
    body: ifinfomsg({ index }),
    attrs: [
      attrNested(IFLA_LINKINFO, [
        attrString(IFLA_INFO_KIND, 'bridge'),
        attrNested(IFLA_INFO_DATA, [attrU8(IFLA_BR_NF_CALL_IPTABLES, 1)]),
      ]),
    ],
  };
}

/** Hairpin mode on a bridge port: lets a sandbox reach itself through the node's published port. */
export function setHairpin(index: number, name: string): Request {
  return {
    what: `set hairpin on ${name}`,
    type: RTM_SETLINK,
    body: ifinfomsg({ family: AF_BRIDGE, index }),
    attrs: [attrNested(IFLA_PROTINFO, [attrU8(IFLA_BRPORT_MODE, 1)])],
  };
}

export function setLinkUp(index: number, name: string): Request {
  return { what: `set ${name} up`, type: RTM_NEWLINK, body: ifinfomsg({ index, flags: IFF_UP, change: IFF_UP }) };
}

/** Deletes a link by name; a link already gone is success. */
export function deleteLink(name: string): Request {
  return {
    what: `delete link ${name}`,
    type: RTM_DELLINK,
    body: ifinfomsg({}),
    attrs: [attrString(IFLA_IFNAME, name)],
    tolerate: ['ENODEV'],
  };
}

export function broadcastOf(ip: string, prefixLength: number): string {
  const n = ip.split('.').reduce((a, o) => (a << 8) | Number(o), 0) >>> 0;
  const mask = prefixLength === 0 ? 0 : (~0 << (32 - prefixLength)) >>> 0;
  const b = (n | ~mask) >>> 0;
  return [b >>> 24, (b >>> 16) & 255, (b >>> 8) & 255, b & 255].join('.');
}

/** An IPv4 address on a link (replacing an identical one, so a repeat is harmless). */
export function addAddress(index: number, name: string, ip: string, prefixLength: number): Request {
  return {
    what: `add address ${ip}/${prefixLength} to ${name}`,
    type: RTM_NEWADDR,
    flags: NLM_F_CREATE | NLM_F_REPLACE,
    body: ifaddrmsg({ prefixLength, index }),
    attrs: [attrIPv4(IFA_LOCAL, ip), attrIPv4(IFA_ADDRESS, ip), attrIPv4(IFA_BROADCAST, broadcastOf(ip, prefixLength))],
  };
}

/** The default route through `gateway` out of link `index`. */
/** IFA_F_NODAD: the address is usable at once (the bridge is ours; no one else can hold it). */
const IFA_F_NODAD = 0x02;

/** An IPv6 address (16 bytes) on a link, without duplicate address detection. */
export function addAddress6(index: number, name: string, ip: Buffer, text: string, prefixLength: number): Request {
  return {
    what: `add address ${text}/${prefixLength} to ${name}`,
    type: RTM_NEWADDR,
    flags: NLM_F_CREATE | NLM_F_REPLACE,
    body: ifaddrmsg({ prefixLength, index, family: AF_INET6, flags: IFA_F_NODAD }),
    attrs: [attrBytes(IFA_LOCAL, ip), attrBytes(IFA_ADDRESS, ip)],
  };
}

/** The IPv6 default route via the bridge's address. */
export function addDefaultRoute6(index: number, gateway: Buffer, text: string): Request {
  return {
    what: `add IPv6 default route via ${text}`,
    type: RTM_NEWROUTE,
    flags: NLM_F_CREATE | NLM_F_REPLACE,
    body: rtmsg({ dstLength: 0, family: AF_INET6 }),
    attrs: [attrBytes(RTA_GATEWAY, gateway), attrU32(RTA_OIF, index)],
  };
}

export function addDefaultRoute(index: number, gateway: string): Request {
  return {
    what: `add default route via ${gateway}`,
    type: RTM_NEWROUTE,
    flags: NLM_F_CREATE | NLM_F_REPLACE,
    body: rtmsg({ dstLength: 0 }),
    attrs: [attrIPv4(RTA_GATEWAY, gateway), attrU32(RTA_OIF, index)],
  };
}

/** Reads one link by name (RtnlSocket.query, then decodeLink). */
export function getLink(name: string): Request {
  return { what: `find link ${name}`, type: RTM_GETLINK, body: ifinfomsg({}), attrs: [attrString(IFLA_IFNAME, name)] };
}

/** Requests to read state back; the caller runs them with RtnlSocket.dump. */
export const linkDump = { type: RTM_GETLINK, body: ifinfomsg({}), decode: decodeLink };
export const routeDump = { type: RTM_GETROUTE, body: rtmsg({ dstLength: 0 }), decode: decodeRoute };
export const addressDump = {
  type: RTM_GETADDR,
  body: Buffer.from([AF_INET, 0, 0, 0, 0, 0, 0, 0]),
  decode: decodeAddress,
};
export { RT_TABLE_MAIN, decodeLink };
