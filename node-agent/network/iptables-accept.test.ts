import assert from 'node:assert/strict';
import type { NftObject } from './nftables.js';
import { compatRulesScript, deleteCompatScript } from './iptables-accept.js';

describe("unit: accept rules in iptables' FORWARD chain", () => {
  const c = { table: 'sandpit', bridge: 'sandpit0', subnet: '10.88.0.0/24' };

  it("adds and finds its accept rules in iptables' FORWARD chain by the bridge name", () => {
    const script = compatRulesScript(c);
    assert.match(
      script,
      /add rule ip filter FORWARD iifname "sandpit0" counter accept comment "sandpit bridge sandpit0"/,
    );
    assert.match(script, /add rule ip filter FORWARD oifname "sandpit0" counter accept/);
    const listing: NftObject[] = [
      { rule: { chain: 'FORWARD', handle: 5, comment: 'sandpit bridge sandpit0' } },
      { rule: { chain: 'FORWARD', handle: 6, comment: 'sandpit bridge other0' } },
    ];
    assert.equal(deleteCompatScript(listing, c), 'delete rule ip filter FORWARD handle 5\n');
  });
});
