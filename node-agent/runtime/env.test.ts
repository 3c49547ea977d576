import assert from 'node:assert/strict';
import { networkOptionsFromEnv } from './env.js';

describe('unit: runtime env: node network from the environment', () => {
  it('maps the variables the Helm chart sets onto the bridge provider options', () => {
    assert.deepEqual(
      networkOptionsFromEnv({
        SANDPIT_RUN_DIR: '/run/sandpit',
        SANDPIT_BRIDGE: 'sbx0',
        SANDPIT_SUBNET: '10.77.3.0/24',
      }),
      {
        stateDir: '/run/sandpit/network',
        bridge: 'sbx0',
        subnet: '10.77.3.0/24',
      },
    );
  });

  it('takes the nftables table name from SANDPIT_NFT_TABLE and refuses one nft would not accept', () => {
    assert.deepEqual(networkOptionsFromEnv({ SANDPIT_NFT_TABLE: 'sandpit_test-1' }), { table: 'sandpit_test-1' });
    assert.throws(
      () => networkOptionsFromEnv({ SANDPIT_NFT_TABLE: 'sandpit;flush ruleset' }),
      /SANDPIT_NFT_TABLE=.* is not a valid nftables table name/,
    );
  });

  it('keeps the provider defaults when nothing is set', () => {
    assert.deepEqual(networkOptionsFromEnv({}), {});
  });
});
