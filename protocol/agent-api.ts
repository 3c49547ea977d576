import type { SandboxStatus } from '../crds/sandbox.js';

/*
 * The wire contract of the agent API, shared by the agent (server) and the
 * controller (client). Version in the path so that a mixed-version rollout
 * can tell what it talks to.
 */

export const API_PREFIX = '/v1';

/** CN of the only client certificate the agent API serves (the controller's). */
export const CONTROLLER_CLIENT_CN = 'sandpit-controller';

/** CN of the serving certificate of the agent on `node`; the controller signs no other. */
export const agentCommonName = (node: string) => `system:sandpit-agent:${node}`;

/** Who a sandbox is, in every log line and error about it. */
export interface SandboxRef {
  /** The 12-hex-digit id the agent derives from the UID (names of its links, cgroups, state). */
  id: string;
  namespace: string;
  name: string;
  uid: string;
}

/** What the runtime knows of one sandbox; the agent turns it into the Sandbox status. */
export interface SandboxObservation {
  ref: SandboxRef;
  /** metadata.generation of the spec the runtime last applied. */
  generation: number;
  status: Omit<SandboxStatus, 'nodeName' | 'observedGeneration'>;
}

export const sandboxesPath = () => `${API_PREFIX}/sandboxes`;
export const sandboxPath = (uid: string) => `${API_PREFIX}/sandboxes/${encodeURIComponent(uid)}`;

/** Every error answer of the agent API. `reason` is a CamelCase word to match on. */
export interface ApiErrorBody {
  reason: string;
  message: string;
  sandbox?: string;
  step?: string;
}

export interface ListResponse {
  node: string;
  items: SandboxObservation[];
}

export interface DeleteResponse {
  uid: string;
  removed: true;
}

/**
 * One image pull Secret a Sandbox names, as the controller read it for a PUT:
 * its Docker config JSON, or why it cannot be used (missing, wrong type,
 * malformed, not readable). The agent keeps these in memory for the pulls of
 * that PUT only; they are never written to its state, logs or status.
 */
export interface PullSecretData {
  name: string;
  dockerConfigJson?: string;
  error?: string;
}

/** The PUT body: the Sandbox, with the pull Secrets it names beside it (not part of the Sandbox schema). */
export type PutBody<S> = S & { pullSecrets?: PullSecretData[] };
