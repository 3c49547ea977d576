import assert from 'node:assert/strict';
import { endianness } from 'node:os';
import { decodeProcAddress, parseProcNet, shadowedListeners } from './listeners.js';

describe('host listeners from /proc/net (unit)', () => {
  // The kernel prints each 32-bit word of an address in host byte order: build the lines the way this host's kernel would.
  const le = endianness() === 'LE';
  const hexWord = (b: number[]) => (le ? [...b].reverse() : b).map((x) => x.toString(16).padStart(2, '0').toUpperCase()).join('');
  const v4 = (ip: string) => hexWord(ip.split('.').map(Number));
  const v6 = (bytes: number[]) => [0, 4, 8, 12].map((i) => hexWord(bytes.slice(i, i + 4))).join('');
  const mapped = (ip: string) => v6([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...ip.split('.').map(Number)]);
  const any6 = v6(new Array<number>(16).fill(0));
  const tcp = [
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    `   0: ${v4('127.0.0.1')}:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0000000000000000 100 0 0 10 0`,
    '   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2222 1 0000000000000000 100 0 0 10 0',
    `   2: ${v4('127.0.0.1')}:1F90 ${v4('127.0.0.1')}:C350 01 00000000:00000000 00:00000000 00000000     0        0 3333 1 0000000000000000 100 0 0 10 0`,
  ].join('\n');
  const udp6 = [
    '  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops',
    `  10: ${any6}:0035 ${any6}:0000 07 00000000:00000000 00:00000000 00000000     0        0 4444 2 0000000000000000 0`,
    `  11: ${mapped('10.0.0.2')}:0035 ${any6}:0000 07 00000000:00000000 00:00000000 00000000     0        0 5555 2 0000000000000000 0`,
    `  12: ${mapped('10.0.0.2')}:9C40 ${mapped('10.0.0.1')}:0035 01 00000000:00000000 00:00000000 00000000     0        0 6666 2 0000000000000000 0`,
  ].join('\n');

  it('decodes IPv4, IPv6 any and v4-mapped addresses', () => {
    assert.equal(decodeProcAddress(v4('127.0.0.1')), '127.0.0.1');
    assert.equal(decodeProcAddress(any6), '::');
    assert.equal(decodeProcAddress(mapped('10.0.0.2')), '::ffff:10.0.0.2');
    assert.equal(decodeProcAddress(v6([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])), '2001:db8:0:0:0:0:0:1');
  });

  it('keeps TCP sockets in LISTEN and unconnected UDP sockets only', () => {
    assert.deepEqual(parseProcNet(tcp, 'TCP'), [
      { protocol: 'TCP', address: '127.0.0.1', port: 8080, inode: 1111 },
      { protocol: 'TCP', address: '0.0.0.0', port: 22, inode: 2222 },
    ]);
    assert.deepEqual(parseProcNet(udp6, 'UDP').map((l) => [l.address, l.port]), [['::', 53], ['::ffff:10.0.0.2', 53]]);
  });

  it('a DNAT on every address shadows any IPv4 listener on the port; one on a hostIP only that address and the wildcards', () => {
    const ls = [...parseProcNet(tcp, 'TCP'), ...parseProcNet(udp6, 'UDP')];
    assert.deepEqual(shadowedListeners(ls, { hostPort: 8080, protocol: 'TCP' }).map((l) => l.inode), [1111]);
    assert.deepEqual(shadowedListeners(ls, { hostPort: 8080, protocol: 'TCP', hostIP: '192.0.2.1' }), [], 'a listener on 127.0.0.1 is not in the way of a DNAT on 192.0.2.1');
    assert.deepEqual(shadowedListeners(ls, { hostPort: 22, protocol: 'TCP', hostIP: '192.0.2.1' }).map((l) => l.inode), [2222], '0.0.0.0 covers every address');
    assert.deepEqual(shadowedListeners(ls, { hostPort: 53, protocol: 'UDP', hostIP: '10.0.0.9' }).map((l) => l.inode), [4444], ':: may take IPv4 too');
    assert.deepEqual(shadowedListeners(ls, { hostPort: 53, protocol: 'UDP' }).map((l) => l.inode), [4444, 5555]);
    assert.deepEqual(shadowedListeners(ls, { hostPort: 53, protocol: 'TCP' }), [], 'protocols are separate');
  });
});
