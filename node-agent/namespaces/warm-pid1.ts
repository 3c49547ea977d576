import { read as readCb } from 'node:fs';
import { SandpitError } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import { pipe } from '../process/exec-io.js';
import { close, open, O_CLOEXEC, O_WRONLY, reapChild } from '../sys/proc.js';
import type { RuntimeConfig } from '../runtime/config.js';
import type { LauncherPool } from './launcher.js';

/*
 * Sandbox PID 1s made ahead of time. Creating the pid/net/ipc/uts namespaces
 * and starting PID 1 costs 12-40 ms on this machine (a netns is the dear
 * part, plus a hop to a launcher thread); a node that creates sandboxes
 * should not pay that on the critical path. Each warm one is sandpit-init
 * warm, blocked on a pipe: the runtime moves it into the new sandbox's cgroup
 * and sends the hostname, it finishes the namespaces and says ready. If the
 * agent stops or dies, the pipe closes and the warm PID 1s exit on their own.
 */

export interface WarmPid1 {
  pid: number;
  /** Agent end of the pipe the PID 1 waits on for its hostname. */
  go: number;
  /** Agent end of the pipe it writes "ready" to. */
  ready: number;
}

export class WarmPid1Pool {
  readonly #size: number;
  readonly #launchers: LauncherPool;
  readonly #init: string;
  readonly #log: Logger;
  readonly #warm: WarmPid1[] = [];
  #filling = 0;
  #closed = false;
  /** Spawns under way, so close() can wait for them and reap what they made. */
  readonly #spawning = new Set<Promise<unknown>>();

  constructor(size: number, launchers: LauncherPool, binaries: RuntimeConfig['binaries'], log: Logger) {
    this.#size = size;
    this.#launchers = launchers;
    this.#init = binaries.init;
    this.#log = log;
  }

  /** A warm PID 1, if one is ready. The caller refills (fill()) once its create is done, not during it. */
  take(): WarmPid1 | undefined {
    return this.#warm.shift();
  }

  async fill(): Promise<void> {
    while (!this.#closed && this.#warm.length + this.#filling < this.#size) {
      this.#filling++;
      const spawning = this.#spawn();
      this.#spawning.add(spawning);
      try {
        const w = await spawning;
        // After close() began, push it anyway: close() waits for this spawn and then ends and reaps it.
        this.#warm.push(w);
      } catch (err) {
        this.#log.warn({ err, step: 'warm sandbox PID 1' }, 'could not warm a sandbox PID 1; creates start one cold');
        return;
      } finally {
        this.#filling--;
        this.#spawning.delete(spawning);
      }
    }
  }

  async #spawn(): Promise<WarmPid1> {
    const site = { sandbox: '(warm pool)', step: 'warm sandbox PID 1' };
    const [goRead, goWrite] = pipe(site);
    const [readyRead, readyWrite] = pipe(site);
    const devnull = open('/dev/null', O_WRONLY | O_CLOEXEC, 0, site);
    try {
      // Child fds: 3 = go, 4 = ready, 5 = "started" (the launcher's own pipe).
      const result = await this.#launchers.launch({
        kind: 'pid1',
        sandbox: site.sandbox,
        hostname: 'sandpit-warm',
        file: this.#init,
        argv: ['sandpit-init', 'warm', '5', '3', '4'],
        extraFds: [goRead, readyWrite],
        readyFd: 5,
        readyWord: 'started',
        log: devnull,
      });
      if (result.error) throw new SandpitError(result.error);
      return { pid: result.pid!, go: goWrite, ready: readyRead };
    } catch (err) {
      close(goWrite);
      close(readyRead);
      throw err;
    } finally {
      for (const fd of [goRead, readyWrite, devnull]) close(fd);
    }
  }

  /** Closing its pipe ends a warm PID 1 (EOF before a hostname). The caller reaps it. */
  static discard(w: WarmPid1): void {
    close(w.go);
    close(w.ready);
  }

  /**
   * Ends every warm PID 1 and reaps it, including one whose spawn was under
   * way: an unreaped one would stay a zombie that still pins its PID namespace.
   */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#spawning]);
    await new Promise((r) => setImmediate(r)); // let fill() push what those spawns made
    const all = this.#warm.splice(0);
    for (const w of all) WarmPid1Pool.discard(w);
    const pending = new Set(all.map((w) => w.pid));
    const deadline = Date.now() + 5000;
    while (pending.size && Date.now() < deadline) {
      for (const pid of pending) if (reapChild(pid, { step: 'reap warm PID 1' }) !== null) pending.delete(pid);
      if (pending.size) await new Promise((r) => setTimeout(r, 5));
    }
  }
}

/** Reads "ready" from a warm PID 1 without blocking the event loop (on libuv's pool; a pipe read needs no namespace). */
export function awaitReady(fd: number, site: { sandbox: string; step: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    readCb(fd, Buffer.alloc(16), 0, 16, null, (err, n, buf) => {
      if (err)
        reject(new SandpitError({ ...site, message: `reading PID 1's ready signal: ${err.message}`, cause: err }));
      else if (n <= 0 || !buf.toString('utf8', 0, n).includes('ready'))
        reject(new SandpitError({ ...site, message: 'PID 1 exited before it was ready' }));
      else resolve();
    });
  });
}
