import type { RuntimeConfig } from '../runtime/config.js';

/*
 * The sandbox's PID 1 chain, all exec'd in place so it stays PID 1:
 * busybox sh joins the sandbox cgroup (so the cgroup namespace is rooted
 * there), util-linux unshare makes the cgroup namespace and the "infra" mount
 * namespace with a /proc of the sandbox's PID namespace (only a process inside
 * that namespace can mount it, and launcher threads bind it from here), a
 * second sh moves PID 1 into the infra leaf cgroup and reports ready, and
 * catatonit -P stays as the reaper for the life of the sandbox.
 */
export function infraArgv(bin: RuntimeConfig['binaries'], sandboxFds: number[], infraFds: number[], readyFd: number): string[] {
  const echo = (fds: number[]) => fds.map((fd) => `echo 0 >&${fd}`).join('; ');
  const shut = (fds: number[]) => fds.map((fd) => `${fd}>&-`).join(' ');
  const inner = `${echo(infraFds)}; exec ${shut(infraFds)}; echo ready >&${readyFd}; exec ${readyFd}>&-; exec ${bin.catatonit} -P`;
  const outer = `${echo(sandboxFds)}; exec ${shut(sandboxFds)}; exec ${bin.unshare} --cgroup --mount --mount-proc --propagation slave -- ${bin.busybox} sh -c '${inner}'`;
  return ['sh', '-c', outer];
}
