import assert from 'node:assert/strict';
import { DEFAULT_CAPS } from './capabilities.js';
import { buildSeccompFilter } from './seccomp.js';
import { SYSCALLS_X86_64 } from './syscalls-x86_64.js';

/** A classic-BPF interpreter for the instructions the builder emits. */
function run(prog: Buffer, data: { nr: number; arch?: number; args?: number[] }): number {
  const word = (off: number) =>
    off === 0 ? data.nr : off === 4 ? (data.arch ?? 0xc000003e) : off >= 16 ? (data.args?.[(off - 16) / 8] ?? 0) : 0;
  let a = 0;
  for (let pc = 0; pc < prog.length / 8; pc++) {
    const code = prog.readUInt16LE(pc * 8);
    const jt = prog.readUInt8(pc * 8 + 2);
    const jf = prog.readUInt8(pc * 8 + 3);
    const k = prog.readUInt32LE(pc * 8 + 4);
    if (code === 0x20) a = word(k) >>> 0;
    else if (code === 0x06) return k;
    else {
      const cond =
        code === 0x15 ? a === k : code === 0x25 ? a > k : code === 0x35 ? a >= k : code === 0x45 ? (a & k) !== 0 : NaN;
      if (Number.isNaN(cond as unknown as number)) throw new Error(`unknown opcode ${code}`);
      pc += cond ? jt : jf;
    }
  }
  throw new Error('fell off the end');
}

const ALLOW = 0x7fff0000;
const EPERM = 0x00050001;
const ENOSYS = 0x00050026;
const nr = (n: string) => SYSCALLS_X86_64[n]!;

describe('unit: seccomp filter', () => {
  const prog = buildSeccompFilter(DEFAULT_CAPS);
  it('fits the kernel limit', () => assert.ok(prog.length / 8 < 4096));
  it('allows ordinary syscalls and refuses those that reach outside the container', () => {
    for (const s of ['read', 'write', 'openat', 'execve', 'futex', 'chroot', 'setresuid'])
      assert.equal(run(prog, { nr: nr(s) }), ALLOW, s);
    for (const s of [
      'mount',
      'umount2',
      'unshare',
      'setns',
      'keyctl',
      'add_key',
      'bpf',
      'perf_event_open',
      'kexec_load',
      'init_module',
      'reboot',
      'pivot_root',
      'open_by_handle_at',
      'userfaultfd',
    ])
      assert.equal(run(prog, { nr: nr(s) }), EPERM, s);
  });
  it('gives ENOSYS for clone3 and for syscalls newer than the profile', () => {
    assert.equal(run(prog, { nr: nr('clone3') }), ENOSYS);
    assert.equal(run(prog, { nr: 470 }), ENOSYS);
  });
  it('filters clone flags, socket families, personalities and other ABIs', () => {
    assert.equal(run(prog, { nr: nr('clone'), args: [0x11] }), ALLOW);
    assert.equal(run(prog, { nr: nr('clone'), args: [0x20000 | 0x11] }), EPERM);
    assert.equal(run(prog, { nr: nr('socket'), args: [2] }), ALLOW);
    assert.equal(run(prog, { nr: nr('socket'), args: [40] }), EPERM);
    assert.equal(run(prog, { nr: nr('socket'), args: [38] }), EPERM);
    assert.equal(run(prog, { nr: nr('personality'), args: [0] }), ALLOW);
    assert.equal(run(prog, { nr: nr('personality'), args: [0x0400000] }), EPERM);
    assert.equal(run(prog, { nr: 1, arch: 0x40000003 }), EPERM);
    assert.equal(run(prog, { nr: 0x40000000 | 1 }), EPERM);
  });
  it('re-enables capability-gated syscalls when the capability is granted', () => {
    const admin = buildSeccompFilter([...DEFAULT_CAPS, 'SYS_ADMIN']);
    assert.equal(run(admin, { nr: nr('mount') }), ALLOW);
    assert.equal(run(admin, { nr: nr('clone'), args: [0x20000] }), ALLOW);
  });
});
