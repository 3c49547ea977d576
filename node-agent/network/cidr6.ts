/*
 * IPv6 for a dual-stack node: the sandbox prefix (a ULA, fd00::/8) and the
 * address each sandbox gets in it. No second lease table: a sandbox's IPv6
 * address is the prefix with its leased IPv4 address in the low 32 bits
 * (fd00:88::/64 and 10.88.0.5 give fd00:88::a58:5), so it is unique exactly
 * when the IPv4 lease is, is released with it, and GC needs nothing more.
 */

export interface Subnet6 {
  /** Network address, 16 bytes. */
  network: Buffer;
  /** /64 to /96: the low 32 bits carry the IPv4 address. */
  prefixLength: number;
  /** Canonical text, such as fd00:88::/64. */
  cidr: string;
}

/** 16 bytes of an IPv6 address in text form (no zone, no embedded IPv4). */
export function ip6ToBytes(ip: string): Buffer {
  const halves = ip.split('::');
  if (halves.length > 2) throw new Error(`not an IPv6 address: ${ip}`);
  const groups = (s: string) => (s === '' ? [] : s.split(':'));
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  const fill = 8 - head.length - tail.length;
  if ((halves.length === 2 && fill < 1) || (halves.length === 1 && fill !== 0))
    throw new Error(`not an IPv6 address: ${ip}`);
  const all = [...head, ...new Array<string>(halves.length === 2 ? fill : 0).fill('0'), ...tail];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) throw new Error(`not an IPv6 address: ${ip}`);
    out.writeUInt16BE(parseInt(g, 16), i * 2);
  });
  return out;
}

/** Canonical (RFC 5952) text of 16 bytes, by the WHATWG URL serializer, which implements exactly that. */
export function bytesToIp6(b: Buffer): string {
  const groups = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2).toString(16));
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

export const isIPv6 = (s: string) => {
  try {
    ip6ToBytes(s);
    return true;
  } catch {
    return false;
  }
};

export function parseSubnet6(cidr: string): Subnet6 {
  const m = /^([0-9a-fA-F:]+)\/(\d{1,3})$/.exec(cidr);
  if (!m) throw new Error(`not an IPv6 CIDR: ${cidr}`);
  const prefixLength = Number(m[2]);
  if (prefixLength < 64 || prefixLength > 96)
    throw new Error(
      `sandbox IPv6 subnet ${cidr} must be between /64 and /96 (its low 32 bits carry the sandbox's IPv4 address)`,
    );
  const network = ip6ToBytes(m[1]!);
  if (network[0] !== 0xfd)
    throw new Error(
      `sandbox IPv6 subnet ${cidr} must be a unique local prefix (fd00::/8): sandboxes are masqueraded behind the node`,
    );
  for (let bit = prefixLength; bit < 128; bit++) network[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return { network, prefixLength, cidr: `${bytesToIp6(network)}/${prefixLength}` };
}

/** The IPv6 address paired with an IPv4 address of the sandbox subnet (the gateway's too). */
export function pairedIp6(s: Subnet6, ipv4: string): string {
  const b = Buffer.from(s.network);
  Buffer.from(ipv4.split('.').map(Number)).copy(b, 12);
  return bytesToIp6(b);
}
