import assert from 'node:assert/strict';
import { endianness } from 'node:os';
import { shadowedListeners, type HostListener } from './listeners.js';
import { AF_INET6, decodeDiagMessage, diagRequest, IPPROTO_TCP, TCP_LISTEN } from '../netlink/sockdiag.js';

describe('unit: host listeners', () => {
  /** struct inet_diag_msg as the kernel lays it out: ports and addresses in network order, the rest in host order. */
  const diagMsg = (family: number, state: number, addr: number[], port: number, remotePort: number, inode: number) => {
    const b = Buffer.alloc(72);
    b[0] = family;
    b[1] = state;
    b.writeUInt16BE(port, 4);
    b.writeUInt16BE(remotePort, 6);
    Buffer.from(addr).copy(b, 8);
    if (endianness() === 'LE') b.writeUInt32LE(inode, 68);
    else b.writeUInt32BE(inode, 68);
    return b;
  };

  it('decodes sock_diag replies: IPv4, IPv6 any, v4-mapped and plain IPv6 addresses', () => {
    assert.deepEqual(decodeDiagMessage(diagMsg(2, TCP_LISTEN, [127, 0, 0, 1], 8080, 0, 1111)), {
      family: 2,
      state: TCP_LISTEN,
      address: '127.0.0.1',
      port: 8080,
      remotePort: 0,
      inode: 1111,
    });
    assert.equal(decodeDiagMessage(diagMsg(AF_INET6, 7, new Array<number>(16).fill(0), 53, 0, 1)).address, '::');
    assert.equal(
      decodeDiagMessage(diagMsg(AF_INET6, 7, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 2], 53, 0, 1))
        .address,
      '::ffff:10.0.0.2',
    );
    assert.equal(
      decodeDiagMessage(diagMsg(AF_INET6, 7, [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 53, 0, 1))
        .address,
      '2001:db8:0:0:0:0:0:1',
    );
  });

  it('asks the kernel for one family, protocol and state set', () => {
    const req = diagRequest(AF_INET6, IPPROTO_TCP, 1 << TCP_LISTEN);
    assert.equal(req.length, 56);
    assert.deepEqual([req[0], req[1]], [AF_INET6, IPPROTO_TCP]);
    assert.equal(endianness() === 'LE' ? req.readUInt32LE(4) : req.readUInt32BE(4), 1 << TCP_LISTEN);
  });

  it('a DNAT on every address shadows any IPv4 listener on the port; one on a hostIP only that address and the wildcards', () => {
    const ls: HostListener[] = [
      { protocol: 'TCP', address: '127.0.0.1', port: 8080, inode: 1111 },
      { protocol: 'TCP', address: '0.0.0.0', port: 22, inode: 2222 },
      { protocol: 'UDP', address: '::', port: 53, inode: 4444 },
      { protocol: 'UDP', address: '::ffff:10.0.0.2', port: 53, inode: 5555 },
      { protocol: 'UDP', address: 'fd00:0:0:0:0:0:0:1', port: 53, inode: 6666 },
    ];
    assert.deepEqual(
      shadowedListeners(ls, { hostPort: 8080, protocol: 'TCP' }).map((l) => l.inode),
      [1111],
    );
    assert.deepEqual(
      shadowedListeners(ls, { hostPort: 8080, protocol: 'TCP', hostIP: '192.0.2.1' }),
      [],
      'a listener on 127.0.0.1 is not in the way of a DNAT on 192.0.2.1',
    );
    assert.deepEqual(
      shadowedListeners(ls, { hostPort: 22, protocol: 'TCP', hostIP: '192.0.2.1' }).map((l) => l.inode),
      [2222],
      '0.0.0.0 covers every address',
    );
    assert.deepEqual(
      shadowedListeners(ls, { hostPort: 53, protocol: 'UDP', hostIP: '10.0.0.9' }).map((l) => l.inode),
      [4444],
      ':: may take IPv4 too',
    );
    assert.deepEqual(
      shadowedListeners(ls, { hostPort: 53, protocol: 'UDP' }).map((l) => l.inode),
      [4444, 5555],
      'an IPv6-only address is not in the way of an IPv4 DNAT',
    );
    assert.deepEqual(shadowedListeners(ls, { hostPort: 53, protocol: 'TCP' }), [], 'protocols are separate');
  });
});
