import assert from 'node:assert/strict';
import { deleteSandboxRulesScript, plannedRules, ruleOwner } from './rule-index.js';
import { nodeRulesScript, sandboxRulesScript } from './rules.js';

describe('unit: nftables rule generation', () => {
  const c = { table: 'sandpit', bridge: 'sandpit0', subnet: '10.88.0.0/24' };

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
});
