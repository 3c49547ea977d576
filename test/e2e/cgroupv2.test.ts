import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { buildInitramfs } from '../vm/initramfs.js';
import { moduleLoadOrder } from '../vm/kernel.js';
import { chooseAccel, runInCgroupV2Vm, shq, TIMEOUT_SCALE_ENV, type VmRunResult } from '../vm/vm.js';

/*
 * cgroup v2 for real. This machine kind is a v1 hybrid, so the agent's v2 path
 * runs here inside a VM booted from Debian's stock kernel with cgroup_no_v1=all
 * (test/vm/). First we prove the guest is a real pure-v2 host — cgroup2 and no
 * v1 hierarchy, memory/pids/cpu available, and memory.max enforced by the OOM
 * killer — then we run the runtime's cgroup-touching node tests inside it.
 *
 * Which runtime tests run in the guest: every dist/test/node/cgroup*.test.js
 * when the runtime has such files; otherwise the cgroup cases of
 * runtime-lifecycle (memory.max OOM kill, pids.max, cgroup.freeze), selected by
 * --grep so the tier stays near 5 minutes under emulation. Override with
 * SANDPIT_VM_RUNTIME_TESTS (space-separated compiled files, relative to the repo)
 * and SANDPIT_VM_RUNTIME_GREP ('' for no grep). hack/vm-cgroupv2.sh runs all
 * runtime*.test.js and cgroup*.test.js files.
 */

const REPO = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');

const PROBE = String.raw`
echo "kernel=$(uname -r)"
echo "cmdline=$(cat /proc/cmdline)"
echo "fstype=$(stat -f -c %T /sys/fs/cgroup)"
echo "controllers=$(cat /sys/fs/cgroup/cgroup.controllers)"
echo "v1mounts=$(awk '$3 == "cgroup"' /proc/self/mountinfo /proc/mounts | wc -l)"
echo "v1mountinfo=$(grep -c ' - cgroup ' /proc/self/mountinfo)"
echo "cgroup2mounts=$(awk '$3 == "cgroup2" {print $2 ":" $4}' /proc/mounts | tr '\n' ' ')"
echo "v1hierarchies=$(awk 'NR > 1 && $2 != 0' /proc/cgroups | wc -l)"
echo "selfcgroup=$(cat /proc/self/cgroup | tr '\n' ' ')"
cg=/sys/fs/cgroup/sandpit-e2e-oom
mkdir "$cg"
echo "childcontrollers=$(cat $cg/cgroup.controllers)"
echo 32M > "$cg/memory.max"
echo 0 > "$cg/memory.swap.max" 2>/dev/null || true
# tail keeps the last 10 lines; /dev/zero has no newline, so its one line grows until the OOM killer ends it.
sh -c 'echo $$ > '"$cg"'/cgroup.procs && exec tail /dev/zero'
echo "oomexit=$?"
echo "memevents=$(tr '\n' ' ' < $cg/memory.events)"
rmdir "$cg"
echo "done=1"
`;

function facts(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0 && /^[a-z0-9]+$/.test(line.slice(0, eq))) out[line.slice(0, eq)] = line.slice(eq + 1).trim();
  }
  return out;
}

const LIFECYCLE_CGROUP_CASES = 'OOM-kills|pids limit|pauses|CPU requests their weight';

function runtimeTests(): { files: string[]; grep: string[] } {
  const grepEnv = process.env.SANDPIT_VM_RUNTIME_GREP;
  const grep = (g: string | undefined) => (g ? ['--grep', g] : []);
  const fromEnv = process.env.SANDPIT_VM_RUNTIME_TESTS;
  if (fromEnv) return { files: fromEnv.split(/\s+/).filter(Boolean), grep: grep(grepEnv) };
  const dir = join(REPO, 'dist', 'test', 'node');
  const present = existsSync(dir) ? readdirSync(dir) : [];
  const cgroupFiles = present.filter((f) => /^cgroup.*\.test\.js$/.test(f)).sort();
  if (cgroupFiles.length)
    return { files: cgroupFiles.map((f) => join('dist', 'test', 'node', f)), grep: grep(grepEnv) };
  if (present.includes('runtime-lifecycle.test.js')) {
    return {
      files: [join('dist', 'test', 'node', 'runtime-lifecycle.test.js')],
      grep: grep(grepEnv ?? LIFECYCLE_CGROUP_CASES),
    };
  }
  return { files: [], grep: [] };
}

describe('e2e: cgroup v2 VM harness pieces (no VM)', () => {
  it('orders initramfs modules after their dependencies, from modules.dep', () => {
    const dep = [
      'kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko',
      'kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko',
      'kernel/fs/netfs/netfs.ko:',
      'kernel/net/9p/9pnet.ko:',
      'kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko',
      'kernel/drivers/virtio/virtio.ko:',
      'kernel/drivers/virtio/virtio_ring.ko:',
    ].join('\n');
    const order = moduleLoadOrder(dep, ['9pnet_virtio', '9p']).map((p) => p.split('/').pop());
    assert.deepEqual(order, [
      '9pnet.ko',
      'virtio.ko',
      'virtio_ring.ko',
      '9pnet_virtio.ko',
      'netfs.ko',
      'fscache.ko',
      '9p.ko',
    ]);
    assert.throws(() => moduleLoadOrder(dep, ['nope']), /not in modules.dep/);
  });

  it('writes an initramfs the kernel can unpack (newc cpio, gzip) with /init, busybox and the module list', () => {
    const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));
    if (!busybox) throw new Error('busybox-static is needed (.ci/packages/vm.txt)');
    const cpio = gunzipSync(buildInitramfs({ release: 'test', modules: [], busybox }));
    const listing = execFileSync(busybox, ['cpio', '-t'], {
      input: cpio,
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'ignore'],
    }).split('\n');
    for (const f of ['init', 'stage2', 'bin/busybox', 'modules.order', 'modules'])
      assert.ok(listing.includes(f), `${f} missing: ${listing.join(' ')}`);
  });

  it('quotes command words for the guest shell', () => {
    const words = ['a b', "it's", '$HOME', '"q"', ''];
    const echoed = execFileSync('/bin/sh', ['-c', `printf '%s\\n' ${words.map(shq).join(' ')}`], { encoding: 'utf8' });
    assert.deepEqual(echoed.split('\n').slice(0, -1), words);
  });
});

describe('e2e: cgroup v2 for real: a pure-v2 VM (Debian kernel, cgroup_no_v1=all)', function () {
  this.timeout(25 * 60_000);
  const MARK = '@@sandpit-runtime-tests@@';
  let run: VmRunResult;
  let f: Record<string, string>;
  let tests: { files: string[]; grep: string[] };
  let mocha = '';

  // One boot for everything (a boot costs about a minute under emulation): the
  // probe, then the runtime's tests in the same guest. mocha runs without
  // --require dist/test/hooks.js: that hook only stops the cluster tier's
  // control plane, and importing it costs minutes under emulation.
  before(async function () {
    tests = runtimeTests();
    const mochaCmd = [
      'node',
      'node_modules/mocha/bin/mocha.js',
      '--reporter',
      './test/reporter.cjs',
      ...tests.grep,
      ...tests.files,
    ]
      .map(shq)
      .join(' ');
    const script =
      `${PROBE}\necho ${MARK}\n` + (tests.files.length ? `cd ${shq(REPO)} && ${mochaCmd}\necho "mochaexit=$?"\n` : '');
    run = await runInCgroupV2Vm({
      command: ['/bin/sh', '-c', script],
      cwd: REPO,
      env: { SANDPIT_TEST: '1', ...TIMEOUT_SCALE_ENV(chooseAccel().accel) },
      stdout: null,
      stderr: null,
      timeoutMs: 20 * 60_000,
    });
    const cut = run.stdout.indexOf(MARK);
    f = facts(cut < 0 ? run.stdout : run.stdout.slice(0, cut));
    mocha = cut < 0 ? '' : run.stdout.slice(cut + MARK.length);
    process.stdout.write(
      `      (VM: exit ${run.exitCode}, ${(run.durationMs / 1000).toFixed(1)} s boot to power-off, accel ${run.accel}, kernel ${f.kernel})\n`,
    );
    assert.equal(f.done, '1', `probe did not finish:\n${run.stdout}\n${run.stderr}`);
  });

  it('boots with cgroup_no_v1=all and mounts cgroup2 — and only cgroup2 — at /sys/fs/cgroup, with nsdelegate', () => {
    assert.match(f.cmdline ?? '', /(^| )cgroup_no_v1=all( |$)/);
    assert.equal(f.fstype, 'cgroup2fs');
    assert.equal(f.v1mounts, '0', 'a v1 cgroup hierarchy is mounted');
    assert.equal(f.v1mountinfo, '0');
    assert.equal(f.v1hierarchies, '0', '/proc/cgroups shows a v1 hierarchy in use');
    assert.equal(f.cgroup2mounts, '/sys/fs/cgroup:rw,relatime,nsdelegate');
  });

  it('offers the memory, pids and cpu controllers, delegated to children as on a systemd host', () => {
    const root = (f.controllers ?? '').split(/\s+/);
    const child = (f.childcontrollers ?? '').split(/\s+/);
    for (const c of ['memory', 'pids', 'cpu']) {
      assert.ok(root.includes(c), `root lacks ${c}: ${f.controllers}`);
      assert.ok(child.includes(c), `a new child cgroup lacks ${c}: ${f.childcontrollers}`);
    }
    assert.equal(f.selfcgroup, '0::/init.scope');
  });

  it('OOM-kills a process that outgrows memory.max of its new child cgroup', () => {
    assert.equal(f.oomexit, '137', `the memory hog was not SIGKILLed; guest stderr:\n${run.stderr}`);
    const kills = Number(/oom_kill (\d+)/.exec(f.memevents ?? '')?.[1] ?? 0);
    assert.ok(kills >= 1, `memory.events shows no oom_kill: ${f.memevents}`);
    assert.match(run.dmesg, /Memory cgroup out of memory|oom-kill/);
  });

  it("runs the runtime's cgroup tests inside the VM and they pass on pure v2", () => {
    assert.ok(
      tests.files.length,
      'found no runtime cgroup tests to run in the VM (dist/test/node has neither cgroup*.test.js nor runtime-lifecycle.test.js: run npm run build)',
    );
    const summary = /(\d+) passed, (\d+) failed, (\d+) skipped/.exec(mocha);
    const code = /mochaexit=(\d+)/.exec(mocha)?.[1];
    process.stdout.write(
      `      (runtime tests in the VM: ${[...tests.grep, ...tests.files].join(' ')}: ${summary?.[0] ?? 'no summary'}, exit ${code})\n`,
    );
    const slow =
      run.accel === 'tcg'
        ? ' — the guest ran under TCG emulation (tens of times slower than native): "timed out waiting" failures there are likely speed, not cgroup v2'
        : '';
    assert.equal(code, '0', `runtime tests failed on cgroup v2 (exit ${code})${slow}:\n${mocha}\n${run.stderr}`);
  });
});
