import type { SandboxObservation } from '../contracts.js';

/*
 * The wire contract of the agent API, shared by the agent (server) and the
 * controller (client). Version in the path so that a mixed-version rollout
 * can tell what it talks to.
 */

export const API_PREFIX = '/v1';
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
