import { createHash } from 'node:crypto';
import type { Logger } from '../lib/log.js';
import type { SandboxObservation, SandboxRef } from '../protocol/agent-api.js';
import type { PublishedPortStatus, Sandbox, SandboxSpec } from '../crds/sandbox.js';

/*
 * The seams between the agent's subsystems. The runtime (namespaces, cgroups,
 * rootfs, process) builds a sandbox and calls out through these interfaces for
 * its image layers and its network, so each subsystem can be built and tested
 * on its own and swapped (for example, a directory-backed image provider in
 * standalone tests). Names of everything a sandbox creates on the node derive
 * from its SandboxId, so teardown and garbage collection need no stored state.
 */

/**
 * Short stable identity of a sandbox on a node: 12 lowercase hex characters.
 * Kernel names are short (an interface name is at most 15 bytes), so every
 * node object is named from this: host veth `spv<id minus first char>`,
 * cgroup `sandpit/<id>`, nft rule comments `sandpit:<id>`, state dir `<id>/`.
 */
export type SandboxId = string;

/** Derives the SandboxId from the Kubernetes UID (or `namespace/name` in standalone mode). */
export function sandboxIdFor(uidOrKey: string): SandboxId {
  return createHash('sha256').update(uidOrKey).digest('hex').slice(0, 12);
}

export type { SandboxObservation, SandboxRef };

export const SANDBOX_ID_PATTERN = /^[0-9a-f]{12}$/;

/** `namespace/name`, the way people name a sandbox. */
export const describeSandbox = (ref: Pick<SandboxRef, 'namespace' | 'name'>) => `${ref.namespace}/${ref.name}`;

// ---------------------------------------------------------------------------
// Images (node-agent/images/)

/** The parts of an OCI image config that shape a container. */
export interface ImageConfig {
  entrypoint?: string[];
  cmd?: string[];
  env?: string[];
  workingDir?: string;
  user?: string;
}

/** An image ready to be used as overlay lower directories. */
export interface PreparedImage {
  /** Reference as written in the spec, normalised (docker.io/library/busybox:latest). */
  reference: string;
  /** repository@sha256:... of the manifest that was used. */
  imageID: string;
  /** Read-only directories, lowest layer first. overlayfs wants them highest first. */
  layers: string[];
  config: ImageConfig;
}

export interface PullOptions {
  policy: 'Always' | 'IfNotPresent' | 'Never';
  /** Docker config JSON documents (the .dockerconfigjson of each pull secret). */
  credentials: string[];
  sandbox: SandboxRef;
}

export interface ImageProvider {
  /** Makes the image present and unpacked, and holds a reference for the sandbox until release(). */
  prepare(reference: string, opts: PullOptions): Promise<PreparedImage>;
  /** Drops every reference the sandbox holds; content becomes collectable. Idempotent. */
  release(sandbox: SandboxId): Promise<void>;
}

// ---------------------------------------------------------------------------
// Network (node-agent/network/)

export interface NetworkRequest {
  sandbox: SandboxRef;
  /** Path of the sandbox network namespace, e.g. /proc/<pid>/ns/net of its PID 1. */
  netnsPath: string;
  hostname: string;
  network: SandboxSpec['network'];
}

export interface NetworkResult {
  /** Sandbox address, absent in mode None. */
  sandboxIP?: string;
  /** Every address of the sandbox, IPv4 first, on a dual-stack node (status.sandboxIPs). */
  sandboxIPs?: string[];
  hostIP: string;
  /** Ports published on the node for the sandbox, as installed (status.publishedPorts). */
  publishedPorts?: PublishedPortStatus[];
  /** File contents the runtime bind-mounts into every container. */
  resolvConf: string;
  hosts: string;
}

export interface NetworkProvider {
  /** Configures the sandbox's network namespace and the node side. Idempotent for the same sandbox. */
  setup(req: NetworkRequest, log: Logger): Promise<NetworkResult>;
  /** Removes everything setup() made for the sandbox, found by name: no stored state needed. Idempotent. */
  teardown(sandbox: SandboxRef, log: Logger): Promise<void>;
  /** Removes what belongs to sandboxes not in `live` (leases, links, rules). */
  collectGarbage(live: Set<SandboxId>, log: Logger): Promise<void>;
}

// ---------------------------------------------------------------------------
// Runtime (node-agent/runtime/), as the agent API and status reporter see it

/** An Event the runtime asks the agent to record on a Sandbox (kubelet's reason words). */
export interface SandboxNotice {
  type: 'Normal' | 'Warning';
  reason: string;
  note: string;
}

/**
 * The runtime as the agent API (node-agent/api/) drives it. apply() is
 * idempotent and level-based: the same UID and generation is a no-op, a new
 * generation converges (changed containers restarted, the sandbox recreated
 * where the edit needs it, paused frozen/thawed: runtime/spec-diff.ts). It
 * answers at once with what the node has; a create runs in the background
 * and reports its progress and failures through onChange.
 */
export interface SandboxRuntime {
  apply(sandbox: Sandbox): Promise<SandboxObservation>;
  /** Stops and removes everything of the sandbox. Idempotent; resolves when nothing is left. */
  remove(uid: string): Promise<void>;
  get(uid: string): SandboxObservation | undefined;
  list(): SandboxObservation[];
  /** Called whenever an observation changes (container exit, restart, IP assigned, ...). */
  onChange(listener: (obs: SandboxObservation) => void): () => void;
  /**
   * Called for what the runtime does that no status write shows on its own
   * (a container restarted for its new definition, a sandbox recreated for
   * an edit): the agent records each as an Event on the Sandbox.
   */
  onNotice?(listener: (ref: SandboxRef, notice: SandboxNotice) => void): () => void;
  /** Bytes the node's image store takes on disk (SandboxNode status.imageDiskUsageBytes); absent when the runtime keeps none. */
  imageDiskUsageBytes?(): number | undefined;
}
