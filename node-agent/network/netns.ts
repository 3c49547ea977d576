import { closeSync, openSync, constants } from 'node:fs';
import { NetworkError, NetworkReason } from './status.js';
import { check } from '../sys/libc.js';
import { CLONE_NEWNET, setns } from '../sys/net.js';

/**
 * Runs `fn` with the calling thread inside the network namespace at `netnsPath`
 * and moves it back before returning. Only the calling thread moves (setns is
 * per thread), and `fn` is synchronous, so no other JavaScript runs in the
 * sandbox's namespace: what `fn` does is open sockets there (they stay bound to
 * that namespace for life) and write that namespace's /proc/sys/net files.
 * libuv's pool threads never move, so `fn` must not use asynchronous fs calls.
 */
export function inNetns<T>(netnsPath: string, sandbox: string | undefined, fn: () => T): T {
  const site = { sandbox, step: 'enter network namespace' };
  let target: number;
  try {
    target = openSync(netnsPath, constants.O_RDONLY);
  } catch (err) {
    throw new NetworkError(NetworkReason.NetnsNotFound, {
      ...site,
      message: `open ${netnsPath}: ${(err as NodeJS.ErrnoException).code}`,
      code: (err as NodeJS.ErrnoException).code,
      cause: err,
      hint: 'the sandbox process may have exited',
    });
  }
  const home = openSync('/proc/thread-self/ns/net', constants.O_RDONLY);
  try {
    check('setns', site, () => setns(target, CLONE_NEWNET));
    try {
      return fn();
    } finally {
      // If this failed the thread would be stranded in a sandbox: nothing sane can follow.
      if (setns(home, CLONE_NEWNET) < 0) {
        process.stderr.write('sandpit: cannot return to the node network namespace; exiting\n');
        process.abort();
      }
    }
  } finally {
    closeSync(target);
    closeSync(home);
  }
}

/** Opens a namespace file for IFLA_NET_NS_FD; the caller closes it. */
export function openNetns(netnsPath: string, sandbox: string | undefined): number {
  try {
    return openSync(netnsPath, constants.O_RDONLY);
  } catch (err) {
    throw new NetworkError(NetworkReason.NetnsNotFound, {
      step: 'open network namespace',
      sandbox,
      message: `open ${netnsPath}: ${(err as NodeJS.ErrnoException).code}`,
      code: (err as NodeJS.ErrnoException).code,
      cause: err,
      hint: 'the sandbox process may have exited',
    });
  }
}
