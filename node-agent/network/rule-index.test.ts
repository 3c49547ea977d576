import assert from 'node:assert/strict';
import type { NftObject } from './nftables.js';
import { deleteSandboxRulesScript, plannedRules, rulesOf } from './rule-index.js';
import { sandboxRulesScript } from './rules.js';

describe('unit: nftables rule index', () => {
  const c = { table: 'sandpit', bridge: 'sandpit0', subnet: '10.88.0.0/24' };
  const rule = (chain: string, handle: number, comment?: string): NftObject => ({
    rule: { family: 'inet', table: 'sandpit', chain, handle, comment },
  });

  it('deletes only the rules of the doomed sandboxes, by handle', () => {
    const listing = rulesOf([
      rule('hostports', 7, 'sandpit:0123456789ab port *:tcp/80'),
      rule('sandbox-egress', 9, 'sandpit:ba9876543210 egress deny'),
      rule('forward', 3, 'sandpit: between sandboxes'),
      rule('forward', 4),
    ]);
    assert.equal(
      deleteSandboxRulesScript(c, listing, (id) => id === '0123456789ab'),
      'delete rule inet sandpit hostports handle 7\n',
    );
    assert.equal(
      deleteSandboxRulesScript(c, listing, () => true)
        .split('\n')
        .filter(Boolean).length,
      2,
      'node rules are never a sandbox rule',
    );
  });

  it('remembers the rules a script adds, without handles', () => {
    const script = sandboxRulesScript(c, {
      id: '0123456789ab',
      address: '10.88.0.5',
      ports: [{ hostPort: 8080, containerPort: 80, protocol: 'TCP' }],
      denyEgressExcept: [],
    });
    assert.deepEqual(plannedRules(script), [
      { family: 'inet', chain: 'hostports', handle: -1, comment: 'sandpit:0123456789ab port *:tcp/8080' },
      { family: 'inet', chain: 'sandbox-egress', handle: -1, comment: 'sandpit:0123456789ab egress deny' },
      { family: 'inet', chain: 'sandbox-egress', handle: -1, comment: 'sandpit:0123456789ab egress deny' },
    ]);
  });
});
