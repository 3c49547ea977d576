import assert from 'node:assert/strict';
import { renderHosts, renderResolvConf } from './dns.js';

describe('unit: resolv.conf and hosts', () => {
  const fallback = ['8.8.8.8'];

  it('keeps the node resolvers a sandbox can reach and drops loopback ones', () => {
    const { text, nameservers } = renderResolvConf({
      node: 'nameserver 127.0.0.1\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\nsearch corp.example\noptions edns0\n',
      fallback,
    });
    assert.deepEqual(nameservers, ['192.0.2.53']);
    assert.match(text, /^search corp\.example$/m);
    assert.match(text, /^options edns0$/m);
    assert.doesNotMatch(text, /127\.0\.0\.1|fe80/);
  });

  it('follows systemd-resolved to its upstream servers', () => {
    const { nameservers, text } = renderResolvConf({
      node: 'nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n',
      upstream: 'nameserver 198.51.100.1\nnameserver 198.51.100.2\n',
      fallback,
    });
    assert.deepEqual(nameservers, ['198.51.100.1', '198.51.100.2']);
    assert.match(text, /^search lan$/m);
  });

  it('falls back when nothing reachable is left', () => {
    assert.deepEqual(renderResolvConf({ node: 'nameserver 127.0.0.1\n', fallback }).nameservers, ['8.8.8.8']);
  });

  it('lets the spec override servers, searches and ndots', () => {
    const { text, nameservers } = renderResolvConf({
      node: 'nameserver 192.0.2.53\nsearch a.example\noptions ndots:2 timeout:1\n',
      spec: { nameservers: ['203.0.113.9'], searches: ['svc.example', 'example'], ndots: 5 },
      fallback,
    });
    assert.deepEqual(nameservers, ['203.0.113.9']);
    assert.match(text, /^search svc\.example example$/m);
    assert.match(text, /^options timeout:1 ndots:5$/m);
    assert.doesNotMatch(text, /ndots:2/);
  });

  it('writes the sandbox name on its address, or 127.0.1.1 without one', () => {
    assert.match(renderHosts('web', '10.88.0.5'), /^10\.88\.0\.5\tweb$/m);
    assert.match(renderHosts('web', '10.88.0.5'), /^127\.0\.0\.1\tlocalhost$/m);
    assert.match(renderHosts('web', undefined), /^127\.0\.1\.1\tweb$/m);
  });
});
