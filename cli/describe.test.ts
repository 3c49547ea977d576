import assert from 'node:assert/strict';
import { Sandbox } from '../crds/sandbox.js';
import { formatDescribe } from './describe.js';

const sbx = Sandbox.parse({
  apiVersion: 'sandpit.dev/v1alpha1',
  kind: 'Sandbox',
  metadata: { namespace: 'default', name: 'hello', uid: 'uid-2' },
  spec: { containers: [{ name: 'main', image: 'busybox' }] },
});
const now = Date.parse('2026-01-01T00:10:00Z');
const ev = (uid: string, reason: string, from: string, message: string) => ({
  type: 'Normal',
  reason,
  message,
  eventTime: '2026-01-01T00:09:00Z',
  source: { component: '' },
  reportingComponent: from,
  involvedObject: { uid },
});

describe('unit: kubectl sandpit describe layout', () => {
  it('lays Events out in columns as wide as their widest cell, From and Message apart', () => {
    const out = formatDescribe(
      sbx,
      [ev('uid-2', 'Scheduled', 'sandpit.dev/controller-with-a-long-name', 'Assigned default/hello to node-a')],
      now,
    );
    const lines = out.split('\n');
    const at = lines.indexOf('Events:');
    assert.deepEqual(lines.slice(at + 1, at + 4), [
      '  Type    Reason     Age  From                                     Message',
      '  ----    ------     ---  ----                                     -------',
      '  Normal  Scheduled  60s  sandpit.dev/controller-with-a-long-name  Assigned default/hello to node-a',
    ]);
  });

  it('lists only the Events of this Sandbox, not of an earlier one of the same name', () => {
    const out = formatDescribe(
      sbx,
      [
        ev('uid-1', 'Killing', 'sandpit.dev/agent', 'old sandbox'),
        ev('uid-2', 'Started', 'sandpit.dev/agent', 'Started container main'),
      ],
      now,
    );
    assert.match(out, /Started container main/);
    assert.doesNotMatch(out, /old sandbox/);
    assert.match(formatDescribe(sbx, [ev('uid-1', 'Killing', 'x', 'old')], now), /Events:\n {2}<none>\n$/);
  });
});
