import { closeSync, existsSync, fstatSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { Socket } from 'node:net';
import { ReadStream } from 'node:tty';
import { libc } from '../sys/libc.js';
import { close, open, O_CLOEXEC, O_NONBLOCK, O_RDONLY, O_RDWR } from '../sys/proc.js';

/*
 * Container output: the workload writes into a FIFO per stream that it holds
 * O_RDWR, so it never sees SIGPIPE while the agent is down (writes just block
 * once the 64 KiB pipe buffer fills). The agent reads the FIFOs and writes the
 * CRI log format ("<RFC3339Nano> <stream> <P|F> <text>") to one file per
 * container, rotating it by size.
 */

const mkfifoFn = libc.func('int mkfifo(const char *path, uint32_t mode)');

export function ensureFifo(path: string): void {
  if (!existsSync(path)) mkfifoFn(path, 0o600);
}

/** An fd for the workload's stdout/stderr: O_RDWR so that a reader always exists. */
export function openFifoForWorkload(path: string): number {
  return open(path, O_RDWR | O_CLOEXEC, 0, { step: 'open log fifo' });
}

export function criTimestamp(d = new Date(), nanos = 0): string {
  const iso = d.toISOString(); // 2024-01-01T00:00:00.000Z
  return `${iso.slice(0, 19)}.${String(d.getMilliseconds()).padStart(3, '0')}${String(nanos).padStart(6, '0')}Z`;
}

/** Formats one chunk of a stream into CRI lines; the unterminated tail is carried over. */
export function formatCriLines(
  stream: 'stdout' | 'stderr',
  carry: string,
  chunk: string,
  ts: string,
  maxLine = 16384,
): { lines: string[]; carry: string } {
  const text = carry + chunk;
  const parts = text.split('\n');
  let rest = parts.pop() ?? '';
  const lines = parts.map((p) => `${ts} ${stream} F ${p}\n`);
  while (rest.length > maxLine) {
    lines.push(`${ts} ${stream} P ${rest.slice(0, maxLine)}\n`);
    rest = rest.slice(maxLine);
  }
  return { lines, carry: rest };
}

export class ContainerLog {
  readonly path: string;
  readonly #maxBytes: number;
  readonly #maxFiles: number;
  #fd: number;
  #readers: { socket: Socket; fd: number; keep: number; stream: 'stdout' | 'stderr' }[] = [];
  /** Per stream, the unterminated end of what was read last. */
  readonly #carry = { stdout: '', stderr: '' };
  /** The pty master of a tty: true run, while it lasts (one per run; a restart brings a new one). */
  #terminal: ReadStream | undefined;

  constructor(path: string, opts: { maxBytes: number; maxFiles: number }) {
    this.path = path;
    this.#maxBytes = opts.maxBytes;
    this.#maxFiles = opts.maxFiles;
    this.#fd = openSync(path, 'a', 0o640);
  }

  /** Starts copying a FIFO into the log. A write fd is kept open so the reader never sees EOF between runs. */
  attach(fifo: string, stream: 'stdout' | 'stderr'): void {
    const readFd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0, { step: 'attach log fifo' });
    const keep = open(fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC, 0, { step: 'attach log fifo' });
    const socket = new Socket({ fd: readFd, readable: true, writable: false });
    this.#copy(socket, stream);
    socket.on('error', () => undefined);
    this.#readers.push({ socket, fd: readFd, keep, stream });
  }

  /**
   * Copies a container's terminal into the log as stdout, as containerd does
   * for tty containers, and owns the pty master from now on: it is closed
   * when the last slave fd goes (the read fails with EIO once the run's
   * processes are gone), when the next run brings its own, or on close().
   */
  attachTerminal(master: number): void {
    this.#terminal?.destroy();
    // A pty master is a TTY to libuv: net.Socket refuses it, tty.ReadStream takes it.
    const term = new ReadStream(master);
    this.#copy(term, 'stdout');
    term.on('error', () => term.destroy());
    term.on('close', () => {
      if (this.#terminal === term) this.#terminal = undefined;
    });
    this.#terminal = term;
  }

  #copy(from: Socket, stream: 'stdout' | 'stderr'): void {
    from.on('data', (d: Buffer) => this.#take(stream, d));
  }

  #take(stream: 'stdout' | 'stderr', d: Buffer): void {
    const r = formatCriLines(stream, this.#carry[stream], d.toString('utf8'), criTimestamp());
    this.#carry[stream] = r.carry;
    for (const l of r.lines) this.#write(l);
  }

  /**
   * Copies into the log, now, what the FIFOs still hold (a run that just
   * exited wrote all it will write; the event loop may not have read it yet),
   * so the log file is complete when the caller reads it. Terminal output is
   * not covered: it is read as the terminal delivers it.
   */
  drainSync(): void {
    const buf = Buffer.alloc(65536);
    for (const r of this.#readers) {
      for (;;) {
        let n: number;
        try {
          n = readSync(r.fd, buf, 0, buf.length, null);
        } catch {
          break; // EAGAIN: empty
        }
        if (n <= 0) break;
        this.#take(r.stream, Buffer.from(buf.subarray(0, n)));
      }
    }
  }

  #write(line: string): void {
    writeSync(this.#fd, line);
    if (fstatSync(this.#fd).size >= this.#maxBytes) this.#rotate();
  }

  #rotate(): void {
    closeSync(this.#fd);
    rmSync(`${this.path}.${this.#maxFiles - 1}`, { force: true });
    for (let i = this.#maxFiles - 2; i >= 1; i--)
      if (existsSync(`${this.path}.${i}`)) renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`);
    if (this.#maxFiles > 1) renameSync(this.path, `${this.path}.1`);
    else rmSync(this.path, { force: true });
    this.#fd = openSync(this.path, 'a', 0o640);
  }

  /** Drains what is buffered in the FIFOs, then stops. */
  async close(): Promise<void> {
    await new Promise((r) => setTimeout(r, 20));
    for (const r of this.#readers) {
      r.socket.destroy();
      close(r.keep);
    }
    this.#readers = [];
    this.#terminal?.destroy();
    this.#terminal = undefined;
    closeSync(this.#fd);
  }
}
