import { SandpitError } from '../../lib/errors.js';
import { join } from 'node:path';
import { TABLE_NAME, type BridgeNetworkOptions } from '../network/config.js';

/**
 * The node network as the Helm chart configures it: SANDPIT_RUN_DIR (leases in
 * its network/ subdir, default /run/sandpit), SANDPIT_BRIDGE (sandpit0) and
 * SANDPIT_SUBNET (10.88.0.0/24), SANDPIT_NFT_TABLE (sandpit: the name of the
 * `inet` and `bridge` tables; a second agent or a test on the same host needs
 * its own). Unset variables keep the provider's defaults.
 */
export function networkOptionsFromEnv(env: NodeJS.ProcessEnv): BridgeNetworkOptions {
  const opts: BridgeNetworkOptions = {};
  if (env.SANDPIT_RUN_DIR) opts.stateDir = join(env.SANDPIT_RUN_DIR, 'network');
  if (env.SANDPIT_BRIDGE) opts.bridge = env.SANDPIT_BRIDGE;
  if (env.SANDPIT_SUBNET) opts.subnet = env.SANDPIT_SUBNET;
  if (env.SANDPIT_NFT_TABLE) {
    if (!TABLE_NAME.test(env.SANDPIT_NFT_TABLE))
      throw new SandpitError({
        step: 'read the node network settings',
        message: `SANDPIT_NFT_TABLE=${env.SANDPIT_NFT_TABLE} is not a valid nftables table name`,
        hint: 'a letter, then up to 31 letters, digits, _ or -',
      });
    opts.table = env.SANDPIT_NFT_TABLE;
  }
  // Optional: an IPv6 ULA prefix makes the node dual-stack (node-agent/network/README.md).
  if (env.SANDPIT_SUBNET6) opts.subnet6 = env.SANDPIT_SUBNET6;
  return opts;
}
