import assert from 'node:assert/strict';
import { bytes, milliCpu, parseQuantity } from '../../crds/quantity.js';
import { addUsage, scheduleSandbox, type NodeInfo, type NodeUsage } from './scheduler.js';

const node = (name: string, over: Partial<NodeInfo> = {}): NodeInfo => ({
  name,
  labels: {},
  ready: true,
  unschedulable: false,
  allocatable: { milliCpu: 2000, memory: 4 * 2 ** 30, sandboxes: 10 },
  ...over,
});
const container = (cpu?: string, memory?: string) => ({
  name: 'c',
  image: 'busybox',
  tty: false,
  ...(cpu || memory ? { resources: { requests: { ...(cpu ? { cpu } : {}), ...(memory ? { memory } : {}) } } } : {}),
});
const spec = (over: Record<string, unknown> = {}) =>
  ({ containers: [container()], resources: { pids: 1024 }, ...over }) as Parameters<typeof scheduleSandbox>[0];

describe('unit: quantities', () => {
  it('parses decimal, binary and exponent suffixes like the API server', () => {
    assert.equal(milliCpu('500m'), 500);
    assert.equal(milliCpu('1.5'), 1500);
    assert.equal(milliCpu(2), 2000);
    assert.equal(bytes('128Mi'), 128 * 2 ** 20);
    assert.equal(bytes('1G'), 1e9);
    assert.equal(bytes('1e3'), 1000);
    assert.equal(parseQuantity('.5'), 0.5);
    assert.equal(milliCpu('100u'), 0);
  });

  it('rejects what is not a quantity', () => {
    assert.throws(() => parseQuantity('12 cores'), /not a Kubernetes quantity/);
    assert.throws(() => parseQuantity('1Mb'), /not a Kubernetes quantity/);
  });
});

describe('unit: scheduling', () => {
  it('spreads: picks the least loaded node that fits', () => {
    const usage = new Map<string, NodeUsage>([['a', { milliCpu: 1000, memory: 0, sandboxes: 1 }]]);
    assert.deepEqual(scheduleSandbox(spec({ containers: [container('100m')] }), [node('a'), node('b')], usage), {
      node: 'b',
    });
  });

  it('spreads successive sandboxes round the nodes as usage accrues', () => {
    const usage = new Map<string, NodeUsage>();
    const placed: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = scheduleSandbox(spec(), [node('a'), node('b')], usage);
      assert.ok(r.node);
      placed.push(r.node);
      addUsage(usage, r.node, { milliCpu: 0, memory: 0 });
    }
    assert.deepEqual(placed, ['a', 'b', 'a', 'b']);
  });

  it('honours the nodeSelector', () => {
    const r = scheduleSandbox(
      spec({ nodeSelector: { zone: 'x' } }),
      [node('a'), node('b', { labels: { zone: 'x' } })],
      new Map(),
    );
    assert.deepEqual(r, { node: 'b' });
  });

  it('says NodeSelectorMismatch when no node has the labels', () => {
    const r = scheduleSandbox(spec({ nodeSelector: { gpu: 'yes' } }), [node('a'), node('b')], new Map());
    assert.equal(r.node, undefined);
    assert.equal('reason' in r && r.reason, 'NodeSelectorMismatch');
    assert.match(
      'message' in r ? r.message : '',
      /0\/2 nodes are available: 2 node\(s\) didn't match the nodeSelector/,
    );
  });

  it('says InsufficientCPU / InsufficientMemory / TooManySandboxes when capacity is short', () => {
    const full = new Map<string, NodeUsage>([['a', { milliCpu: 1900, memory: 4 * 2 ** 30, sandboxes: 10 }]]);
    const reasonOf = (s: ReturnType<typeof spec>) => {
      const r = scheduleSandbox(s, [node('a')], full);
      return 'reason' in r ? r.reason : r.node;
    };
    assert.equal(reasonOf(spec({ containers: [container('200m')] })), 'InsufficientCPU');
    assert.equal(reasonOf(spec({ containers: [container('0', '1Mi')] })), 'InsufficientMemory');
    assert.equal(reasonOf(spec()), 'TooManySandboxes');
  });

  it('mixes reasons into Unschedulable with a count per reason', () => {
    const r = scheduleSandbox(
      spec(),
      [node('a', { ready: false }), node('b', { unschedulable: true }), node('c', { ready: false })],
      new Map(),
    );
    assert.equal('reason' in r && r.reason, 'Unschedulable');
    assert.match(
      'message' in r ? r.message : '',
      /0\/3 nodes are available: 2 node\(s\) not ready, 1 node\(s\) cordoned/,
    );
  });

  it('passes over nodes under MemoryPressure, DiskPressure or PIDPressure, naming the condition', () => {
    const r = scheduleSandbox(spec(), [node('a', { pressure: ['MemoryPressure'] }), node('b')], new Map());
    assert.deepEqual(r, { node: 'b' }, 'the node without pressure takes it, though a sorts first');
    for (const c of ['MemoryPressure', 'DiskPressure', 'PIDPressure'] as const) {
      const none = scheduleSandbox(spec(), [node('a', { pressure: [c] }), node('b', { pressure: [c] })], new Map());
      assert.equal('reason' in none && none.reason, c);
      assert.match(
        'message' in none ? none.message : '',
        new RegExp(`0/2 nodes are available: 2 node\\(s\\) with ${c}`),
      );
    }
    const pinned = scheduleSandbox(
      spec({ nodeName: 'a' }),
      [node('a', { pressure: ['DiskPressure', 'PIDPressure'] })],
      new Map(),
    );
    assert.deepEqual(pinned, { reason: 'DiskPressure', message: 'Pinned node a: DiskPressure is True' });
    const mixed = scheduleSandbox(
      spec(),
      [node('a', { pressure: ['PIDPressure'] }), node('b', { ready: false })],
      new Map(),
    );
    assert.match(
      'message' in mixed ? mixed.message : '',
      /1 node\(s\) with PIDPressure, 1 node\(s\) not ready|1 node\(s\) not ready, 1 node\(s\) with PIDPressure/,
    );
  });

  it('says NoNodes when no agent has registered', () => {
    const r = scheduleSandbox(spec(), [], new Map());
    assert.equal('reason' in r && r.reason, 'NoNodes');
  });

  it('binds a pinned sandbox to its node only, and explains when it cannot', () => {
    assert.deepEqual(scheduleSandbox(spec({ nodeName: 'b' }), [node('a'), node('b')], new Map()), { node: 'b' });
    const missing = scheduleSandbox(spec({ nodeName: 'z' }), [node('a')], new Map());
    assert.equal('reason' in missing && missing.reason, 'NodeNotFound');
    const down = scheduleSandbox(spec({ nodeName: 'a' }), [node('a', { ready: false })], new Map());
    assert.equal('reason' in down && down.reason, 'NodeNotReady');
  });

  it('treats absent allocatable amounts as unlimited', () => {
    const r = scheduleSandbox(
      spec({ containers: [container('64', '1Ti')] }),
      [node('a', { allocatable: {} })],
      new Map(),
    );
    assert.deepEqual(r, { node: 'a' });
  });
});
