import { CustomObjectsApi } from '@kubernetes/client-node';
import { createServer, type Server, type Socket } from 'node:net';
import type WebSocket from 'ws';
import { Channel, frame, parseFrame, type StreamStatus, type UsageSample } from '../protocol/streams.js';
import type { Sandbox } from '../crds/sandbox.js';
import { defaultContainer } from '../lib/default-container.js';
import type { Command } from './args.js';
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
