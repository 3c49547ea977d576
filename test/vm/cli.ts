#!/usr/bin/env node
import { chooseAccel, runInCgroupV2Vm, TIMEOUT_SCALE_ENV, VmError } from './vm.js';

/*
 * node dist/test/vm/cli.js [--cwd DIR] [--timeout SECONDS] [--bare] [-e K=V ...] -- <command...>
 * Runs <command> in the pure cgroup v2 VM and exits with its exit code.
 */
const argv = process.argv.slice(2);
const sep = argv.indexOf('--');
const flags = sep < 0 ? [] : argv.slice(0, sep);
const command = sep < 0 ? argv : argv.slice(sep + 1);
let cwd = process.cwd();
let timeoutMs: number | undefined;
let cgroupSetup: 'systemd' | 'bare' = 'systemd';
let env: Record<string, string> = {};
try {
  env = { ...TIMEOUT_SCALE_ENV(chooseAccel().accel) };
} catch {
  /* runInCgroupV2Vm reports the missing /dev/kvm below */
}
for (let i = 0; i < flags.length; i++) {
  const f = flags[i];
  if (f === '--cwd') cwd = flags[++i] ?? cwd;
  else if (f === '--timeout') timeoutMs = Number(flags[++i]) * 1000;
  else if (f === '--bare') cgroupSetup = 'bare';
  else if (f === '-e') {
    const kv = flags[++i] ?? '';
    const eq = kv.indexOf('=');
    if (eq > 0) env[kv.slice(0, eq)] = kv.slice(eq + 1);
  } else {
    process.stderr.write(
      `unknown flag ${f}\nusage: cli.js [--cwd DIR] [--timeout SECONDS] [--bare] [-e K=V] -- <command...>\n`,
    );
    process.exit(2);
  }
}
if (!command.length) {
  process.stderr.write('usage: cli.js [--cwd DIR] [--timeout SECONDS] [--bare] [-e K=V] -- <command...>\n');
  process.exit(2);
}
try {
  const r = await runInCgroupV2Vm({ command, cwd, env, timeoutMs, cgroupSetup });
  if (r.exitCode !== 0)
    process.stderr.write(
      `vm: guest kernel log (last 25 lines):\n${r.dmesg.trimEnd().split('\n').slice(-25).join('\n')}\n`,
    );
  process.stderr.write(`vm: exit ${r.exitCode} after ${(r.durationMs / 1000).toFixed(1)} s (${r.accel})\n`);
  process.exitCode = r.exitCode;
} catch (err) {
  process.stderr.write(`${err instanceof VmError ? err.message : String(err)}\n`);
  process.exitCode = 124;
}
