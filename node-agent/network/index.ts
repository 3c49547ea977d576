/*
 * The node's sandbox network: what the rest of the agent uses. The runtime
 * constructs one BridgeNetworkProvider at start-up (on its main thread, in the
 * node's network namespace) and calls setup / teardown / collectGarbage.
 */
export { BridgeNetworkProvider } from './provider.js';
export { DEFAULT_SUBNET, hostVethName, type BridgeNetworkOptions } from './config.js';
export { NetworkError, NetworkReason, networkReadyCondition, type NetworkReadyCondition } from './status.js';
