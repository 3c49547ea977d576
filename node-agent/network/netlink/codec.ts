/*
 * rtnetlink message encoding and decoding: pure functions over Buffers, so the
 * wire format can be unit-tested without a kernel. Layouts follow
 * <linux/netlink.h>, <linux/rtnetlink.h>, <linux/if_link.h> and
 * <linux/if_addr.h>; every length is padded to 4 bytes (NLMSG_ALIGN/RTA_ALIGN).
 */

export const NLMSG_HDRLEN = 16;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP = 0x300;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
export const NLA_F_NESTED = 0x8000;

export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_SETLINK = 19;
export const RTM_NEWADDR = 20;
export const RTM_GETADDR = 22;
export const RTM_NEWROUTE = 24;
export const RTM_GETROUTE = 26;

export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const AF_BRIDGE = 7;
export const IFF_UP = 0x1;

export const IFLA_ADDRESS = 1;
export const IFLA_IFNAME = 3;
export const IFLA_MTU = 4;
export const IFLA_MASTER = 10;
export const IFLA_PROTINFO = 12;
export const IFLA_LINKINFO = 18;
export const IFLA_NET_NS_FD = 28;
export const IFLA_INFO_KIND = 1;
export const IFLA_INFO_DATA = 2;
export const VETH_INFO_PEER = 1;
export const IFLA_BRPORT_MODE = 4;
export const IFLA_BR_NF_CALL_IPTABLES = 36;

export const IFA_ADDRESS = 1;
export const IFA_LOCAL = 2;
export const IFA_BROADCAST = 4;

export const RTA_DST = 1;
export const RTA_OIF = 4;
export const RTA_GATEWAY = 5;
export const RTA_PREFSRC = 7;
export const RTA_TABLE = 15;
export const RT_TABLE_MAIN = 254;
export const RTPROT_BOOT = 3;
export const RT_SCOPE_UNIVERSE = 0;
export const RTN_UNICAST = 1;

const align4 = (n: number) => (n + 3) & ~3;

/** One attribute: a type and a payload, possibly a list of nested attributes. */
export interface Attr {
  type: number;
  value: Buffer | Attr[];
}

export const attrU8 = (type: number, v: number): Attr => ({ type, value: Buffer.from([v]) });
export function attrU32(type: number, v: number): Attr {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return { type, value: b };
}
export const attrString = (type: number, s: string): Attr => ({ type, value: Buffer.from(`${s}\0`) });
export const attrNested = (type: number, children: Attr[]): Attr => ({ type: type | NLA_F_NESTED, value: children });
/** An IPv4 address in network byte order. */
export const attrIPv4 = (type: number, ip: string): Attr => ({ type, value: Buffer.from(ip.split('.').map(Number)) });
/** An address attribute holding 16 raw IPv6 bytes. */
export const attrBytes = (type: number, value: Buffer): Attr => ({ type, value });

/** Serialises attributes, padding each to 4 bytes. */
export function encodeAttrs(attrs: Attr[]): Buffer {
  const parts: Buffer[] = [];
  for (const a of attrs) {
    const payload = Array.isArray(a.value) ? encodeAttrs(a.value) : a.value;
    const head = Buffer.alloc(4);
    head.writeUInt16LE(4 + payload.length, 0);
    head.writeUInt16LE(a.type, 2);
    parts.push(head, payload, Buffer.alloc(align4(payload.length) - payload.length));
  }
  return Buffer.concat(parts);
}

/** Decodes one level of attributes into a map type → payload (nested flag stripped). */
export function decodeAttrs(buf: Buffer): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let off = 0;
  while (off + 4 <= buf.length) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > buf.length) break;
    out.set(buf.readUInt16LE(off + 2) & ~NLA_F_NESTED, buf.subarray(off + 4, off + len));
    off += align4(len);
  }
  return out;
}

/** struct ifinfomsg: family, type, index, flags, change. */
export function ifinfomsg(o: { family?: number; index?: number; flags?: number; change?: number }): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(o.family ?? AF_UNSPEC, 0);
  b.writeInt32LE(o.index ?? 0, 4);
  b.writeUInt32LE(o.flags ?? 0, 8);
  b.writeUInt32LE(o.change ?? 0, 12);
  return b;
}

/** struct ifaddrmsg for an IPv4 address. */
export function ifaddrmsg(o: {
  prefixLength: number;
  index: number;
  scope?: number;
  family?: number;
  flags?: number;
}): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(o.family ?? AF_INET, 0);
  b.writeUInt8(o.prefixLength, 1);
  b.writeUInt8(o.flags ?? 0, 2);
  b.writeUInt8(o.scope ?? RT_SCOPE_UNIVERSE, 3);
  b.writeUInt32LE(o.index, 4);
  return b;
}

/** struct rtmsg for an IPv4 unicast route in the main table. */
export function rtmsg(o: { dstLength: number; scope?: number; family?: number }): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(o.family ?? AF_INET, 0);
  b.writeUInt8(o.dstLength, 1);
  b.writeUInt8(RT_TABLE_MAIN, 4);
  b.writeUInt8(RTPROT_BOOT, 5);
  b.writeUInt8(o.scope ?? RT_SCOPE_UNIVERSE, 6);
  b.writeUInt8(RTN_UNICAST, 7);
  return b;
}

/** A complete netlink message: header, fixed body and attributes. */
export function encodeMessage(type: number, flags: number, seq: number, body: Buffer, attrs: Attr[] = []): Buffer {
  const payload = Buffer.concat([body, encodeAttrs(attrs)]);
  const head = Buffer.alloc(NLMSG_HDRLEN);
  head.writeUInt32LE(NLMSG_HDRLEN + payload.length, 0);
  head.writeUInt16LE(type, 4);
  head.writeUInt16LE(flags, 6);
  head.writeUInt32LE(seq, 8);
  return Buffer.concat([head, payload, Buffer.alloc(align4(payload.length) - payload.length)]);
}

export interface DecodedMessage {
  type: number;
  flags: number;
  seq: number;
  payload: Buffer;
}

/** Splits a datagram from the kernel into its messages. */
export function decodeMessages(buf: Buffer): DecodedMessage[] {
  const out: DecodedMessage[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) break;
    out.push({
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      seq: buf.readUInt32LE(off + 8),
      payload: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align4(len);
  }
  return out;
}

/** A link as read back from RTM_GETLINK. */
export interface LinkInfo {
  index: number;
  name: string;
  flags: number;
  mtu: number;
  master: number;
  kind: string | undefined;
}

const cString = (b: Buffer) => b.toString('utf8', 0, b.indexOf(0) >= 0 ? b.indexOf(0) : b.length);

export function decodeLink(payload: Buffer): LinkInfo {
  const attrs = decodeAttrs(payload.subarray(16));
  const info = attrs.get(IFLA_LINKINFO);
  const kind = info ? decodeAttrs(info).get(IFLA_INFO_KIND) : undefined;
  return {
    index: payload.readInt32LE(4),
    flags: payload.readUInt32LE(8),
    name: cString(attrs.get(IFLA_IFNAME) ?? Buffer.alloc(0)),
    mtu: attrs.get(IFLA_MTU)?.readUInt32LE(0) ?? 0,
    master: attrs.get(IFLA_MASTER)?.readUInt32LE(0) ?? 0,
    kind: kind ? cString(kind) : undefined,
  };
}

/** An IPv4 route as read back from RTM_GETROUTE. */
export interface RouteInfo {
  dstLength: number;
  table: number;
  dst: string | undefined;
  gateway: string | undefined;
  oif: number;
  prefsrc: string | undefined;
}

const ipv4 = (b: Buffer | undefined) => (b && b.length === 4 ? [...b].join('.') : undefined);

export function decodeRoute(payload: Buffer): RouteInfo {
  const attrs = decodeAttrs(payload.subarray(12));
  return {
    dstLength: payload.readUInt8(1),
    table: attrs.get(RTA_TABLE)?.readUInt32LE(0) ?? payload.readUInt8(4),
    dst: ipv4(attrs.get(RTA_DST)),
    gateway: ipv4(attrs.get(RTA_GATEWAY)),
    oif: attrs.get(RTA_OIF)?.readUInt32LE(0) ?? 0,
    prefsrc: ipv4(attrs.get(RTA_PREFSRC)),
  };
}

/** An IPv4 address as read back from RTM_GETADDR. */
export interface AddressInfo {
  index: number;
  prefixLength: number;
  address: string;
}

export function decodeAddress(payload: Buffer): AddressInfo | undefined {
  if (payload.readUInt8(0) !== AF_INET) return undefined;
  const attrs = decodeAttrs(payload.subarray(8));
  const address = ipv4(attrs.get(IFA_LOCAL) ?? attrs.get(IFA_ADDRESS));
  if (!address) return undefined;
  return { index: payload.readUInt32LE(4), prefixLength: payload.readUInt8(1), address };
}
