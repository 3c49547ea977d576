import { spawn } from 'node:child_process';
import { CustomObjectsApi } from '@kubernetes/client-node';
import { createServer, type Server, type Socket } from 'node:net';
import { posix } from 'node:path';
import type WebSocket from 'ws';
import { Channel, frame, parseFrame, type StreamStatus, type UsageSample } from '../protocol/streams.js';
import type { Sandbox } from '../crds/sandbox.js';
import { defaultContainer } from '../lib/default-container.js';
import { isRemote, splitRemote, type Command } from './args.js';
import { openStream, type Session } from './connect.js';
import { CliError, serverError } from './errors.js';
import { runExecStream, writeOut } from './exec.js';

type Of<N extends Command['name']> = Extract<Command, { name: N }>;

/** Collects a stream's channel 1 into stdout (or a buffer) and fails on a Failure status. */
async function drain(step: string, ws: WebSocket, sink?: (d: Buffer) => void): Promise<void> {
  let status: StreamStatus | undefined;
  ws.on('message', (msg: Buffer) => {
    const f = parseFrame(msg);
    if (!f) return;
    if (f.channel === Channel.stdout || f.channel === Channel.stderr) {
      if (sink) sink(f.data);
      else writeOut(f.channel === Channel.stdout ? process.stdout : process.stderr, f.data, ws);
    } else if (f.channel === Channel.status) status = JSON.parse(f.data.toString('utf8')) as StreamStatus;
  });
  await new Promise<void>((r) => ws.once('close', () => r()));
  if (status?.status === 'Failure') throw serverError(step, status.reason ?? 'Failure', status.message ?? '');
}

export async function execCommand(s: Session, c: Of<'exec'>): Promise<number> {
  const q = new URLSearchParams();
  for (const a of c.command) q.append('command', a);
  const container = await chosenContainer(s, c.sandbox, c.container);
  if (container) q.set('container', container);
  if (c.stdin) q.set('stdin', '1');
  if (c.tty) q.set('tty', '1');
  if (c.tty && !process.stdin.isTTY && c.stdin)
    process.stderr.write('Unable to use a TTY - input is not a terminal or the right kind of file\n');
  return runExecStream(await openStream(s, c.sandbox, 'exec', q), { stdin: c.stdin, tty: c.tty });
}

/**
 * The container a request without -c is for, as kubectl picks it (the
 * default-container annotation, else the first, saying so on stderr when
 * there are several). A user who may not read the Sandbox still gets the
 * stream: the controller then picks by the same rule, without the notice.
 */
async function chosenContainer(s: Session, sandbox: string, given: string | undefined): Promise<string | undefined> {
  if (given) return given;
  let sbx: Sandbox;
  try {
    sbx = (await s.kc.makeApiClient(CustomObjectsApi).getNamespacedCustomObject({
      group: 'sandpit.dev',
      version: 'v1alpha1',
      namespace: s.namespace,
      plural: 'sandboxes',
      name: sandbox,
    })) as Sandbox;
  } catch {
    return undefined;
  }
  const { name, notice } = defaultContainer(sbx);
  if (notice) process.stderr.write(`${notice}\n`);
  return name;
}

export async function logsCommand(s: Session, c: Of<'logs'>): Promise<number> {
  const q = new URLSearchParams();
  const container = await chosenContainer(s, c.sandbox, c.container);
  if (container) q.set('container', container);
  if (c.follow) q.set('follow', '1');
  if (c.previous) q.set('previous', '1');
  if (c.timestamps) q.set('timestamps', '1');
  if (c.tail !== undefined) q.set('tailLines', String(c.tail));
  if (c.sinceSeconds !== undefined) q.set('sinceSeconds', String(c.sinceSeconds));
  const ws = await openStream(s, c.sandbox, 'log', q);
  process.once('SIGINT', () => ws.close());
  await drain('logs', ws);
  return 0;
}

/** Forwards each accepted local connection over its own stream, as kubectl port-forward does with its streams. */
export async function portForwardCommand(s: Session, c: Of<'port-forward'>): Promise<number> {
  const servers: Server[] = [];
  for (const p of c.ports) {
    const server = createServer((sock: Socket) => {
      forwardOne(s, c.sandbox, p.remote, sock).catch((err: Error) => {
        process.stderr.write(`error forwarding port ${p.remote}: ${err.message}\n`);
        sock.destroy();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) =>
        reject(new CliError('listen', `cannot listen on ${c.address}:${p.local}: ${err.message}`)),
      );
      server.listen(p.local, c.address, () => resolve());
    });
    const a = server.address();
    process.stdout.write(
      `Forwarding from ${c.address}:${typeof a === 'object' && a ? a.port : p.local} -> ${p.remote}\n`,
    );
    servers.push(server);
  }
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  for (const srv of servers) srv.close();
  return 0;
}

async function forwardOne(s: Session, sandbox: string, port: number, sock: Socket): Promise<void> {
  sock.pause();
  const ws = await openStream(s, sandbox, 'portforward', new URLSearchParams({ port: String(port) }));
  process.stdout.write(`Handling connection for ${port}\n`);
  sock.on('data', (d: Buffer) => {
    ws.send(frame(Channel.stdin, d));
    if (ws.bufferedAmount > 1 << 20) sock.pause();
  });
  const pump = setInterval(() => {
    if (sock.isPaused() && ws.bufferedAmount < 1 << 19) sock.resume();
  }, 20);
  sock.on('end', () => {
    if (ws.readyState === ws.OPEN) ws.send(Buffer.from([Channel.close, Channel.stdin]));
  });
  sock.on('error', () => ws.close());
  sock.on('close', () => ws.close());
  ws.on('message', (msg: Buffer) => {
    const f = parseFrame(msg);
    if (!f) return;
    if (f.channel === Channel.stdout) {
      if (!sock.write(f.data)) {
        ws.pause();
        sock.once('drain', () => ws.resume());
      }
    } else if (f.channel === Channel.status) {
      const st = JSON.parse(f.data.toString('utf8')) as StreamStatus;
      if (st.status === 'Failure') process.stderr.write(`error forwarding port ${port}: ${st.message ?? st.reason}\n`);
    }
  });
  ws.on('close', () => {
    clearInterval(pump);
    sock.end();
  });
  sock.resume();
}

/** kubectl cp's way: tar over exec, in either direction. */
export async function cpCommand(s: Session, c: Of<'cp'>): Promise<number> {
  const download = isRemote(c.from);
  const q = new URLSearchParams();
  if (c.container) q.set('container', c.container);
  if (download) {
    const { sandbox, path } = splitRemote(c.from);
    const dir = posix.dirname(path);
    const base = posix.basename(path);
    for (const a of ['tar', 'cf', '-', '-C', dir, base]) q.append('command', a);
    const ws = await openStream(s, sandbox, 'exec', q);
    // Unpack into a temporary name, then rename: kubectl cp copies to the destination path itself.
    const { mkdtempSync, renameSync, rmSync } = await import('node:fs');
    const tmp = mkdtempSync(posix.join(posix.dirname(c.to) || '.', '.sandpit-cp-'));
    const tar = spawn('tar', ['xf', '-', '-C', tmp], { stdio: ['pipe', 'inherit', 'inherit'] });
    const done = new Promise<number | null>((r) => tar.once('close', r));
    let status: StreamStatus | undefined;
    ws.on('message', (msg: Buffer) => {
      const f = parseFrame(msg);
      if (!f) return;
      if (f.channel === Channel.stdout && !tar.stdin.write(f.data)) {
        ws.pause();
        tar.stdin.once('drain', () => ws.resume());
      } else if (f.channel === Channel.stderr) process.stderr.write(f.data);
      else if (f.channel === Channel.status) status = JSON.parse(f.data.toString('utf8')) as StreamStatus;
    });
    await new Promise<void>((r) => ws.once('close', () => r()));
    tar.stdin.end();
    const code = await done;
    try {
      if (status?.status !== 'Success')
        throw new CliError('copy', `copying ${c.from} failed: ${status?.message ?? 'the stream ended early'}`);
      if (code !== 0) throw new CliError('copy', `unpacking ${c.from} locally failed (tar exit ${code})`);
      renameSync(posix.join(tmp, base), c.to);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    return 0;
  }
  const { sandbox, path } = splitRemote(c.to);
  // Into PATH itself (kubectl cp semantics): pack the local file under the destination's base name.
  const dir = posix.dirname(path);
  const { mkdtempSync, rmSync, symlinkSync } = await import('node:fs');
  const { resolve: resolvePath } = await import('node:path');
  const stage = mkdtempSync('/tmp/sandpit-cp-');
  try {
    symlinkSync(resolvePath(c.from), posix.join(stage, posix.basename(path)));
    for (const a of ['tar', 'xf', '-', '-C', dir]) q.append('command', a);
    q.set('stdin', '1');
    const ws = await openStream(s, sandbox, 'exec', q);
    const tar = spawn('tar', ['chf', '-', '-C', stage, posix.basename(path)], { stdio: ['ignore', 'pipe', 'inherit'] });
    tar.stdout.on('data', (d: Buffer) => {
      ws.send(frame(Channel.stdin, d));
      if (ws.bufferedAmount > 1 << 20) {
        tar.stdout.pause();
        const t = setInterval(() => {
          if (ws.bufferedAmount < 1 << 19) {
            clearInterval(t);
            tar.stdout.resume();
          }
        }, 10);
      }
    });
    tar.stdout.on('end', () => ws.send(Buffer.from([Channel.close, Channel.stdin])));
    const code = await runExecStream(ws, { stdin: false, tty: false });
    if (code !== 0) throw new CliError('copy', `unpacking into ${c.to} failed (tar exit ${code})`);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
  return 0;
}

export function formatTop(
  sandbox: string,
  u: { sandbox: UsageSample; containers: Record<string, UsageSample> },
): string {
  const mem = (b: number) => `${Math.round(b / (1 << 20))}Mi`;
  const rows = [
    ['NAME', 'CPU(cores)', 'MEMORY(bytes)'],
    [sandbox, `${u.sandbox.cpuMillis}m`, mem(u.sandbox.memoryBytes)],
  ];
  for (const [name, c] of Object.entries(u.containers)) rows.push([`  ${name}`, `${c.cpuMillis}m`, mem(c.memoryBytes)]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return (
    rows
      .map((r) =>
        r
          .map((v, i) => v.padEnd(widths[i]! + 3))
          .join('')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

export async function topCommand(s: Session, c: Of<'top'>): Promise<number> {
  const chunks: Buffer[] = [];
  await drain('top', await openStream(s, c.sandbox, 'top', new URLSearchParams()), (d) => chunks.push(d));
  process.stdout.write(
    formatTop(c.sandbox, JSON.parse(Buffer.concat(chunks).toString('utf8')) as Parameters<typeof formatTop>[1]),
  );
  return 0;
}
