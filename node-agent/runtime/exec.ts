import type { Readable } from 'node:stream';
import { join } from 'node:path';
import { ReadStream, WriteStream } from 'node:tty';
import { SandpitError } from '../../lib/errors.js';
import { containerCgroup } from '../cgroups/paths.js';
import { describeSandbox } from '../contracts.js';
import type { LaunchResult } from '../namespaces/plans.js';
import { openUserNamespace } from '../namespaces/userns.js';
import { execPipes, pipeHolding } from '../process/exec-io.js';
import { ChildFds, execArgs } from '../process/shim.js';
import { close, dup, reapChild } from '../sys/proc.js';
import { setWindowSize } from '../sys/tty.js';
import { containerCommand, containerIdentity } from './container-identity.js';
import type { RuntimeContext } from './context.js';
import type { ExecSession, SandboxRecord } from './record.js';
import type { ExitStatus } from './transitions.js';

/*
 * A command in a running container: the launcher thread joins all of the
 * container's namespaces (through its shim's /proc entries) and starts
 * sandpit-init in exec mode, which joins the cgroup and the user namespace,
 * takes on the container's credentials, capabilities and filter and becomes
 * the command. The thread serves again afterwards.
 */

/** Starts `argv` in `container` of `rec`, with pipes (or a terminal) for its streams. */
export async function execInContainer(
  ctx: RuntimeContext,
  rec: SandboxRecord,
  container: string,
  argv: string[],
  opts: { tty?: boolean; stdin?: boolean },
): Promise<ExecSession> {
  const { cgroups, store, launchers } = ctx.deps;
  const c = rec.containers.find((x) => x.name === container);
  const who = describeSandbox(rec.ref);
  const site = { sandbox: who, step: `exec in ${container}` };
  // A command started in a frozen cgroup would freeze with it and the client would hang.
  if (rec.phase === 'Paused' || cgroups.frozen(rec.id))
    throw new SandpitError({
      ...site,
      message: 'the sandbox is paused',
      hint: 'set spec.paused=false to exec',
      reason: 'SandboxPaused',
    });
  if (!c || c.pid === undefined) throw new SandpitError({ ...site, message: `container ${container} is not running` });
  const spec = rec.spec.containers.find((x) => x.name === container)!;
  const image = rec.images[container]!;
  const identity = containerIdentity(ctx.config, spec, image, site);
  const { env } = containerCommand(rec.hostname, spec, image, site);
  if (!argv.length) throw new SandpitError({ ...site, message: 'no command to run' });
  const io = execPipes({ stdin: opts.stdin ?? false }, site);
  const held: number[] = [];
  let result: LaunchResult;
  try {
    const cgFds = cgroups.openProcs(containerCgroup(rec.id, container), site);
    held.push(...cgFds);
    const filterFd = identity.seccomp ? pipeHolding(identity.seccomp, site) : undefined;
    if (filterFd !== undefined) held.push(filterFd);
    const usernsFd = rec.userns ? openUserNamespace(join(store.sandboxDir(rec.id), 'userns'), site) : undefined;
    if (usernsFd !== undefined) held.push(usernsFd);
    const child = new ChildFds();
    const args = execArgs(
      {
        cgroups: cgFds.map((fd) => child.place(fd)),
        seccomp: child.placeOptional(filterFd),
        userns: child.placeOptional(usernsFd),
      },
      opts.tty ?? false,
      identity,
      argv,
    );
    result = await launchers.launch({
      kind: 'process',
      sandbox: who,
      step: site.step,
      nsPid: c.pid,
      joinMount: true,
      joinPid: true,
      program: ctx.config.binaries.init,
      argv0: 'sandpit-init',
      args: args.args,
      resolveAt: args.pathAt,
      env,
      cwd: spec.workingDir ?? image.config.workingDir ?? '/',
      stdio: io.child,
      extraFds: child.fds,
      tty: opts.tty ?? false,
      ttyOwner: (rec.userns?.base ?? 0) + identity.uid,
    });
  } finally {
    for (const fd of [...io.child, ...held]) close(fd);
  }
  const pipes = [io.stdin, io.stdout, io.stderr];
  if (result.error) {
    for (const s of pipes) s?.destroy();
    throw new SandpitError(result.error);
  }
  const pid = result.pid!;
  const exited = reaped(pid, site);
  if (result.ptyMaster === undefined) {
    const streams = { stdin: io.stdin, stdout: io.stdout, stderr: io.stderr };
    return { pid, ...streams, exited, drained: closed([io.stdout, io.stderr]), resize: () => undefined };
  }
  for (const s of pipes) s?.destroy();
  const master = result.ptyMaster;
  // A pty master is a TTY to libuv: net.Socket refuses it, the tty streams take it.
  const input = new WriteStream(dup(master, site));
  const output = new ReadStream(master);
  output.on('error', () => output.destroy()); // EIO once the last slave fd closes
  const resize = (cols: number, rows: number) => {
    try {
      setWindowSize(master, cols, rows, site);
    } catch {
      /* the session ended and the master is closed */
    }
  };
  return { pid, stdin: input, stdout: output, stderr: null, exited, drained: closed([output]), resize };
}

/** The command's exit, once it is reaped (it is our child: the launcher thread forked it). */
async function reaped(pid: number, site: { sandbox: string; step: string }): Promise<ExitStatus> {
  for (;;) {
    const r = reapChild(pid, site);
    if (r && r !== 'not-child')
      return r.code === 1 ? { exitCode: r.status } : { exitCode: 128 + r.status, signal: r.status };
    await new Promise((res) => setTimeout(res, 10));
  }
}

/** Resolves once every one of `streams` is closed: what was written to them has been read, or they were destroyed. */
function closed(streams: (Readable | null)[]): Promise<void> {
  return Promise.all(
    streams.map((s) => (s === null || s.closed ? undefined : new Promise<void>((res) => s.once('close', () => res())))),
  ).then(() => undefined);
}
