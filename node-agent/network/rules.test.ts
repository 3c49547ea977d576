import assert from 'node:assert/strict';
import type { NftObject } from './nftables.js';
import {
  compatRulesScript,
  deleteCompatScript,
  deleteSandboxRulesScript,
  hostPortConflicts,
  nodeRulesScript,
  plannedRules,
  publishedByRules,
  ruleOwner,
  rulesOf,
  sandboxRulesScript,
} from './rules.js';

describe('unit: nftables rule generation', () => {
  const c = { table: 'sandpit', bridge: 'sandpit0', subnet: '10.88.0.0/24' };
  const rule = (chain: string, handle: number, comment?: string): NftObject => ({
    rule: { family: 'inet', table: 'sandpit', chain, handle, comment },
  });

  it('rewrites base chains whole, so ensuring twice never duplicates', () => {
    const script = nodeRulesScript(c);
    for (const chain of ['raw-prerouting', 'nat-prerouting', 'nat-output', 'nat-postrouting', 'forward', 'input']) {
      assert.ok(
        script.indexOf(`flush chain inet sandpit ${chain}`) > script.indexOf(`add chain inet sandpit ${chain} {`),
        chain,
      );
    }
    assert.doesNotMatch(
      script,
      /flush chain inet sandpit (hostports|sandbox-egress)/,
      'per-sandbox chains are never flushed',
    );
    assert.match(script, /oifname != "sandpit0" ip saddr 10\.88\.0\.0\/24 ip daddr != 224\.0\.0\.0\/4 masquerade/);
    assert.match(script, /iifname "sandpit0" ip daddr 127\.0\.0\.0\/8 drop/);
    assert.match(script, /oifname "sandpit0" drop/);
  });

  it('publishes ports with DNAT and names the sandbox in every rule', () => {
    const script = sandboxRulesScript(c, {
      id: '0123456789ab',
      address: '10.88.0.5',
      ports: [
        { hostPort: 8080, containerPort: 80, protocol: 'TCP' },
        { hostIP: '192.0.2.2', hostPort: 5353, containerPort: 53, protocol: 'UDP' },
      ],
    });
    assert.match(
      script,
      /hostports meta nfproto ipv4 tcp dport 8080 dnat ip to 10\.88\.0\.5:80 comment "sandpit:0123456789ab port \*:tcp\/8080"/,
    );
    assert.match(script, /ip daddr 192\.0\.2\.2 udp dport 5353 dnat ip to 10\.88\.0\.5:53/);
    for (const line of script.trim().split('\n'))
      assert.equal(ruleOwner(/comment "([^"]+)"/.exec(line)?.[1]), '0123456789ab');
  });

  it('denies egress except DNS to the resolvers, after letting replies out', () => {
    const lines = sandboxRulesScript(c, {
      id: '0123456789ab',
      address: '10.88.0.5',
      ports: [],
      denyEgressExcept: ['192.0.2.53'],
    })
      .trim()
      .split('\n');
    assert.equal(lines.length, 3);
    assert.match(lines[0]!, /ct state established,related return/);
    assert.match(lines[1]!, /ip daddr \{ 192\.0\.2\.53 \} meta l4proto \{ tcp, udp \} th dport 53 return/);
    assert.match(lines[2]!, /ip saddr 10\.88\.0\.5 reject/);
    assert.equal(
      sandboxRulesScript(c, { id: '0123456789ab', address: '10.88.0.5', ports: [], denyEgressExcept: [] })
        .trim()
        .split('\n').length,
      2,
    );
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

  it('on a dual-stack node adds IPv6 masquerade, DNAT, anti-spoofing and egress Deny, tagged like the rest', () => {
    const c6 = { ...c, subnet6: 'fd00:88::/64' };
    assert.match(
      nodeRulesScript(c6),
      /oifname != "sandpit0" ip6 saddr fd00:88::\/64 ip6 daddr != ff00::\/8 masquerade/,
    );
    assert.doesNotMatch(nodeRulesScript(c), /ip6/, 'nothing IPv6 on an IPv4-only node');
    const script = sandboxRulesScript(c6, {
      id: '0123456789ab',
      address: '10.88.0.5',
      address6: 'fd00:88::a58:5',
      hostLink: 'spv123456789ab',
      ports: [
        { hostPort: 8080, containerPort: 80, protocol: 'TCP' },
        { hostIP: '192.0.2.2', hostPort: 8443, containerPort: 443, protocol: 'TCP' },
      ],
      denyEgressExcept: [],
      denyEgressExcept6: ['fd00:53::1'],
    });
    assert.match(script, /meta nfproto ipv6 tcp dport 8080 dnat ip6 to \[fd00:88::a58:5\]:80/);
    assert.doesNotMatch(script, /ipv6 tcp dport 8443/, 'a port on an IPv4 hostIP is not published on IPv6');
    assert.match(script, /ether type ip6 ip6 saddr != \{ fd00:88::a58:5, fe80::\/10, :: \} drop/);
    assert.match(script, /ip6 saddr fd00:88::a58:5 icmpv6 type \{ nd-neighbor-solicit, nd-neighbor-advert \} return/);
    assert.match(
      script,
      /ip6 saddr fd00:88::a58:5 ip6 daddr \{ fd00:53::1 \} meta l4proto \{ tcp, udp \} th dport 53 return/,
    );
    assert.match(script, /ip6 saddr fd00:88::a58:5 reject/);
    for (const line of script.trim().split('\n'))
      assert.equal(ruleOwner(/comment "([^"]+)"/.exec(line)?.[1]), '0123456789ab');
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

  it('pins each bridge port to its sandbox address, in the bridge family', () => {
    const script = sandboxRulesScript(c, {
      id: '0123456789ab',
      address: '10.88.0.5',
      hostLink: 'spv123456789ab',
      ports: [],
    });
    assert.match(
      script,
      /add rule bridge sandpit anti-spoof iifname "spv123456789ab" ether type ip ip saddr != 10\.88\.0\.5 drop comment "sandpit:0123456789ab anti-spoof"/,
    );
    assert.match(script, /iifname "spv123456789ab" ether type arp arp saddr ip != 10\.88\.0\.5 drop/);
    const planned = plannedRules(script);
    assert.deepEqual(
      planned.map((r) => r.family),
      ['bridge', 'bridge'],
    );
    assert.equal(
      deleteSandboxRulesScript(
        c,
        planned.map((r, i) => ({ ...r, handle: i + 3 })),
        () => true,
      ),
      'delete rule bridge sandpit anti-spoof handle 3\ndelete rule bridge sandpit anti-spoof handle 4\n',
    );
  });

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
