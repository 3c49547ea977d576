import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, writeSync, constants } from 'node:fs';
import { join } from 'node:path';
import { check } from '../sys/libc.js';
import { flock, LOCK_EX, LOCK_UN } from '../sys/net.js';
import type { Subnet } from './cidr.js';
import type { SandboxId } from '../contracts.js';
import { allocateAddress, emptyTable, reclaimAddresses, releaseAddress, type LeaseTable } from './ipam.js';
import { NetworkError, NetworkReason } from './status.js';

/**
 * The lease table on disk: `<dir>/leases.json`, replaced atomically (write to a
 * temporary file, rename; no fsync: it only guards against power loss, after
 * which no sandbox survives to hold a lease) while holding flock() on `<dir>/lock`. flock is
 * released by the kernel when a process dies, so a crashed agent never leaves a
 * stale lock behind, and a second agent process (or a restarted one overlapping
 * the old) waits instead of handing out the same address twice.
 *
 * Put `dir` on a tmpfs such as /run: sandboxes do not survive a reboot, and
 * neither should their leases (the leaked-lease failure of host-local IPAM).
 */
export class LeaseStore {
  readonly #dir: string;
  readonly #subnet: Subnet;

  constructor(dir: string, subnet: Subnet) {
    this.#dir = dir;
    this.#subnet = subnet;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  /** Reads the table, lets `change` decide, and writes the result if it differs. Synchronous: the lock is held for microseconds. */
  update<T>(change: (table: LeaseTable) => { table: LeaseTable; result: T }): T {
    const lockFd = openSync(join(this.#dir, 'lock'), constants.O_RDWR | constants.O_CREAT, 0o600);
    try {
      check('flock', { step: 'lock address leases' }, () => flock(lockFd, LOCK_EX));
      const before = this.#read();
      const { table, result } = change(before);
      if (table !== before) this.#write(table);
      flock(lockFd, LOCK_UN);
      return result;
    } finally {
      closeSync(lockFd);
    }
  }

  /** Leases an address to the sandbox (the one it has, on a repeated setup); AddressPoolExhausted when none is free. */
  lease(id: SandboxId, who: string): string {
    const address = this.update((table) => {
      const got = allocateAddress(table, this.#subnet, id);
      return got ? { table: got.table, result: got.address } : { table, result: undefined };
    });
    if (!address) {
      throw new NetworkError(NetworkReason.AddressPoolExhausted, {
        step: 'allocate address',
        sandbox: who,
        message: `every address of ${this.#subnet.cidr} is leased`,
        hint: 'delete sandboxes, or give the agent a larger subnet (SANDPIT_SUBNET, chart value agent.network.subnet)',
      });
    }
    return address;
  }

  /** Releases the sandbox's lease, if it has one. */
  release(id: SandboxId): void {
    this.update((table) => {
      const next = releaseAddress(table, id);
      return {
        table: Object.keys(next.leases).length === Object.keys(table.leases).length ? table : next,
        result: undefined,
      };
    });
  }

  /** Releases the leases of sandboxes not in `live`; returns whose. */
  reclaim(live: Set<SandboxId>): SandboxId[] {
    return this.update((table) => {
      const { table: next, reclaimed } = reclaimAddresses(table, live);
      return { table: reclaimed.length ? next : table, result: reclaimed };
    });
  }

  /** Releases every lease (node uninstall). */
  clear(): void {
    this.update((table) => ({ table: { ...table, last: undefined, leases: {} }, result: undefined }));
  }

  /** The table as it is now (for reporting and tests). */
  read(): LeaseTable {
    return this.update((table) => ({ table, result: table }));
  }

  #read(): LeaseTable {
    const file = join(this.#dir, 'leases.json');
    if (!existsSync(file)) return emptyTable(this.#subnet);
    let table: LeaseTable;
    try {
      table = JSON.parse(readFileSync(file, 'utf8')) as LeaseTable;
    } catch (err) {
      throw new NetworkError(NetworkReason.AddressStateUnavailable, {
        step: 'read address leases',
        message: `${file} is not readable JSON`,
        cause: err,
        hint: 'move the file away; the next garbage collection rebuilds leases from live sandboxes',
      });
    }
    if (table.subnet !== this.#subnet.cidr && Object.keys(table.leases).length === 0) return emptyTable(this.#subnet);
    if (table.subnet !== this.#subnet.cidr) {
      throw new NetworkError(NetworkReason.AddressStateUnavailable, {
        step: 'read address leases',
        message: `${file} holds leases of subnet ${table.subnet}, but the node's sandbox subnet is ${this.#subnet.cidr}`,
        hint: 'delete every sandbox on the node before changing its subnet',
      });
    }
    return table;
  }

  #write(table: LeaseTable): void {
    const file = join(this.#dir, 'leases.json');
    const tmp = `${file}.tmp`;
    const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
    try {
      writeSync(fd, JSON.stringify(table));
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  }
}
