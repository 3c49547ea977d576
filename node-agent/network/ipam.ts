import type { SandboxId } from '../contracts.js';
import { numberToIp, ipToNumber, sandboxRange, type Subnet } from './cidr.js';

/*
 * Address allocation as pure decisions over a lease table. The table is what
 * ipam-store.ts keeps on disk under a lock; these functions never touch it.
 */

export interface LeaseTable {
  /** The subnet the table belongs to; a table for another subnet is not reused. */
  subnet: string;
  /** Last address handed out, so the next allocation moves on (round robin) instead of reusing a just-freed one. */
  last: string | undefined;
  /** address → sandbox holding it. */
  leases: Record<string, SandboxId>;
}

export const emptyTable = (subnet: Subnet): LeaseTable => ({ subnet: subnet.cidr, last: undefined, leases: {} });

export const addressOf = (table: LeaseTable, sandbox: SandboxId): string | undefined =>
  Object.entries(table.leases).find(([, id]) => id === sandbox)?.[0];

/**
 * Gives `sandbox` an address: the one it already holds (so a repeated setup is
 * idempotent), else the next free one after the last handed out, wrapping
 * around. Returns undefined when the subnet is full.
 */
export function allocateAddress(
  table: LeaseTable,
  subnet: Subnet,
  sandbox: SandboxId,
): { table: LeaseTable; address: string } | undefined {
  const held = addressOf(table, sandbox);
  if (held) return { table, address: held };
  const { first, last } = sandboxRange(subnet);
  const count = last - first + 1;
  const after = table.last ? ipToNumber(table.last) : last;
  const start = after >= first && after <= last ? after - first + 1 : 0;
  for (let i = 0; i < count; i++) {
    const ip = numberToIp(first + ((start + i) % count));
    if (!(ip in table.leases))
      return { table: { ...table, last: ip, leases: { ...table.leases, [ip]: sandbox } }, address: ip };
  }
  return undefined;
}

/** Drops every lease of `sandbox`. */
export function releaseAddress(table: LeaseTable, sandbox: SandboxId): LeaseTable {
  return { ...table, leases: Object.fromEntries(Object.entries(table.leases).filter(([, id]) => id !== sandbox)) };
}

/** Drops every lease whose sandbox is not live; returns the table and the sandboxes that lost one. */
export function reclaimAddresses(
  table: LeaseTable,
  live: Set<SandboxId>,
): { table: LeaseTable; reclaimed: SandboxId[] } {
  const reclaimed = [...new Set(Object.values(table.leases).filter((id) => !live.has(id)))];
  return {
    table: { ...table, leases: Object.fromEntries(Object.entries(table.leases).filter(([, id]) => live.has(id))) },
    reclaimed,
  };
}
