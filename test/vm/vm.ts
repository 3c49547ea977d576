import { spawn } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { Writable } from 'node:stream';
import { join } from 'node:path';
import { ensureGuestKernel } from './kernel.js';

/*
 * runInCgroupV2Vm: boots Debian's stock kernel under qemu with
 * `cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1`, so the guest is a pure
 * cgroup v2 host (cgroup2 on /sys/fs/cgroup with nsdelegate, no v1 hierarchy),
 * runs one command in it against the host's own root filesystem (read-only 9p
 * with a tmpfs overlay), streams its stdout/stderr, and returns its exit code.
 *
 * Acceleration. With hardware KVM (kvm_intel / kvm_amd) qemu runs
 * `-enable-kvm -cpu host`. This machine kind's /dev/kvm is PVM (module
 * kvm_pvm), which runs only PVM-enabled guest kernels natively: Debian's
 * stock kernel, booted on it, spent ~200 s in early boot (every instruction
 * emulated) and then died with "KVM internal error … emulation failure" on
 * cmpxchg16b. So on PVM the harness uses qemu's TCG (multi-threaded) and says
 * so; set SANDPIT_VM_ACCEL=kvm|tcg to force one. Without /dev/kvm it fails
 * unless SANDPIT_VM_ACCEL=tcg asks for emulation explicitly.
 */

export interface VmRunOptions {
  /** argv of the command run in the guest. */
  command: string[];
  /** Working directory in the guest (the host's path: the guest sees the host's tree). Default: process.cwd(). */
  cwd?: string;
  /** Extra environment on top of PATH, HOME, LANG, TERM and the SANDPIT_* / CI variables of this process. */
  env?: Record<string, string>;
  /** Whole run, boot included. Default 10 minutes. */
  timeoutMs?: number;
  /** Where to stream the guest command's output as it comes. Default: this process's stdout / stderr; null: do not stream. */
  stdout?: Writable | null;
  stderr?: Writable | null;
  /** Guest memory (MiB, default 3072) and vCPUs (default 2). */
  memoryMiB?: number;
  cpus?: number;
  /** 'systemd' (default): controllers enabled at the root and the command in /init.scope, as on a systemd host. 'bare': nothing enabled, everything in the root. */
  cgroupSetup?: 'systemd' | 'bare';
  /** Progress lines of the harness itself (kernel fetch, accel choice). Default: stderr. SANDPIT_VM_DEBUG=1 also streams the guest's kernel console. */
  log?: (line: string) => void;
}

export interface VmRunResult {
  exitCode: number;
  /** The command's output, captured (also streamed unless stdout/stderr are null). */
  stdout: string;
  stderr: string;
  accel: 'kvm' | 'tcg';
  durationMs: number;
  /** The guest kernel's log at the end of the run (dmesg). */
  dmesg: string;
}

export class VmError extends Error {
  constructor(
    message: string,
    readonly console?: string,
  ) {
    super(
      console
        ? `${message}\n--- guest console (last 60 lines) ---\n${console.split('\n').slice(-60).join('\n')}`
        : message,
    );
    this.name = 'VmError';
  }
}

export type Accel = { accel: 'kvm' | 'tcg'; why: string };

export function chooseAccel(): Accel {
  const forced = process.env.SANDPIT_VM_ACCEL;
  if (forced === 'tcg') return { accel: 'tcg', why: 'SANDPIT_VM_ACCEL=tcg' };
  let kvmUsable = false;
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    kvmUsable = true;
  } catch {
    /* below */
  }
  if (forced === 'kvm') {
    if (!kvmUsable) throw new VmError('SANDPIT_VM_ACCEL=kvm but /dev/kvm is missing or not read-writable');
    return { accel: 'kvm', why: 'SANDPIT_VM_ACCEL=kvm' };
  }
  if (!kvmUsable) {
    throw new VmError(
      'cgroup v2 VM: /dev/kvm is missing or not read-writable, so the VM cannot run accelerated. ' +
        'Run on a machine with KVM, or set SANDPIT_VM_ACCEL=tcg to use (slow) full emulation.',
    );
  }
  const hw = existsSync('/sys/module/kvm_intel') || existsSync('/sys/module/kvm_amd');
  if (hw) return { accel: 'kvm', why: 'hardware KVM (kvm_intel/kvm_amd)' };
  if (existsSync('/sys/module/kvm_pvm')) {
    return {
      accel: 'tcg',
      why: '/dev/kvm is PVM (kvm_pvm), which cannot run a stock Debian kernel; using TCG emulation',
    };
  }
  return { accel: 'kvm', why: '/dev/kvm present' };
}

/**
 * Env for tests run in the guest: SANDPIT_TEST_TIMEOUT_SCALE tells tests how much
 * slower than native this guest is (10 under TCG), for tests that scale their waits.
 */
export function TIMEOUT_SCALE_ENV(accel: 'kvm' | 'tcg'): Record<string, string> {
  return { SANDPIT_TEST_TIMEOUT_SCALE: accel === 'tcg' ? '10' : '1' };
}

const INHERITED = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TERM', 'CI', 'NODE_OPTIONS'];

export async function runInCgroupV2Vm(opts: VmRunOptions): Promise<VmRunResult> {
  const started = Date.now();
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  if (!opts.command.length) throw new VmError('runInCgroupV2Vm: empty command');
  const { accel, why } = chooseAccel();
  log(`vm: accel ${accel} (${why})`);
  const kernel = ensureGuestKernel(log);
  for (const p of [kernel.modules])
    if (/\s/.test(p)) throw new VmError(`path with whitespace cannot go on the kernel command line: ${p}`);

  const cwd = opts.cwd ?? process.cwd();
  // The path goes on the kernel command line and into a qemu -virtfs option.
  if (/[\s,]/.test(cwd))
    throw new VmError(
      `the working directory ${cwd} has white space or a comma, which qemu's -virtfs and the kernel command line cannot carry`,
    );
  const env: Record<string, string> = {};
  for (const k of INHERITED) if (process.env[k] !== undefined) env[k] = process.env[k] as string;
  for (const [k, v] of Object.entries(process.env))
    if (k.startsWith('SANDPIT_') && !k.startsWith('SANDPIT_VM_') && v !== undefined) env[k] = v;
  Object.assign(env, opts.env ?? {});

  const debug = process.env.SANDPIT_VM_DEBUG === '1';
  const io = mkdtempSync(join(tmpdir(), 'sandpit-vm-'));
  try {
    const script = [
      `cd ${shq(cwd)} || exit 125`,
      ...Object.entries(env).map(([k, v]) => {
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new VmError(`bad environment variable name: ${k}`);
        return `export ${k}=${shq(v)}`;
      }),
      `exec ${opts.command.map(shq).join(' ')}`,
      '',
    ].join('\n');
    writeFileSync(join(io, 'cmd.sh'), script);

    const append = [
      'console=ttyS0',
      debug ? 'loglevel=7' : 'loglevel=4',
      'panic=-1',
      'reboot=t',
      'cgroup_no_v1=all',
      'systemd.unified_cgroup_hierarchy=1',
      'rdinit=/init',
      'tsc=reliable',
      `sandpit.release=${kernel.release}`,
      `sandpit.moddir=${kernel.modules}`,
      `sandpit.cgsetup=${opts.cgroupSetup ?? 'systemd'}`,
      // "/" is the host root itself; anything else gets its own share (see initramfs.ts).
      ...(cwd === '/' ? [] : [`sandpit.cwd=${cwd}`]),
    ].join(' ');
    const args = [
      '-M',
      'pc',
      ...(accel === 'kvm' ? ['-enable-kvm', '-cpu', 'host'] : ['-accel', 'tcg,thread=multi', '-cpu', 'max']),
      '-m',
      String(opts.memoryMiB ?? 3072),
      '-smp',
      String(opts.cpus ?? 2),
      '-nodefaults',
      '-no-user-config',
      '-display',
      'none',
      '-monitor',
      'none',
      '-no-reboot',
      '-nic',
      'none',
      '-kernel',
      kernel.vmlinuz,
      '-initrd',
      kernel.initramfs,
      '-append',
      append,
      // The kernel console: kept in console.log for error reports; SANDPIT_VM_DEBUG=1 also streams it.
      ...(debug
        ? ['-chardev', `stdio,id=con,signal=off,logfile=${join(io, 'console.log')}`, '-serial', 'chardev:con']
        : ['-serial', `file:${join(io, 'console.log')}`]),
      '-virtfs',
      'local,path=/,mount_tag=hostroot,security_model=passthrough,readonly=on,multidevs=remap',
      '-virtfs',
      `local,path=${io},mount_tag=sandpitio,security_model=passthrough`,
      ...(cwd === '/'
        ? []
        : ['-virtfs', `local,path=${cwd},mount_tag=sandpitcwd,security_model=passthrough,readonly=on,multidevs=remap`]),
      '-device',
      'virtio-serial-pci',
      '-chardev',
      `socket,id=out,path=${join(io, 'stdout.sock')}`,
      '-device',
      'virtserialport,chardev=out,name=sandpit.stdout',
      '-chardev',
      `socket,id=err,path=${join(io, 'stderr.sock')}`,
      '-device',
      'virtserialport,chardev=err,name=sandpit.stderr',
    ];
    // The guest's stdout/stderr arrive on two unix sockets qemu connects to at start.
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const stdoutSink = opts.stdout === undefined ? process.stdout : opts.stdout;
    const stderrSink = opts.stderr === undefined ? process.stderr : opts.stderr;
    const outPort = await listen(join(io, 'stdout.sock'), (b) => {
      out.push(b);
      stdoutSink?.write(b);
    });
    const errPort = await listen(join(io, 'stderr.sock'), (b) => {
      err.push(b);
      stderrSink?.write(b);
    });
    const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let qemuDiag = '';
    child.stdout?.on('data', (b: Buffer) => {
      if (debug) process.stderr.write(b);
      else qemuDiag += b.toString();
    });
    child.stderr?.on('data', (b: Buffer) => {
      if (debug) process.stderr.write(b);
      qemuDiag += b.toString();
    });
    const streamsDone = Promise.all([outPort.done, errPort.done]);

    // If this process dies first, the VM goes too: only the qemu we started.
    const onExit = () => child.kill('SIGKILL');
    process.once('exit', onExit);
    const timeoutMs = opts.timeoutMs ?? 10 * 60_000;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5_000).unref();
    }, timeoutMs);
    const status = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      child.on('error', (e) =>
        reject(
          new VmError(
            `cannot start qemu-system-x86_64 (install qemu-system-x86, listed in .ci/packages/vm.txt): ${e.message}`,
          ),
        ),
      );
      child.on('exit', (code, signal) => resolve({ code, signal }));
    }).finally(() => {
      clearTimeout(timer);
      process.removeListener('exit', onExit);
    });
    await Promise.race([streamsDone, new Promise((r) => setTimeout(r, 2_000))]);
    outPort.close();
    errPort.close();

    const consoleLog = readIf(join(io, 'console.log'));
    const dmesg = readIf(join(io, 'dmesg.txt'));
    if (timedOut)
      throw new VmError(
        `cgroup v2 VM: timed out after ${timeoutMs} ms running ${opts.command.join(' ')}`,
        consoleLog + dmesg,
      );
    const exitText = readIf(join(io, 'exit')).trim();
    if (!/^\d+$/.test(exitText)) {
      throw new VmError(
        `cgroup v2 VM: the guest ended without an exit code (qemu exit ${status.code ?? status.signal}) ${qemuDiag.trim()}`,
        consoleLog,
      );
    }
    return {
      exitCode: Number(exitText),
      stdout: Buffer.concat(out).toString(),
      stderr: Buffer.concat(err).toString(),
      accel,
      durationMs: Date.now() - started,
      dmesg,
    };
  } finally {
    rmSync(io, { recursive: true, force: true });
  }
}

/** A one-connection unix socket server; `done` resolves when that connection ends. */
async function listen(path: string, onData: (b: Buffer) => void): Promise<{ done: Promise<void>; close(): void }> {
  let conn: Socket | undefined;
  let ended!: () => void;
  const done = new Promise<void>((r) => (ended = r));
  const server: Server = createServer((c) => {
    conn = c;
    c.on('data', onData);
    c.on('close', () => ended());
    c.on('error', () => ended());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  return {
    done,
    close() {
      conn?.destroy();
      server.close();
    },
  };
}

function readIf(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** Single-quotes for sh. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
