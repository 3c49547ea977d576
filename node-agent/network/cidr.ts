/*
 * IPv4 subnet arithmetic for the node's sandbox subnet. Addresses are handled
 * as unsigned 32-bit numbers; only the conversions touch dotted strings.
 */

export interface Subnet {
  /** Network address, such as 10.88.0.0. */
  network: number;
  prefixLength: number;
  /** The CIDR as written canonically, such as 10.88.0.0/24. */
  cidr: string;
}

export function ipToNumber(ip: string): number {
  const parts = ip.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255))
    throw new Error(`not an IPv4 address: ${ip}`);
  return parts.reduce((a, p) => a * 256 + Number(p), 0);
}

export function numberToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export const isIPv4 = (s: string) => {
  try {
    ipToNumber(s);
    return true;
  } catch {
    return false;
  }
};

/** Parses a CIDR; the sandbox subnet must leave room for a gateway and at least one sandbox (/30 or larger). */
export function parseSubnet(cidr: string): Subnet {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(cidr);
  if (!m) throw new Error(`not an IPv4 CIDR: ${cidr}`);
  const prefixLength = Number(m[2]);
  if (prefixLength < 8 || prefixLength > 30) throw new Error(`sandbox subnet ${cidr} must be between /8 and /30`);
  const mask = (~0 << (32 - prefixLength)) >>> 0;
  const network = (ipToNumber(m[1]!) & mask) >>> 0;
  return { network, prefixLength, cidr: `${numberToIp(network)}/${prefixLength}` };
}

export const subnetSize = (s: Subnet) => 2 ** (32 - s.prefixLength);
/** The bridge's address: the first host address, as Docker, CNI and netavark do. */
export const gatewayOf = (s: Subnet) => numberToIp(s.network + 1);
/** First and last address a sandbox may get: after the gateway, before broadcast. */
export const sandboxRange = (s: Subnet) => ({ first: s.network + 2, last: s.network + subnetSize(s) - 2 });

/** True when two IPv4 ranges (network/prefix) share any address. */
export function overlaps(
  a: { network: number; prefixLength: number },
  b: { network: number; prefixLength: number },
): boolean {
  const shorter = Math.min(a.prefixLength, b.prefixLength);
  const mask = shorter === 0 ? 0 : (~0 << (32 - shorter)) >>> 0;
  return (a.network & mask) >>> 0 === (b.network & mask) >>> 0;
}
