/*
 * sandpit-init: the only processes sandpit keeps per sandbox.
 *
 *   sandpit-init init READY_FD SANDBOX_FDS INFRA_FDS
 *     The sandbox's PID 1. Joins the sandbox cgroup (writes "0" into the
 *     cgroup.procs fds the agent opened), makes a cgroup namespace rooted there
 *     and the "infra" mount namespace (slave propagation, a /proc of the
 *     sandbox's PID namespace: only a process inside it can mount one), moves
 *     into the infra leaf cgroup, confines itself (confine(): the infra mount
 *     namespace kept as fd 0, its own empty read-only root, uid 65535, no
 *     capabilities, no_new_privs, a reaper's seccomp filter), says "ready" and
 *     then reaps zombies until it is killed (SIGTERM/SIGINT end it like a
 *     pause container).
 *
 *   sandpit-init warm STARTED_FD GO_FD READY_FD
 *     A sandbox PID 1 made ahead of time (the agent keeps a few): already in
 *     its new pid/net/ipc/uts namespaces, it says "started" and blocks on
 *     GO_FD. The agent moves it into the new sandbox's cgroup and writes the
 *     hostname and a newline; it sets the hostname, builds the cgroup and
 *     infra mount namespaces and confines itself as init does, says "ready"
 *     on READY_FD and reaps.
 *     EOF on GO_FD (the agent stopped or died) ends it.
 *
 *   sandpit-init pidns READY_FD CGROUP_FDS PROC_TARGET
 *     PID 1 of a container's own PID namespace (shareProcessNamespace: false).
 *     Started by the launcher thread right after unshare(CLONE_NEWPID), in the
 *     container's mount namespace before pivot_root: joins the container
 *     cgroup, mounts that namespace's /proc at PROC_TARGET (only a process
 *     inside it can), confines itself like init (no namespace kept), says
 *     "ready" and reaps like init. The shim is its child.
 *
 *   sandpit-init shim EXIT_FD CGROUP_FDS OOM_SCORE_ADJ NOFILE_SOFT NOFILE_HARD
 *                     USERNS_FD UID GID GROUPS CAPS NNP SECCOMP_FD -- PATH ARGV0 ARGS...
 *     One per container run, started as /proc/self/fd/3 inside the container's
 *     namespaces and root, still as the agent's root. Joins the container
 *     cgroup, sets oom_score_adj and RLIMIT_NOFILE (never above the inherited
 *     hard limit), joins the sandbox's user namespace when USERNS_FD is not
 *     "-" (hostUsers: false; UID, GID and GROUPS are then ids inside it, and
 *     the capabilities are over that namespace only), then becomes the
 *     container's identity: drops every
 *     capability outside CAPS (a decimal bit mask) from the bounding set,
 *     clears the ambient set, installs the seccomp filter read from SECCOMP_FD
 *     (raw sock_filter array, "-" for none), sets groups, gid and uid, the
 *     capability sets (CAPS for uid 0, none otherwise) and no_new_privs when
 *     NNP is 1. Doing this here, not on the agent's launcher thread, leaves
 *     the thread free to step back into the host's namespaces and launch
 *     again. Then it forks and execs the workload, waits, and writes its
 *     status as a shell would report it (code, or 128+signal) into EXIT_FD,
 *     so the status survives an agent restart. Exec failures are 127 (not
 *     found) or 126. For a tty container EXIT_FD is EXIT_FD:PTY_FD: the shim
 *     holds the terminal's master end (the workload does not get it), so the
 *     terminal outlives an agent restart, nothing the workload writes is lost
 *     while no agent reads, and a restarted agent takes the master back with
 *     pidfd_getfd. For a tty container EXIT_FD is EXIT_FD:PTY_FD: the shim
 *     holds the terminal's master end (the workload does not get it), so the
 *     terminal outlives an agent restart, nothing the workload writes is lost
 *     while no agent reads, and a restarted agent takes the master back with
 *     pidfd_getfd.
 *
 *   sandpit-init userns READY_FD GO_FD
 *     Makes a new user namespace and says "ready"; the agent writes its
 *     uid_map and gid_map and bind-mounts /proc/PID/ns/user into the
 *     sandbox's state dir, which keeps the namespace alive without a process.
 *     EOF on GO_FD ends it. The agent cannot do this itself: a multithreaded
 *     process can neither create nor join a user namespace.
 *
 *   sandpit-init exec CGROUP_FDS USERNS_FD TTY UID GID GROUPS CAPS NNP SECCOMP_FD
 *                     -- PATH ARGV0 ARGS...
 *     An exec into a running container, started like the shim inside the
 *     container's namespaces and root: joins the container cgroup, with TTY 1
 *     makes a session whose controlling terminal is fd 0, joins the user
 *     namespace (USERNS_FD, "-" for none), becomes the identity as the shim
 *     does and execs the command itself (the agent reaps it). 127 if the
 *     command is not found, 126 if it cannot be run.
 *
 * FDS lists are comma separated ("-" for none); "-" for OOM_SCORE_ADJ or the
 * limits leaves them alone.
 *
 * Why C and not busybox sh + catatonit (see node-agent/runtime/README.md):
 * those two static glibc programs cost 676 + 1512 KiB of RSS per sandbox, over
 * the 2 MiB budget, and the PID 1 chain of four execs cost 20-65 ms of every
 * create. This program uses no libc at all (raw system calls, -nostdlib), so it
 * maps a few pages and starts in well under a millisecond.
 */

typedef unsigned long u64;
typedef long s64;

#if defined(__x86_64__)
enum {
  NR_read = 0, NR_write = 1, NR_close = 3, NR_rt_sigprocmask = 14, NR_fork_clone = 56, NR_execve = 59,
  NR_exit = 60, NR_wait4 = 61, NR_kill = 62, NR_getpid = 39, NR_rt_sigtimedwait = 128, NR_mount = 165,
  NR_exit_group = 231, NR_openat = 257, NR_unshare = 272, NR_prlimit64 = 302, NR_sethostname = 170,
  NR_prctl = 157, NR_seccomp = 317, NR_setgroups = 116, NR_setresgid = 119, NR_setresuid = 117, NR_capset = 126,
  NR_setns = 308, NR_setsid = 112, NR_ioctl = 16, NR_chdir = 80, NR_pivot_root = 155, NR_umount2 = 166,
  NR_dup3 = 292, NR_rt_sigreturn = 15, NR_restart_syscall = 219,
};
#define AUDIT_ARCH 0xc000003eU /* AUDIT_ARCH_X86_64 */
static s64 sys6(s64 n, s64 a, s64 b, s64 c, s64 d, s64 e, s64 f) {
  s64 ret;
  register s64 r10 __asm__("r10") = d;
  register s64 r8 __asm__("r8") = e;
  register s64 r9 __asm__("r9") = f;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9) : "rcx", "r11", "memory");
  return ret;
}
__asm__(".text\n.global _start\n_start:\n xor %rbp,%rbp\n mov %rsp,%rdi\n and $-16,%rsp\n call start_c\n hlt\n");
#elif defined(__aarch64__)
enum {
  NR_read = 63, NR_write = 64, NR_close = 57, NR_rt_sigprocmask = 135, NR_fork_clone = 220, NR_execve = 221,
  NR_exit = 93, NR_wait4 = 260, NR_kill = 129, NR_getpid = 172, NR_rt_sigtimedwait = 137, NR_mount = 40,
  NR_exit_group = 94, NR_openat = 56, NR_unshare = 97, NR_prlimit64 = 261, NR_sethostname = 161,
  NR_prctl = 167, NR_seccomp = 277, NR_setgroups = 159, NR_setresgid = 149, NR_setresuid = 147, NR_capset = 91,
  NR_setns = 268, NR_setsid = 157, NR_ioctl = 29, NR_chdir = 49, NR_pivot_root = 41, NR_umount2 = 39,
  NR_dup3 = 24, NR_rt_sigreturn = 139, NR_restart_syscall = 128,
};
#define AUDIT_ARCH 0xc00000b7U /* AUDIT_ARCH_AARCH64 */
static s64 sys6(s64 n, s64 a, s64 b, s64 c, s64 d, s64 e, s64 f) {
  register s64 x8 __asm__("x8") = n;
  register s64 x0 __asm__("x0") = a;
  register s64 x1 __asm__("x1") = b;
  register s64 x2 __asm__("x2") = c;
  register s64 x3 __asm__("x3") = d;
  register s64 x4 __asm__("x4") = e;
  register s64 x5 __asm__("x5") = f;
  __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
  return x0;
}
__asm__(".text\n.global _start\n_start:\n mov x29, #0\n mov x30, #0\n mov x0, sp\n and sp, x0, #-16\n bl start_c\n");
#else
#error "sandpit-init: unsupported architecture"
#endif

#define sys1(n, a) sys6(n, (s64)(a), 0, 0, 0, 0, 0)
#define sys2(n, a, b) sys6(n, (s64)(a), (s64)(b), 0, 0, 0, 0)
#define sys3(n, a, b, c) sys6(n, (s64)(a), (s64)(b), (s64)(c), 0, 0, 0)
#define sys4(n, a, b, c, d) sys6(n, (s64)(a), (s64)(b), (s64)(c), (s64)(d), 0, 0)
#define sys5(n, a, b, c, d, e) sys6(n, (s64)(a), (s64)(b), (s64)(c), (s64)(d), (s64)(e), 0)

#define AT_FDCWD (-100)
#define O_WRONLY 01
#define O_CLOEXEC 02000000
#define CLONE_NEWNS 0x00020000
#define CLONE_NEWCGROUP 0x02000000
#define CLONE_NEWUSER 0x10000000
#define TIOCSCTTY 0x540E
#define O_RDONLY 0
#define MS_RDONLY 1
#define MS_NOSUID 2
#define MS_NODEV 4
#define MS_NOEXEC 8
#define MS_REC 16384
#define MS_PRIVATE (1 << 18)
#define MS_SLAVE (1 << 19)
#define MNT_DETACH 2
#define SIGINT 2
#define SIGTERM 15
#define SIGCHLD 17
#define WNOHANG 1
#define EINTR 4
#define EAGAIN 11
#define ENOENT 2
#define ENOTDIR 20
#define RLIMIT_NOFILE 7
#define EINVAL 22
#define PR_SET_DUMPABLE 4
#define PR_CAPBSET_DROP 24
#define PR_SET_NO_NEW_PRIVS 38
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#define SECCOMP_SET_MODE_FILTER 1
#define MAX_FILTER_BYTES (4096 * 8) /* BPF_MAXINSNS sock_filter entries */
#define MAX_GROUPS 64

/* gcc may emit calls to these even in freestanding code. */
void *memset(void *d, int c, u64 n) {
  unsigned char *p = d;
  while (n--) *p++ = (unsigned char)c;
  return d;
}
void *memcpy(void *d, const void *s, u64 n) {
  unsigned char *p = d;
  const unsigned char *q = s;
  while (n--) *p++ = *q++;
  return d;
}

static u64 slen(const char *s) {
  u64 n = 0;
  while (s[n]) n++;
  return n;
}
static int seq(const char *a, const char *b) {
  while (*a && *a == *b) a++, b++;
  return *a == *b;
}
static void put(int fd, const char *s) { sys3(NR_write, fd, s, slen(s)); }
static char *fmt(char *end, s64 v) { /* writes decimal ending at end (exclusive), returns start */
  int neg = v < 0;
  u64 u = neg ? (u64)(-v) : (u64)v;
  *--end = 0;
  do *--end = (char)('0' + u % 10); while (u /= 10);
  if (neg) *--end = '-';
  return end;
}
static __attribute__((noreturn)) void quit(int code) {
  for (;;) sys1(NR_exit_group, code);
}
static __attribute__((noreturn)) void die(const char *what, s64 err) {
  char buf[24];
  put(2, "sandpit-init: ");
  put(2, what);
  put(2, ": errno ");
  put(2, fmt(buf + sizeof buf, -err));
  put(2, "\n");
  quit(125);
}
static s64 num(const char *s, int *ok) {
  s64 v = 0;
  int neg = *s == '-';
  if (neg) s++;
  *ok = *s != 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') *ok = 0;
    v = v * 10 + (*s - '0');
  }
  return neg ? -v : v;
}
/* Writes "0" into each cgroup.procs fd of a comma-separated list and closes it. */
static void join_cgroups(const char *list) {
  char buf[16];
  int i = 0, ok;
  if (seq(list, "-")) return;
  for (const char *p = list;; p++) {
    if (*p == ',' || *p == 0) {
      buf[i] = 0;
      s64 fd = num(buf, &ok);
      if (!ok) die("bad fd list", -22);
      s64 r = sys3(NR_write, fd, "0", 1);
      if (r < 0) die("join cgroup", r);
      sys1(NR_close, fd);
      i = 0;
      if (*p == 0) break;
    } else if (i < 15) {
      buf[i++] = *p;
    }
  }
}

struct ksigset { u64 bits; };
struct rlim { u64 cur, max; };

static __attribute__((noreturn)) void reap_forever(s64 ready);
static void infra_namespaces(void);
static void confine(const char *mountpoint, int keep_mnt_ns);

static __attribute__((noreturn)) void run_init(char **argv) {
  int ok;
  if (!argv[0] || !argv[1] || !argv[2]) die("usage: init READY_FD SANDBOX_FDS INFRA_FDS", -22);
  s64 ready = num(argv[0], &ok);
  if (!ok) die("bad ready fd", -22);
  join_cgroups(argv[1]);
  infra_namespaces();
  join_cgroups(argv[2]);
  confine("/proc", 1);
  reap_forever(ready);
}

/* A cgroup namespace rooted where we are now, and the infra mount namespace with the sandbox's /proc. */
static void infra_namespaces(void) {
  s64 r = sys1(NR_unshare, CLONE_NEWCGROUP | CLONE_NEWNS);
  if (r < 0) die("unshare cgroup+mount namespaces", r);
  r = sys5(NR_mount, 0, "/", 0, MS_SLAVE | MS_REC, 0);
  if (r < 0) die("make / rslave", r);
  r = sys5(NR_mount, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, 0);
  if (r < 0) die("mount /proc of the sandbox", r);
}

static __attribute__((noreturn)) void run_warm(char **argv) {
  int ok1, ok2, ok3;
  if (!argv[0] || !argv[1] || !argv[2]) die("usage: warm STARTED_FD GO_FD READY_FD", -22);
  s64 started = num(argv[0], &ok1), go = num(argv[1], &ok2), ready = num(argv[2], &ok3);
  if (!ok1 || !ok2 || !ok3) die("bad fd", -22);
  sys3(NR_write, started, "started\n", 8);
  sys1(NR_close, started);
  char name[80];
  u64 n = 0;
  for (;;) {
    s64 r = sys3(NR_read, go, name + n, sizeof name - 1 - n);
    if (r == -EINTR) continue;
    if (r <= 0) quit(0); /* the agent is gone: nobody will use this one */
    n += (u64)r;
    if (name[n - 1] == '\n' || n == sizeof name - 1) break;
  }
  sys1(NR_close, go);
  if (name[n - 1] == '\n') n--;
  s64 r = sys2(NR_sethostname, name, n);
  if (r < 0) die("sethostname", r);
  infra_namespaces();
  confine("/proc", 1);
  reap_forever(ready);
}

/* Says ready, then reaps zombies until SIGTERM/SIGINT. Signals are taken synchronously. */
static __attribute__((noreturn)) void reap_forever(s64 ready) {
  struct ksigset all = {~0UL}, wanted = {(1UL << (SIGCHLD - 1)) | (1UL << (SIGTERM - 1)) | (1UL << (SIGINT - 1))};
  sys4(NR_rt_sigprocmask, 0 /* SIG_BLOCK */, &all, 0, 8);
  sys3(NR_write, ready, "ready\n", 6);
  sys1(NR_close, ready);
  for (;;) {
    while (sys4(NR_wait4, -1, 0, WNOHANG, 0) > 0) {
    }
    unsigned char info[128];
    s64 sig = sys4(NR_rt_sigtimedwait, &wanted, info, 0, 8);
    if (sig == SIGTERM || sig == SIGINT) quit(0);
  }
}

static __attribute__((noreturn)) void run_pidns(char **argv) {
  int ok;
  if (!argv[0] || !argv[1] || !argv[2]) die("usage: pidns READY_FD CGROUP_FDS PROC_TARGET", -22);
  s64 ready = num(argv[0], &ok);
  if (!ok) die("bad ready fd", -22);
  join_cgroups(argv[1]);
  s64 r = sys5(NR_mount, "proc", argv[2], "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, 0);
  if (r < 0) die("mount /proc of the container", r);
  confine(argv[2], 0);
  reap_forever(ready);
}

struct sock_fprog { unsigned short len; void *filter; };
struct cap_header { unsigned int version; int pid; };
struct cap_data { unsigned int effective, permitted, inheritable; };
static unsigned char filter_bytes[MAX_FILTER_BYTES];

/* Reads the whole filter from fd (a pipe the agent filled and closed) into filter_bytes. */
static u64 read_filter(s64 fd) {
  u64 n = 0;
  for (;;) {
    if (n == sizeof filter_bytes) die("seccomp filter longer than BPF_MAXINSNS", -EINVAL);
    s64 r = sys3(NR_read, fd, filter_bytes + n, sizeof filter_bytes - n);
    if (r == -EINTR) continue;
    if (r < 0) die("read seccomp filter", r);
    if (r == 0) break;
    n += (u64)r;
  }
  sys1(NR_close, fd);
  if (n == 0 || n % 8) die("seccomp filter is not a whole sock_filter array", -EINVAL);
  return n;
}

/* Parses a comma-separated list of gids ("-" for none) into out; returns the count. */
static int parse_groups(const char *list, unsigned int *out) {
  char buf[16];
  int i = 0, count = 0, ok;
  if (seq(list, "-")) return 0;
  for (const char *p = list;; p++) {
    if (*p == ',' || *p == 0) {
      buf[i] = 0;
      s64 g = num(buf, &ok);
      if (!ok || g < 0 || count == MAX_GROUPS) die("bad group list", -EINVAL);
      out[count++] = (unsigned int)g;
      i = 0;
      if (*p == 0) break;
    } else if (i < 15) {
      buf[i++] = *p;
    }
  }
  return count;
}

/*
 * Order matters: the bounding set is dropped while CAP_SETPCAP is still held;
 * the filter goes in while CAP_SYS_ADMIN is still held (so it also works
 * without no_new_privs); the switch to a non-zero uid then clears the
 * permitted set; capset sets what a uid 0 workload keeps; no_new_privs last.
 */
static void become(char **id) {
  int ok1, ok2, ok3, ok4;
  s64 uid = num(id[0], &ok1), gid = num(id[1], &ok2), caps = num(id[3], &ok3), nnp = num(id[4], &ok4);
  if (!ok1 || !ok2 || !ok3 || !ok4 || uid < 0 || gid < 0 || caps < 0) die("bad identity", -EINVAL);
  unsigned int groups[MAX_GROUPS];
  int ngroups = parse_groups(id[2], groups);
  u64 filter_len = 0;
  if (!seq(id[5], "-")) {
    int ok;
    s64 fd = num(id[5], &ok);
    if (!ok) die("bad seccomp fd", -EINVAL);
    filter_len = read_filter(fd);
  }
  for (int cap = 0; cap < 64; cap++) {
    if ((u64)caps & (1UL << cap)) continue;
    s64 r = sys2(NR_prctl, PR_CAPBSET_DROP, cap);
    if (r == -EINVAL) break; /* past the kernel's last capability */
    if (r < 0) die("drop bounding capability", r);
  }
  s64 r = sys5(NR_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  if (r < 0) die("clear ambient capabilities", r);
  if (filter_len) {
    struct sock_fprog prog = {(unsigned short)(filter_len / 8), filter_bytes};
    r = sys3(NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
    if (r < 0) die("install seccomp filter", r);
  }
  r = sys2(NR_setgroups, ngroups, groups);
  if (r < 0) die("setgroups", r);
  r = sys3(NR_setresgid, gid, gid, gid);
  if (r < 0) die("setresgid", r);
  r = sys3(NR_setresuid, uid, uid, uid);
  if (r < 0) die("setresuid", r);
  u64 keep = uid == 0 ? (u64)caps : 0;
  struct cap_header hdr = {0x20080522 /* _LINUX_CAPABILITY_VERSION_3 */, 0};
  struct cap_data data[2] = {{(unsigned int)keep, (unsigned int)keep, 0}, {(unsigned int)(keep >> 32), (unsigned int)(keep >> 32), 0}};
  r = sys2(NR_capset, &hdr, data);
  if (r < 0) die("capset", r);
  if (nnp == 1) {
    r = sys5(NR_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    if (r < 0) die("set no_new_privs", r);
  }
}

/*
 * What is left of a reaper once its namespaces and mounts are made, as
 * confined as Kubernetes' pause container or more: nothing it can see, hold or
 * do reaches the node. With keep_mnt_ns, fd 0 becomes the mount namespace it
 * is in (the infra one, which launcher threads join through /proc/PID/fd/0 and
 * which lives as long as this fd). Then: a mount namespace of its own whose
 * root is an empty read-only tmpfs (mounted over `mountpoint`, pivoted to, the
 * old root detached), so /proc/1/root and /proc/1/mountinfo show nothing of
 * the node; the bounding and ambient sets emptied; uid and gid 65535 with no
 * groups (as the pause image), which clears the other capability sets;
 * not dumpable (a container root cannot ptrace it or open its fds);
 * no_new_privs; and a seccomp filter allowing only what reap_forever and die
 * use. Anything else is EPERM; a foreign architecture is killed.
 */
static void confine(const char *mountpoint, int keep_mnt_ns) {
  s64 r;
  if (keep_mnt_ns) {
    s64 fd = sys4(NR_openat, AT_FDCWD, "/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) die("open the infra mount namespace", fd);
    r = sys3(NR_dup3, fd, 0, 0);
    if (r < 0) die("keep the infra mount namespace as fd 0", r);
    sys1(NR_close, fd);
  }
  r = sys1(NR_unshare, CLONE_NEWNS);
  if (r < 0) die("unshare a mount namespace for PID 1", r);
  r = sys5(NR_mount, 0, "/", 0, MS_PRIVATE | MS_REC, 0);
  if (r < 0) die("make PID 1's mounts private", r);
  r = sys5(NR_mount, "tmpfs", mountpoint, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,nr_inodes=16,mode=0555");
  if (r < 0) die("mount PID 1's empty root", r);
  r = sys1(NR_chdir, mountpoint);
  if (r < 0) die("enter PID 1's empty root", r);
  r = sys2(NR_pivot_root, ".", ".");
  if (r < 0) die("pivot_root into PID 1's empty root", r);
  r = sys2(NR_umount2, ".", MNT_DETACH);
  if (r < 0) die("detach the old root from PID 1", r);
  r = sys1(NR_chdir, "/");
  if (r < 0) die("chdir / in PID 1's empty root", r);
  for (int cap = 0; cap < 64; cap++) {
    r = sys2(NR_prctl, PR_CAPBSET_DROP, cap);
    if (r == -EINVAL) break; /* past the kernel's last capability */
    if (r < 0) die("drop PID 1's bounding capability", r);
  }
  r = sys5(NR_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  if (r < 0) die("clear PID 1's ambient capabilities", r);
  r = sys2(NR_setgroups, 0, 0);
  if (r < 0) die("clear PID 1's groups", r);
  r = sys3(NR_setresgid, 65535, 65535, 65535);
  if (r < 0) die("setresgid PID 1", r);
  r = sys3(NR_setresuid, 65535, 65535, 65535);
  if (r < 0) die("setresuid PID 1", r);
  struct cap_header hdr = {0x20080522 /* _LINUX_CAPABILITY_VERSION_3 */, 0};
  struct cap_data none[2] = {{0, 0, 0}, {0, 0, 0}};
  r = sys2(NR_capset, &hdr, none);
  if (r < 0) die("clear PID 1's capabilities", r);
  r = sys5(NR_prctl, PR_SET_DUMPABLE, 0, 0, 0, 0);
  if (r < 0) die("make PID 1 not dumpable", r);
  r = sys5(NR_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  if (r < 0) die("set PID 1's no_new_privs", r);
  static const unsigned int allowed[] = {
    NR_wait4, NR_rt_sigtimedwait, NR_rt_sigprocmask, NR_rt_sigreturn, NR_restart_syscall, NR_write, NR_close, NR_exit, NR_exit_group,
  };
  enum { N = sizeof allowed / sizeof allowed[0] };
  struct sock_filter { unsigned short code; unsigned char jt, jf; unsigned int k; } prog[4 + N + 2];
  prog[0] = (struct sock_filter){0x20 /* ld [arch] */, 0, 0, 4};
  prog[1] = (struct sock_filter){0x15 /* jeq */, 1, 0, AUDIT_ARCH};
  prog[2] = (struct sock_filter){0x06 /* ret */, 0, 0, 0x80000000U /* SECCOMP_RET_KILL_PROCESS */};
  prog[3] = (struct sock_filter){0x20 /* ld [nr] */, 0, 0, 0};
  for (int i = 0; i < N; i++) prog[4 + i] = (struct sock_filter){0x15 /* jeq */, (unsigned char)(N - i), 0, allowed[i]};
  prog[4 + N] = (struct sock_filter){0x06, 0, 0, 0x00050000U | 1 /* SECCOMP_RET_ERRNO | EPERM */};
  prog[5 + N] = (struct sock_filter){0x06, 0, 0, 0x7fff0000U /* SECCOMP_RET_ALLOW */};
  struct sock_fprog fprog = {(unsigned short)(sizeof prog / sizeof prog[0]), prog};
  r = sys3(NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog);
  if (r < 0) die("install PID 1's seccomp filter", r);
}

/* setns into the user namespace behind fd `arg` ("-": stay in the host's). Needs a single-threaded caller. */
static void enter_userns(const char *arg) {
  if (seq(arg, "-")) return;
  int ok;
  s64 fd = num(arg, &ok);
  if (!ok) die("bad user namespace fd", -EINVAL);
  s64 r = sys2(NR_setns, fd, CLONE_NEWUSER);
  if (r < 0) die("join the sandbox user namespace", r);
  sys1(NR_close, fd);
}

static __attribute__((noreturn)) void exec_or_die(char *path, char **argv, char **envp) {
  s64 e = sys3(NR_execve, path, argv, envp);
  put(2, "sandpit-init: cannot run ");
  put(2, path);
  put(2, e == -ENOENT || e == -ENOTDIR ? ": not found\n" : ": not executable\n");
  quit(e == -ENOENT || e == -ENOTDIR ? 127 : 126);
}

static __attribute__((noreturn)) void run_shim(char **argv, char **envp) {
  int ok;
  for (int i = 0; i < 13; i++)
    if (!argv[i]) die("usage: shim EXIT_FD CGROUP_FDS OOM NOFILE_SOFT NOFILE_HARD USERNS_FD UID GID GROUPS CAPS NNP SECCOMP_FD -- PATH ARGV0 ARGS...", -22);
  if (!seq(argv[12], "--") || !argv[13] || !argv[14]) die("usage: shim ... -- PATH ARGV0 ARGS...", -22);
  /* EXIT_FD, or EXIT_FD:PTY_FD for a tty container (see the usage above). */
  s64 ptyfd = -1;
  for (char *c = argv[0]; *c; c++)
    if (*c == ':') {
      *c = 0;
      ptyfd = num(c + 1, &ok);
      if (!ok) die("bad pty fd", -22);
      break;
    }
  s64 exitfd = num(argv[0], &ok);
  if (!ok) die("bad exit fd", -22);
  join_cgroups(argv[1]);
  sys1(NR_close, 3); /* this program itself, run as /proc/self/fd/3 */
  if (!seq(argv[2], "-")) {
    s64 fd = sys4(NR_openat, AT_FDCWD, "/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC, 0);
    if (fd < 0) die("open oom_score_adj", fd);
    s64 r = sys3(NR_write, fd, argv[2], slen(argv[2]));
    if (r < 0) die("write oom_score_adj", r);
    sys1(NR_close, fd);
  }
  if (!seq(argv[3], "-")) {
    struct rlim cur, want;
    s64 r = sys4(NR_prlimit64, 0, RLIMIT_NOFILE, 0, &cur);
    if (r < 0) die("get RLIMIT_NOFILE", r);
    want.max = (u64)num(argv[4], &ok);
    if (!ok || want.max > cur.max) want.max = cur.max; /* raising needs CAP_SYS_RESOURCE: never try */
    want.cur = (u64)num(argv[3], &ok);
    if (!ok || want.cur > want.max) want.cur = want.max;
    r = sys4(NR_prlimit64, 0, RLIMIT_NOFILE, &want, 0);
    if (r < 0) die("set RLIMIT_NOFILE", r);
  }
  enter_userns(argv[5]);
  become(argv + 6);

  s64 pid = sys5(NR_fork_clone, SIGCHLD, 0, 0, 0, 0);
  if (pid < 0) die("fork the workload", pid);
  if (pid == 0) {
    sys1(NR_close, exitfd);
    if (ptyfd >= 0) sys1(NR_close, ptyfd);
    exec_or_die(argv[13], &argv[14], envp);
  }
  int status = 0;
  for (;;) {
    s64 r = sys4(NR_wait4, pid, &status, 0, 0);
    if (r == pid) break;
    if (r != -EINTR) die("wait for the workload", r);
  }
  int code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f);
  char buf[24];
  char *s = fmt(buf + sizeof buf - 1, code);
  buf[sizeof buf - 2] = '\n';
  sys3(NR_write, exitfd, s, (u64)(buf + sizeof buf - 1 - s));
  quit(code);
}

static __attribute__((noreturn)) void run_exec(char **argv, char **envp) {
  for (int i = 0; i < 10; i++)
    if (!argv[i]) die("usage: exec CGROUP_FDS USERNS_FD TTY UID GID GROUPS CAPS NNP SECCOMP_FD -- PATH ARGV0 ARGS...", -22);
  if (!seq(argv[9], "--") || !argv[10] || !argv[11]) die("usage: exec ... -- PATH ARGV0 ARGS...", -22);
  join_cgroups(argv[0]);
  sys1(NR_close, 3); /* this program itself, run as /proc/self/fd/3 */
  if (seq(argv[2], "1")) {
    s64 r = sys1(NR_setsid, 0);
    if (r < 0) die("setsid", r);
    r = sys3(NR_ioctl, 0, TIOCSCTTY, 0);
    if (r < 0) die("make the terminal the controlling terminal", r);
  }
  enter_userns(argv[1]);
  become(argv + 3);
  exec_or_die(argv[10], &argv[11], envp);
}

/* A new user namespace, held until the agent has mapped it and pinned it with a bind mount. */
static __attribute__((noreturn)) void run_userns(char **argv) {
  int ok1, ok2;
  if (!argv[0] || !argv[1]) die("usage: userns READY_FD GO_FD", -22);
  s64 ready = num(argv[0], &ok1), go = num(argv[1], &ok2);
  if (!ok1 || !ok2) die("bad fd", -22);
  s64 r = sys1(NR_unshare, CLONE_NEWUSER);
  if (r < 0) die("unshare user namespace", r);
  sys3(NR_write, ready, "ready\n", 6);
  sys1(NR_close, ready);
  char c;
  while (sys3(NR_read, go, &c, 1) == -EINTR) {
  }
  quit(0);
}

__attribute__((used)) void start_c(long *sp) {
  long argc = sp[0];
  char **argv = (char **)(sp + 1);
  char **envp = argv + argc + 1;
  if (argc >= 2 && seq(argv[1], "init")) run_init(argv + 2);
  if (argc >= 2 && seq(argv[1], "shim")) run_shim(argv + 2, envp);
  if (argc >= 2 && seq(argv[1], "pidns")) run_pidns(argv + 2);
  if (argc >= 2 && seq(argv[1], "warm")) run_warm(argv + 2);
  if (argc >= 2 && seq(argv[1], "exec")) run_exec(argv + 2, envp);
  if (argc >= 2 && seq(argv[1], "userns")) run_userns(argv + 2);
  put(2, "usage: sandpit-init init|warm|pidns|shim|exec|userns ...\n");
  quit(2);
}
