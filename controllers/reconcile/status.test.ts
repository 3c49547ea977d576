import assert from 'node:assert/strict';
import { Sandbox } from '../../crds/sandbox.js';
import {
  agentApplyFailedStatus,
  rescheduleStatus,
  reschedulesAfterNodeLoss,
  schedulingWindowLeft,
  unschedulableStatus,
} from './status.js';

describe('unit: rescheduling the sandboxes of a lost node', () => {
  const sbx = (spec: Record<string, unknown> = {}, status: Record<string, unknown> = {}) =>
    Sandbox.parse({
      apiVersion: 'sandpit.dev/v1alpha1',
      kind: 'Sandbox',
      metadata: { name: 's', namespace: 'ns', uid: 'u1', generation: 3 },
      spec: { containers: [{ name: 'main', image: 'busybox' }], ...spec },
      status: {
        phase: 'Running',
        nodeName: 'lost',
        sandboxIP: '10.88.1.5',
        hostIP: '172.29.1.11',
        conditions: [],
        ...status,
      },
    });

  it('follows restartPolicy: Always and OnFailure move, Never stays; a pinned or finished sandbox stays', () => {
    assert.equal(reschedulesAfterNodeLoss(sbx()), true, 'Always is the default');
    assert.equal(reschedulesAfterNodeLoss(sbx({ restartPolicy: 'OnFailure' })), true);
    assert.equal(reschedulesAfterNodeLoss(sbx({ restartPolicy: 'Never' })), false);
    assert.equal(reschedulesAfterNodeLoss(sbx({ nodeName: 'lost' })), false, 'spec.nodeName pins it to the lost node');
    assert.equal(reschedulesAfterNodeLoss(sbx({ restartPolicy: 'OnFailure' }, { phase: 'Succeeded' })), false);
    assert.equal(
      reschedulesAfterNodeLoss(sbx({}, { phase: 'Failed', reason: 'NodeLost' })),
      false,
      'a sandbox already given up stays given up',
    );
  });

  it('unbinds: Pending with reason NodeLost, the old node facts removed by merge-patch nulls', () => {
    const p = rescheduleStatus(sbx(), 'lost') as Record<string, unknown>;
    assert.equal(p.phase, 'Pending');
    assert.equal(p.reason, 'NodeLost');
    assert.equal(p.observedGeneration, 3);
    for (const k of ['nodeName', 'sandboxIP', 'hostIP', 'containerStatuses', 'startTime'])
      assert.equal(p[k], null, `${k} is removed`);
    const cond = (t: string) =>
      (p.conditions as { type: string; status: string; reason: string }[]).find((c) => c.type === t);
    assert.equal(cond('Scheduled')?.status, 'False');
    assert.equal(cond('Ready')?.reason, 'NodeLost');
    assert.equal(cond('Reconciling')?.status, 'True');
    assert.equal(cond('Stalled'), undefined);
    assert.match(String(p.message), /Node lost was lost/);
  });
});

describe('unit: an unschedulable sandbox, as kstatus judges an unschedulable Pod', () => {
  const created = Date.parse('2026-12-07T10:00:00Z');
  const WINDOW = 15_000; // kstatus's ScheduleWindow for Pods
  const sbx = (status?: Record<string, unknown>) =>
    Sandbox.parse({
      apiVersion: 'sandpit.dev/v1alpha1',
      kind: 'Sandbox',
      metadata: { name: 's', namespace: 'ns', uid: 'u1', generation: 1, creationTimestamp: '2026-12-07T10:00:00Z' },
      spec: { containers: [{ name: 'main', image: 'busybox' }] },
      ...(status ? { status } : {}),
    });
  const types = (p: ReturnType<typeof unschedulableStatus>) =>
    Object.fromEntries((p?.conditions ?? []).map((c) => [c.type, c]));

  it('is Reconciling within the window, then Stalled (Reconciling removed), still Pending and retried', () => {
    const early = unschedulableStatus(sbx(), 'NoNodeMatches', '0/1 SandboxNodes match', created + 5_000);
    assert.equal(types(early).Reconciling?.status, 'True');
    assert.equal(types(early).Stalled, undefined);
    assert.equal(
      schedulingWindowLeft(sbx(), created + 5_000),
      WINDOW - 5_000,
      'the controller comes back when the window closes',
    );
    const late = unschedulableStatus(
      sbx(early as Record<string, unknown>),
      'NoNodeMatches',
      '0/1 SandboxNodes match',
      created + WINDOW,
    );
    assert.equal(types(late).Stalled?.reason, 'Unschedulable');
    assert.match(types(late).Stalled?.message ?? '', /0\/1 SandboxNodes match/);
    assert.equal(types(late).Reconciling, undefined);
    assert.equal(late?.phase, 'Pending');
    assert.equal(schedulingWindowLeft(sbx(), created + WINDOW), 0);
  });
});

describe('unit: an agent that did not take the sandbox', () => {
  const sbx = (status: Record<string, unknown>) =>
    Sandbox.parse({
      apiVersion: 'sandpit.dev/v1alpha1',
      kind: 'Sandbox',
      metadata: { name: 's', namespace: 'ns', uid: 'u1', generation: 2 },
      spec: { containers: [{ name: 'main', image: 'busybox' }] },
      status,
    });
  const cases: [
    string,
    Record<string, unknown>,
    string,
    { reason?: string; ready?: string; reconciling?: string } | undefined,
  ][] = [
    [
      'unreachable while creating',
      { phase: 'Pending', nodeName: 'n1' },
      'Unreachable',
      { reason: 'AgentUnreachable', ready: 'False/AgentUnreachable', reconciling: 'True/AgentUnreachable' },
    ],
    [
      'an error answer while creating',
      { phase: 'Pending', nodeName: 'n1' },
      'EACCES',
      { reason: 'AgentError', ready: 'False/AgentError', reconciling: 'True/AgentError' },
    ],
    [
      'a new generation refused while the old one runs: Ready stays',
      {
        phase: 'Running',
        nodeName: 'n1',
        conditions: [
          { type: 'Ready', status: 'True', reason: 'Running', message: '', lastTransitionTime: '2026-01-01T00:00:00Z' },
        ],
      },
      'Unreachable',
      { ready: 'True/Running', reconciling: 'True/AgentUnreachable' },
    ],
    ['a finished sandbox: nothing', { phase: 'Succeeded', nodeName: 'n1' }, 'Unreachable', undefined],
  ];
  for (const [what, status, agentReason, want] of cases) {
    it(what, () => {
      const patch = agentApplyFailedStatus(sbx(status), 'n1', agentReason, 'connect ECONNREFUSED');
      if (!want) return assert.equal(patch, undefined);
      const c = (t: string) => patch?.conditions?.find((x) => x.type === t);
      assert.equal(patch?.reason, want.reason);
      assert.equal(`${c('Ready')?.status}/${c('Ready')?.reason}`, want.ready);
      assert.equal(`${c('Reconciling')?.status}/${c('Reconciling')?.reason}`, want.reconciling);
      assert.match(
        c('Reconciling')?.message ?? '',
        /agent on n1 did not take the sandbox; the controller retries: connect ECONNREFUSED/,
      );
    });
  }
  it('writes nothing when the status already says it', () => {
    const first = agentApplyFailedStatus(sbx({ phase: 'Pending', nodeName: 'n1' }), 'n1', 'Unreachable', 'x')!;
    assert.equal(
      agentApplyFailedStatus(sbx({ phase: 'Pending', nodeName: 'n1', ...first }), 'n1', 'Unreachable', 'x'),
      undefined,
    );
  });
});
