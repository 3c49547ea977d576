import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import { DialError, dialInNetns } from '../../node-agent/api/streams/dial.js';

/*
 * Node tier (root, real kernel): the agent's own dialer for port-forward
 * connects to 127.0.0.1:port inside a network namespace — a server on the
 * sandbox's loopback answers, a closed port is refused with the errno, and
 * the node's own loopback is not what it reaches.
 */

describe('node: port-forward dialer: a TCP connection made inside a sandbox network namespace (root)', function () {
  this.timeout(30_000);
  const ns = `sptest-dial-${process.pid}`;
  const path = `/run/netns/${ns}`;
  const port = 20000 + (process.pid % 10000);
  let server: ChildProcess | undefined;
  let hostServer: Server | undefined;

  before(async () => {
    execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    // An echo server bound to the namespace's loopback only, prefixing what it sends back.
    const code = `require('net').createServer((c) => c.on('data', (d) => c.write('echo:' + d))).listen(${port}, '127.0.0.1', () => console.log('ready'))`;
    server = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    await once(server.stdout!, 'data');
  });

  after(async () => {
    if (server && server.exitCode === null) {
      server.kill('SIGKILL');
      await once(server, 'exit');
    }
    hostServer?.close();
    execFileSync('ip', ['netns', 'delete', ns]);
  });

  it('reaches a server on the sandbox loopback and carries bytes both ways', async () => {
    const conn = await dialInNetns(path, port, 'test/dial');
    conn.write('ping');
    const [reply] = (await once(conn, 'data')) as [Buffer];
    assert.equal(reply.toString(), 'echo:ping');
    conn.destroy();
  });

  it('refuses a port nothing listens on in the sandbox with ECONNREFUSED, even when the node listens on it', async () => {
    // The node's own 127.0.0.1 has a listener on the port: a dial that leaked out of the namespace would reach it.
    const other = port + 1;
    hostServer = createServer((c) => c.end('node'));
    await new Promise<void>((r) => hostServer!.listen(other, '127.0.0.1', r));
    await assert.rejects(
      dialInNetns(path, other, 'test/dial'),
      (err: unknown) =>
        err instanceof DialError &&
        err.code === 'ECONNREFUSED' &&
        /127\.0\.0\.1:\d+ in the sandbox failed: ECONNREFUSED/.test(err.message),
    );
  });

  it('says which namespace is missing when the sandbox is gone', async () => {
    await assert.rejects(dialInNetns(`/run/netns/${ns}-gone`, port, 'test/dial'), /open \/run\/netns\/.*-gone: ENOENT/);
  });
});
