import { SandpitError } from '../../../lib/errors.js';
import { koffi } from '../../sys/libc.js';
import { errnoName } from '../../sys/libc.js';
import * as sys from '../../sys/net.js';
import {
  decodeMessages,
  encodeMessage,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  type Attr,
  type DecodedMessage,
} from './codec.js';

/** One rtnetlink request: message type, extra flags, fixed body and attributes. */
export interface Request {
  type: number;
  flags?: number;
  body: Buffer;
  attrs?: Attr[];
  /** errno names that count as success, such as ENODEV for a delete of something already gone. */
  tolerate?: string[];
  /** What the request does, for the error message. */
  what: string;
}

/**
 * A request the kernel refused: the step is what the request did, `code` the
 * errno name, which callers test (EEXIST, ENODEV) to tell "already there" or
 * "already gone" from a failure.
 */
export class NetlinkError extends SandpitError {
  declare readonly code: string;
  constructor(what: string, code: string) {
    super({ step: what, message: code, code });
    this.name = 'NetlinkError';
  }
}

/**
 * A NETLINK_ROUTE socket (or, with `protocol`, another netlink family such as
 * NETLINK_NETFILTER for conntrack). The socket belongs to the network namespace of the
 * thread that created it, for its whole life: that is how the agent configures a
 * sandbox's namespace without moving a thread in and out for every message.
 * Calls are synchronous (they take microseconds), and several requests go out in
 * one datagram so a sandbox's setup costs a handful of syscalls.
 */
export class RtnlSocket {
  #fd: number;
  #seq = 1;
  readonly #buf = Buffer.alloc(1 << 16);

  constructor(protocol = sys.NETLINK_ROUTE) {
    koffi.errno(0);
    this.#fd = sys.socket(sys.AF_NETLINK, sys.SOCK_RAW | sys.SOCK_CLOEXEC, protocol);
    if (this.#fd < 0) throw new NetlinkError('open rtnetlink socket', errnoName(koffi.errno()));
    const one = Buffer.alloc(4);
    one.writeInt32LE(1);
    // Extended acks give readable kernel error strings in newer kernels; strict checking makes dumps honour filters.
    sys.setsockopt(this.#fd, sys.SOL_NETLINK, sys.NETLINK_EXT_ACK, one, 4);
  }

  close(): void {
    if (this.#fd >= 0) sys.close(this.#fd);
    this.#fd = -1;
  }

  /**
   * Sends every request in one datagram and waits for each acknowledgement. The
   * kernel processes the messages in order and goes on after a failure, so the
   * first refusal (not tolerated) is thrown after all acks are read.
   */
  exec(requests: Request[]): void {
    if (requests.length === 0) return;
    const first = this.#seq;
    const msgs = requests.map((r) =>
      encodeMessage(r.type, NLM_F_REQUEST | NLM_F_ACK | (r.flags ?? 0), this.#seq++, r.body, r.attrs),
    );
    this.#send(Buffer.concat(msgs));
    let pending = requests.length;
    let failure: NetlinkError | undefined;
    while (pending > 0) {
      for (const m of this.#receive()) {
        if (m.type !== NLMSG_ERROR) continue;
        const idx = m.seq - first;
        if (idx < 0 || idx >= requests.length) continue;
        pending--;
        const errno = -m.payload.readInt32LE(0);
        if (errno === 0) continue;
        const code = errnoName(errno);
        const req = requests[idx]!;
        if (!req.tolerate?.includes(code) && !failure) failure = new NetlinkError(req.what, code);
      }
    }
    if (failure) throw failure;
  }

  /** Sends one request that the kernel answers with one message (such as RTM_GETLINK by name) and returns its payload. */
  query(req: Request): Buffer {
    const seq = this.#seq++;
    this.#send(encodeMessage(req.type, NLM_F_REQUEST | (req.flags ?? 0), seq, req.body, req.attrs));
    for (;;) {
      for (const m of this.#receive()) {
        if (m.seq !== seq) continue;
        if (m.type === NLMSG_ERROR) {
          const errno = -m.payload.readInt32LE(0);
          throw new NetlinkError(req.what, errno === 0 ? 'ENODATA' : errnoName(errno));
        }
        return Buffer.from(m.payload);
      }
    }
  }

  /** Runs a dump request and returns the payload of every reply message. */
  dump(type: number, body: Buffer, attrs: Attr[] = []): Buffer[] {
    const seq = this.#seq++;
    this.#send(encodeMessage(type, NLM_F_REQUEST | NLM_F_DUMP, seq, body, attrs));
    const out: Buffer[] = [];
    for (;;) {
      for (const m of this.#receive()) {
        if (m.seq !== seq) continue;
        if (m.type === NLMSG_DONE) return out;
        if (m.type === NLMSG_ERROR) {
          const errno = -m.payload.readInt32LE(0);
          if (errno === 0) return out;
          throw new NetlinkError(`dump ${type}`, errnoName(errno));
        }
        out.push(Buffer.from(m.payload));
      }
    }
  }

  #send(buf: Buffer): void {
    koffi.errno(0);
    if (sys.send(this.#fd, buf, buf.length, 0) < 0)
      throw new NetlinkError('send to rtnetlink', errnoName(koffi.errno()));
  }

  #receive(): DecodedMessage[] {
    koffi.errno(0);
    const n = Number(sys.recv(this.#fd, this.#buf, this.#buf.length, 0));
    if (n < 0) throw new NetlinkError('receive from rtnetlink', errnoName(koffi.errno()));
    return decodeMessages(this.#buf.subarray(0, n));
  }
}
