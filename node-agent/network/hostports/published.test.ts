import assert from 'node:assert/strict';
import type { NftObject } from '../nftables.js';
import { plannedRules, ruleOwner, rulesOf } from '../rule-index.js';
import { sandboxRulesScript } from '../rules.js';
import { hostPortConflicts, publishedByRules } from './published.js';

describe('unit: published ports read from the rules', () => {
  const c = { table: 'sandpit', bridge: 'sandpit0', subnet: '10.88.0.0/24' };
  const rule = (chain: string, handle: number, comment?: string): NftObject => ({
    rule: { family: 'inet', table: 'sandpit', chain, handle, comment },
  });

  it('finds hostPort clashes across sandboxes, overlapping host addresses included', () => {
    const listing = rulesOf([
      rule('hostports', 7, 'sandpit:0123456789ab port *:tcp/8080'),
      rule('hostports', 8, 'sandpit:0123456789ab port 192.0.2.2:udp/53'),
    ]);
    assert.equal(
      hostPortConflicts(listing, 'ba9876543210', [
        { hostPort: 8080, containerPort: 1, protocol: 'TCP', hostIP: '192.0.2.9' },
      ]).length,
      1,
    );
    assert.equal(
      hostPortConflicts(listing, 'ba9876543210', [{ hostPort: 8080, containerPort: 1, protocol: 'UDP' }]).length,
      0,
    );
    assert.equal(
      hostPortConflicts(listing, 'ba9876543210', [
        { hostPort: 53, containerPort: 1, protocol: 'UDP', hostIP: '192.0.2.3' },
      ]).length,
      0,
    );
    assert.equal(
      hostPortConflicts(listing, 'ba9876543210', [{ hostPort: 53, containerPort: 1, protocol: 'UDP' }]).length,
      1,
    );
    assert.equal(
      hostPortConflicts(listing, '0123456789ab', [{ hostPort: 8080, containerPort: 1, protocol: 'TCP' }]).length,
      0,
      'a sandbox does not clash with itself',
    );
  });

  it('reads the published ports back from the rules, once per sandbox and port (what a restarted agent holds again)', () => {
    // The IPv4 and IPv6 DNAT of one port carry the same comment; node rules and egress rules name no port.
    const script = sandboxRulesScript(c, {
      id: '0123456789ab',
      owner: 'ns/web',
      address: '10.88.0.5',
      address6: 'fd00::a58:5',
      hostLink: 'sp0123456789ab',
      ports: [
        { hostPort: 8080, containerPort: 80, protocol: 'TCP' },
        { hostIP: '192.0.2.2', hostPort: 5353, containerPort: 53, protocol: 'UDP' },
      ],
      denyEgressExcept: [],
    });
    const listing = [
      ...plannedRules(script),
      ...rulesOf([
        rule('forward', 3, 'sandpit: between sandboxes'),
        rule('hostports', 9, 'sandpit:ba9876543210 port *:udp/9000'),
      ]),
    ];
    assert.deepEqual(publishedByRules(listing), [
      { owner: '0123456789ab', protocol: 'TCP', hostPort: 8080, ownerName: 'ns/web' },
      { owner: '0123456789ab', protocol: 'UDP', hostPort: 5353, hostIP: '192.0.2.2', ownerName: 'ns/web' },
      { owner: 'ba9876543210', protocol: 'UDP', hostPort: 9000 },
    ]);
  });

  it('names the owner of a published port in its comment, cut to what nftables keeps, and reads it back on a clash', () => {
    const long = `ns/${'n'.repeat(200)}`;
    const script = sandboxRulesScript(c, {
      id: '0123456789ab',
      owner: long,
      address: '10.88.0.5',
      ports: [{ hostPort: 8080, containerPort: 80, protocol: 'TCP' }],
    });
    const comment = /comment "([^"]+)"/.exec(script)![1]!;
    assert.ok(comment.length <= 127, `${comment.length} bytes`);
    assert.match(comment, /^sandpit:0123456789ab port \*:tcp\/8080 for ns\/n+$/);
    const named = sandboxRulesScript(c, {
      id: '0123456789ab',
      owner: 'team-a/web',
      address: '10.88.0.5',
      ports: [{ hostPort: 8080, containerPort: 80, protocol: 'TCP' }],
    });
    const listing = plannedRules(named).map((r) => ({ ...r, handle: 4 }));
    assert.deepEqual(
      hostPortConflicts(listing, 'ba9876543210', [{ hostPort: 8080, containerPort: 1, protocol: 'TCP' }]).map((x) => [
        x.owner,
        x.ownerName,
      ]),
      [['0123456789ab', 'team-a/web']],
    );
    assert.equal(ruleOwner(listing[0]!.comment), '0123456789ab');
  });
});
