import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { gzipSync } from 'node:zlib';

/*
 * A tiny initramfs written here, without cpio or initramfs-tools: busybox-static,
 * the few modules needed to reach the host's root over virtio-9p, and /init.
 *
 * /init mounts the host's / read-only (9p tag "hostroot") with a tmpfs overlay
 * on top, so the guest runs the host's node, /work/main, dist/ and node_modules
 * unchanged but cannot write to the host. It mounts cgroup2 — and nothing else —
 * at /sys/fs/cgroup with nsdelegate, binds the guest kernel's module tree (from
 * the host cache, also seen through 9p) on /lib/modules/<release>, then
 * switch_roots into the overlay and runs stage 2: the requested command, with
 * stdout and stderr on two virtio-serial ports, the exit code written to the
 * read-write 9p share "sandpitio", then power off.
 *
 * Bump INITRAMFS_VERSION when the script changes: it is part of the cache key.
 */
export const INITRAMFS_VERSION = 4;

const INIT = `#!/bin/busybox sh
B=/bin/busybox
$B mkdir -p /proc /sys /dev /lower /upper /newroot
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
$B mount -t devtmpfs devtmpfs /dev
fail() { echo "sandpit-vm init: $*" >/dev/ttyS0; $B sleep 1; $B poweroff -f; }
for m in $(cat /modules.order); do $B insmod "/modules/$m" || fail "insmod $m"; done
for w in $(cat /proc/cmdline); do
  case "$w" in
    sandpit.moddir=*) MODDIR="\${w#*=}" ;;
    sandpit.release=*) RELEASE="\${w#*=}" ;;
    sandpit.cgsetup=*) CGSETUP="\${w#*=}" ;;
    sandpit.cwd=*) CWD="\${w#*=}" ;;
  esac
done
$B mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /lower || fail "mount host root over 9p"
$B mount -t tmpfs -o mode=755 tmpfs /upper || fail "tmpfs"
$B mkdir -p /upper/u /upper/w
$B mount -t overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w overlay /newroot || fail "overlay root"
R=/newroot
$B mount -t proc proc $R/proc
$B mount -t sysfs sysfs $R/sys
$B mount -t devtmpfs devtmpfs $R/dev
$B mkdir -p $R/dev/pts $R/dev/shm $R/dev/mqueue
$B mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts $R/dev/pts
$B mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
$B mount -t mqueue mqueue $R/dev/mqueue
$B mount -t cgroup2 -o nsdelegate cgroup2 $R/sys/fs/cgroup || fail "mount cgroup2"
$B mount -t tmpfs -o mode=1777 tmpfs $R/tmp
$B mount -t tmpfs -o mode=755 tmpfs $R/run
$B mkdir -p $R/run/sandpit-vm/io
$B mount -t 9p -o trans=virtio,version=9p2000.L,rw,msize=512000 sandpitio $R/run/sandpit-vm/io || fail "mount io share"
# The command's directory is shared on its own: a checkout under /tmp (hidden by
# the tmpfs above) or on another host mount would not be seen through hostroot.
if [ -n "$CWD" ]; then
  $B mkdir -p /cwdlower /upper/cu /upper/cw "$R$CWD"
  $B mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose sandpitcwd /cwdlower || fail "mount cwd share"
  $B mount -t overlay -o lowerdir=/cwdlower,upperdir=/upper/cu,workdir=/upper/cw overlay "$R$CWD" || fail "overlay cwd"
fi
if [ -n "$MODDIR" ] && [ -d "$R$MODDIR" ]; then
  $B mkdir -p "$R/lib/modules/$RELEASE"
  $B mount --bind "$R$MODDIR" "$R/lib/modules/$RELEASE"
fi
$B cp /bin/busybox $R/run/sandpit-vm/busybox
$B cp /stage2 $R/run/sandpit-vm/stage2
echo "$CGSETUP" > $R/run/sandpit-vm/cgsetup
exec $B switch_root /newroot /run/sandpit-vm/busybox sh /run/sandpit-vm/stage2
`;

const STAGE2 = `B=/run/sandpit-vm/busybox
IO=/run/sandpit-vm/io
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# Like a systemd host: controllers enabled at the root, init in a leaf.
if [ "$($B cat /run/sandpit-vm/cgsetup)" != bare ]; then
  $B mkdir -p /sys/fs/cgroup/init.scope
  echo $$ > /sys/fs/cgroup/init.scope/cgroup.procs
  for c in $($B cat /sys/fs/cgroup/cgroup.controllers); do echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control; done
fi
$B hostname sandpit-vm
$B ip link set lo up
OUT=/dev/null ERR=/dev/null
for p in /sys/class/virtio-ports/*; do
  case "$($B cat $p/name 2>/dev/null)" in
    sandpit.stdout) OUT=/dev/$($B basename $p) ;;
    sandpit.stderr) ERR=/dev/$($B basename $p) ;;
  esac
done
$B env -i /bin/sh $IO/cmd.sh <"/dev/null" >"$OUT" 2>"$ERR"
rc=$?
$B dmesg > $IO/dmesg.txt 2>&1
echo $rc > $IO/exit.tmp && $B mv $IO/exit.tmp $IO/exit
$B sync
$B umount $IO
$B poweroff -f
`;

export function buildInitramfs(opts: { release: string; modules: string[]; busybox: string }): Buffer {
  const w = new CpioWriter();
  for (const d of ['bin', 'modules', 'proc', 'sys', 'dev', 'lower', 'upper', 'newroot']) w.dir(d);
  w.file('bin/busybox', readFileSync(opts.busybox), 0o755);
  const names: string[] = [];
  for (const m of opts.modules) {
    names.push(basename(m));
    w.file(`modules/${basename(m)}`, readFileSync(m), 0o644);
  }
  w.file('modules.order', Buffer.from(names.join('\n') + '\n'), 0o644);
  w.file('init', Buffer.from(INIT), 0o755);
  w.file('stage2', Buffer.from(STAGE2), 0o755);
  w.file('release', Buffer.from(`${opts.release}\n`), 0o644);
  return gzipSync(w.finish(), { level: 6 });
}

/** SVR4 "newc" cpio, the format the kernel unpacks as an initramfs. */
class CpioWriter {
  private parts: Buffer[] = [];
  private ino = 1;

  dir(name: string): void {
    this.entry(name, 0o040755, Buffer.alloc(0));
  }

  file(name: string, data: Buffer, mode: number): void {
    this.entry(name, 0o100000 | mode, data);
  }

  finish(): Buffer {
    this.entry('TRAILER!!!', 0, Buffer.alloc(0));
    return Buffer.concat(this.parts);
  }

  private entry(name: string, mode: number, data: Buffer): void {
    const nameBuf = Buffer.from(`${name}\0`);
    const hex = (n: number) => n.toString(16).padStart(8, '0');
    const fields = [this.ino++, mode, 0, 0, mode & 0o040000 ? 2 : 1, 0, data.length, 0, 0, 0, 0, nameBuf.length, 0];
    const header = Buffer.from(`070701${fields.map(hex).join('')}`);
    this.parts.push(header, nameBuf, pad(header.length + nameBuf.length), data, pad(data.length));
  }
}

function pad(n: number): Buffer {
  return Buffer.alloc((4 - (n % 4)) % 4);
}
