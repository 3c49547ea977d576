import assert from 'node:assert/strict';
import { accessFor, bearerToken, parseStreamRequest, refusalMessage } from './request.js';

describe('unit: controller stream requests', () => {
  it('parses the path and keeps the query for the agent', () => {
    const r = parseStreamRequest('/sandboxes/team-a/box-1/exec?command=sh&command=-c&tty=1');
    assert.ok(typeof r !== 'string');
    assert.equal(r.namespace, 'team-a');
    assert.equal(r.name, 'box-1');
    assert.equal(r.action, 'exec');
    assert.deepEqual(r.query.getAll('command'), ['sh', '-c']);
  });

  it('takes the query from X-Sandpit-Query when the proxy dropped it from the URL', () => {
    const r = parseStreamRequest('/sandboxes/a/b/log', 'tailLines=2&previous=1');
    assert.ok(typeof r !== 'string');
    assert.equal(r.query.get('tailLines'), '2');
  });

  it('refuses unknown actions and invalid names with a message', () => {
    assert.match(parseStreamRequest('/sandboxes/a/b/attach') as string, /unknown stream "attach"/);
    assert.match(parseStreamRequest('/sandboxes/A_B/b/exec') as string, /not a valid namespace/);
    assert.match(parseStreamRequest('/healthz') as string, /no stream at/);
  });

  it('checks exec and port-forward like pods/exec (create) and logs like pods/log (get)', () => {
    assert.deepEqual(accessFor('exec'), { verb: 'create', subresource: 'exec' });
    assert.deepEqual(accessFor('portforward'), { verb: 'create', subresource: 'portforward' });
    assert.deepEqual(accessFor('log'), { verb: 'get', subresource: 'log' });
    assert.equal(
      refusalMessage('alice', 'exec', 'x'),
      'User "alice" cannot create sandboxes/exec (sandpit.dev) in namespace "x"',
    );
  });

  it('takes the token from X-Sandpit-Authorization first (the API server proxy strips Authorization)', () => {
    assert.equal(bearerToken({ 'x-sandpit-authorization': 'Bearer abc', authorization: 'Bearer other' }), 'abc');
    assert.equal(bearerToken({ authorization: 'Bearer xyz' }), 'xyz');
    assert.equal(bearerToken({ authorization: 'Basic Zm9v' }), undefined);
  });
});
