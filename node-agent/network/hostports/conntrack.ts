import { NETLINK_NETFILTER } from '../../sys/net.js';
import { AF_INET, decodeAttrs, NLA_F_NESTED, type Attr } from '../netlink/codec.js';
import { RtnlSocket } from '../netlink/socket.js';

/*
 * Just enough ctnetlink to forget stale UDP flows to a port that is about to
 * be published. A UDP flow to hostPort created before the DNAT rule existed
 * (a client retrying every second, say) keeps matching its old conntrack entry,
 * which has no DNAT, and is blackholed until it times out; CNI's portmap
 * deletes such entries after adding its rules, and so do we.
 */

const NFNL_SUBSYS_CTNETLINK = 1;
const IPCTNL_MSG_CT_GET = 1;
const IPCTNL_MSG_CT_DELETE = 2;
const CTA_TUPLE_ORIG = 1;
const CTA_TUPLE_PROTO = 2;
const CTA_PROTO_NUM = 1;
const CTA_PROTO_DST_PORT = 3;
const IPPROTO_UDP = 17;

/** struct nfgenmsg: family, version 0, resource id 0 (big endian). */
const nfgenmsg = () => Buffer.from([AF_INET, 0, 0, 0]);

/** The UDP destination port of a conntrack entry's original tuple, from a dump message payload. */
export function originalUdpDstPort(payload: Buffer): { port: number; tuple: Buffer } | undefined {
  const tuple = decodeAttrs(payload.subarray(4)).get(CTA_TUPLE_ORIG);
  if (!tuple) return undefined;
  const proto = decodeAttrs(tuple).get(CTA_TUPLE_PROTO);
  if (!proto) return undefined;
  const p = decodeAttrs(proto);
  if (p.get(CTA_PROTO_NUM)?.readUInt8(0) !== IPPROTO_UDP) return undefined;
  const port = p.get(CTA_PROTO_DST_PORT);
  return port ? { port: port.readUInt16BE(0), tuple } : undefined;
}

/** Deletes IPv4 UDP conntrack entries whose original destination port is one of `ports`; returns how many. */
export function forgetUdpFlows(ports: number[]): number {
  if (ports.length === 0) return 0;
  const wanted = new Set(ports);
  const sock = new RtnlSocket(NETLINK_NETFILTER);
  try {
    const doomed = sock
      .dump((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET, nfgenmsg())
      .map(originalUdpDstPort)
      .filter((e): e is { port: number; tuple: Buffer } => e !== undefined && wanted.has(e.port));
    if (doomed.length) {
      sock.exec(
        doomed.map((e) => ({
          what: `delete stale UDP flow to port ${e.port}`,
          type: (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE,
          body: nfgenmsg(),
          attrs: [{ type: CTA_TUPLE_ORIG | NLA_F_NESTED, value: e.tuple } satisfies Attr],
          // Gone already (timed out, or deleted by someone else): fine.
          tolerate: ['ENOENT'],
        })),
      );
    }
    return doomed.length;
  } finally {
    sock.close();
  }
}
