/**
 * Who the workload runs as and what it may do. sandpit-init (shim and exec
 * modes, native/sandpit-init.c become()) takes it on in the child, in this
 * order: bounding set, ambient set cleared, seccomp filter, groups, gid, uid,
 * capabilities, no_new_privs. With a user namespace the ids are ids inside it.
 */
export interface Identity {
  uid: number;
  gid: number;
  groups: number[];
  caps: string[];
  noNewPrivs: boolean;
  /** sock_filter[] bytes, or null for Unconfined. */
  seccomp: Uint8Array | null;
}
