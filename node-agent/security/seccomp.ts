import { SYSCALLS_X86_64 } from './syscalls-x86_64.js';

/*
 * The default seccomp filter, built as classic BPF. Same effect as Docker's
 * profile on x86_64: deny by default with EPERM, an allow list of everything
 * except the syscalls that reach outside the container (mount family,
 * namespaces, keyring, bpf, perf, kexec, modules, reboot, clock setting, ...),
 * clone only without namespace flags, clone3 -> ENOSYS so libc falls back to
 * clone, AF_ALG/AF_VSOCK sockets refused, and ENOSYS for any syscall number
 * newer than this table so that new libcs degrade gracefully instead of
 * seeing EPERM. Syscalls gated on a capability are allowed when it is granted.
 */

const BLOCKED = [
  '_sysctl',
  'acct',
  'add_key',
  'keyctl',
  'request_key',
  'bpf',
  'clock_settime',
  'settimeofday',
  'create_module',
  'init_module',
  'finit_module',
  'delete_module',
  'query_module',
  'get_kernel_syms',
  'fanotify_init',
  'fsconfig',
  'fsmount',
  'fsopen',
  'fspick',
  'open_tree',
  'move_mount',
  'mount',
  'mount_setattr',
  'umount2',
  'pivot_root',
  'unshare',
  'setns',
  'sethostname',
  'setdomainname',
  'get_mempolicy',
  'set_mempolicy',
  'set_mempolicy_home_node',
  'mbind',
  'migrate_pages',
  'move_pages',
  'io_uring_setup',
  'io_uring_enter',
  'io_uring_register',
  'ioperm',
  'iopl',
  'kcmp',
  'kexec_load',
  'kexec_file_load',
  'lookup_dcookie',
  'nfsservctl',
  'open_by_handle_at',
  'perf_event_open',
  'pidfd_getfd',
  'process_madvise',
  'quotactl',
  'quotactl_fd',
  'reboot',
  'swapon',
  'swapoff',
  'sysfs',
  'syslog',
  'uselib',
  'userfaultfd',
  'ustat',
  'vhangup',
  'afs_syscall',
  'getpmsg',
  'putpmsg',
  'security',
  'tuxcall',
  'vserver',
  'clone3',
  'clone',
  'socket',
  'personality',
];

/** Syscalls a capability re-enables, as Docker's profile does. */
const CAP_GATED: Record<string, string[]> = {
  SYS_ADMIN: [
    'fanotify_init',
    'fsconfig',
    'fsmount',
    'fsopen',
    'fspick',
    'open_tree',
    'move_mount',
    'mount',
    'mount_setattr',
    'umount2',
    'unshare',
    'setns',
    'sethostname',
    'setdomainname',
    'quotactl',
    'quotactl_fd',
    'lookup_dcookie',
    'perf_event_open',
    'bpf',
    'syslog',
    'pivot_root',
  ],
  SYS_PTRACE: ['kcmp', 'pidfd_getfd', 'process_madvise'],
  SYS_BOOT: ['reboot'],
  SYS_MODULE: ['init_module', 'finit_module', 'delete_module'],
  SYS_PACCT: ['acct'],
  SYS_RAWIO: ['iopl', 'ioperm'],
  SYS_TIME: ['settimeofday', 'clock_settime'],
  SYS_TTY_CONFIG: ['vhangup'],
  SYS_NICE: ['get_mempolicy', 'set_mempolicy', 'mbind', 'set_mempolicy_home_node'],
  SYSLOG: ['syslog'],
  BPF: ['bpf'],
  PERFMON: ['perf_event_open'],
  DAC_READ_SEARCH: ['open_by_handle_at'],
};

const AUDIT_ARCH_X86_64 = 0xc000003e;
const X32_SYSCALL_BIT = 0x40000000;
const CLONE_NS_FLAGS = 0x7e020000; // NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
const AF_ALG = 38;
const AF_VSOCK = 40;
const PERSONALITIES = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff];
const EPERM = 1;
const ENOSYS = 38;

const RET_ALLOW = 0x7fff0000;
const RET_ERRNO = 0x00050000;

const LD_W_ABS = 0x20;
const JEQ = 0x15;
const JGT = 0x25;
const JGE = 0x35;
const JSET = 0x45;
const RET = 0x06;

interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}
const stmt = (code: number, k: number): Insn => ({ code, jt: 0, jf: 0, k });
const jump = (code: number, k: number, jt: number, jf: number): Insn => ({ code, jt, jf, k });

/** Names of syscalls allowed for a container holding `caps`. */
export function allowedSyscalls(caps: string[]): string[] {
  const blocked = new Set(BLOCKED);
  for (const cap of caps) for (const s of CAP_GATED[cap] ?? []) blocked.delete(s);
  return Object.keys(SYSCALLS_X86_64).filter((n) => !blocked.has(n));
}

/** Builds the filter for a container holding `caps`; returns sock_filter[] bytes. */
export function buildSeccompFilter(caps: string[]): Buffer {
  const sysAdmin = caps.includes('SYS_ADMIN');
  const nr = (name: string) => SYSCALLS_X86_64[name]!;
  const maxKnown = Math.max(...Object.values(SYSCALLS_X86_64));
  const p: Insn[] = [];
  const errno = (e: number) => stmt(RET, RET_ERRNO | e);
  const allow = stmt(RET, RET_ALLOW);

  p.push(stmt(LD_W_ABS, 4));
  p.push(jump(JEQ, AUDIT_ARCH_X86_64, 1, 0));
  p.push(errno(EPERM)); // i386 and other ABIs are not offered to containers
  p.push(stmt(LD_W_ABS, 0));
  p.push(jump(JGE, X32_SYSCALL_BIT, 0, 1));
  p.push(errno(EPERM));
  p.push(jump(JGT, maxKnown, 0, 1));
  p.push(errno(ENOSYS));
  // clone3 cannot be argument-filtered (its flags live in memory): ENOSYS makes libc use clone.
  p.push(jump(JEQ, nr('clone3'), 0, 1));
  p.push(sysAdmin ? allow : errno(ENOSYS));
  // clone: refuse namespace flags unless CAP_SYS_ADMIN.
  p.push(jump(JEQ, nr('clone'), 0, 4));
  p.push(stmt(LD_W_ABS, 16));
  p.push(jump(JSET, sysAdmin ? 0 : CLONE_NS_FLAGS, 0, 1));
  p.push(errno(EPERM));
  p.push(allow);
  // socket: no AF_ALG, no AF_VSOCK.
  p.push(jump(JEQ, nr('socket'), 0, 5));
  p.push(stmt(LD_W_ABS, 16));
  p.push(jump(JEQ, AF_ALG, 2, 0));
  p.push(jump(JEQ, AF_VSOCK, 1, 0));
  p.push(allow);
  p.push(errno(EPERM));
  // personality: only the harmless personas.
  p.push(jump(JEQ, nr('personality'), 0, PERSONALITIES.length + 3));
  p.push(stmt(LD_W_ABS, 16));
  PERSONALITIES.forEach((v, i) => p.push(jump(JEQ, v, PERSONALITIES.length - i, 0)));
  p.push(errno(EPERM));
  p.push(allow);
  // Everything else: the allow list as ranges of consecutive numbers.
  p.push(stmt(LD_W_ABS, 0));
  const numbers = [...new Set(allowedSyscalls(caps).map(nr))].sort((a, b) => a - b);
  for (let i = 0; i < numbers.length;) {
    let j = i;
    while (j + 1 < numbers.length && numbers[j + 1] === numbers[j]! + 1) j++;
    const lo = numbers[i]!;
    const hi = numbers[j]!;
    if (lo === hi) p.push(jump(JEQ, lo, 0, 1));
    else {
      p.push(jump(JGE, lo, 0, 2));
      p.push(jump(JGT, hi, 1, 0));
    }
    p.push(allow);
    i = j + 1;
  }
  p.push(errno(EPERM));

  const buf = Buffer.alloc(p.length * 8);
  p.forEach((ins, i) => {
    buf.writeUInt16LE(ins.code, i * 8);
    buf.writeUInt8(ins.jt, i * 8 + 2);
    buf.writeUInt8(ins.jf, i * 8 + 3);
    buf.writeUInt32LE(ins.k >>> 0, i * 8 + 4);
  });
  return buf;
}
