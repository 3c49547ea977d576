/*
 * The runtime module the agent loads (node-agent/main.ts; SANDPIT_RUNTIME_MODULE swaps it):
 * createRuntime wires the node's runtime (compose.ts) and resolves to the RuntimeService the
 * agent API drives (service.ts).
 */
export { createRuntime } from './compose.js';
