import assert from 'node:assert/strict';
import type { SandboxSpec } from '../../crds/sandbox.js';
import type { ContainerRecord, Phase, SandboxRecord } from './record.js';
import {
  containerExited,
  deadlinePassed,
  exitReason,
  exitStatusOf,
  sandboxStatus,
  stateAtDeadline,
  statusPhase,
  waitingAfterFailedStart,
  type ExitFacts,
} from './transitions.js';

const T0 = Date.parse('2026-12-01T10:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();
const backoff = { baseMs: 10_000, maxMs: 300_000 };

const running = (name: string, over: Partial<ContainerRecord> = {}): ContainerRecord => ({
  name,
  imageID: 'sha256:x',
  restartCount: 0,
  oomBase: 0,
  pid: 100,
  startedAt: iso(T0),
  state: { running: { startedAt: iso(T0) } },
  ...over,
});
const done = (name: string, exitCode: number): ContainerRecord => ({
  ...running(name),
  pid: undefined,
  state: { terminated: { exitCode, reason: exitCode ? 'Error' : 'Completed' } },
});

type RecordOverrides = Partial<Omit<SandboxRecord, 'spec'>> & { spec?: Partial<SandboxSpec> };

function record(containers: ContainerRecord[], over: RecordOverrides = {}): SandboxRecord {
  const { spec, ...rest } = over;
  return {
    id: 'sb',
    ref: { id: 'sb', namespace: 'ns', name: 'n', uid: 'u' },
    spec: {
      restartPolicy: 'Never',
      containers: containers.map((c) => ({ name: c.name, image: `img-${c.name}` })),
      ...spec,
    } as SandboxSpec,
    phase: 'Running',
    createdAt: iso(T0),
    hostname: 'n',
    images: {},
    containers,
    ...rest,
  };
}

const facts = (exitCode: number, over: Partial<ExitFacts> = {}): ExitFacts => ({
  status: { exitCode },
  finishedAt: iso(T0 + 1000),
  oomKilled: false,
  replacing: false,
  nowMs: T0 + 1000,
  backoff,
  ...over,
});

describe('unit: runtime transitions', () => {
  describe('exitStatusOf: the shim status file', () => {
    const cases: [string, { exitCode: number; signal?: number }][] = [
      ['0', { exitCode: 0 }],
      ['3', { exitCode: 3 }],
      ['143', { exitCode: 143, signal: 15 }],
      ['', { exitCode: 137, signal: 9 }],
    ];
    for (const [text, want] of cases)
      it(`${JSON.stringify(text)} reads as exit ${want.exitCode}`, () => assert.deepEqual(exitStatusOf(text), want));
  });

  describe('exitReason', () => {
    const cases: [Parameters<typeof exitReason>[0], string][] = [
      [{ exitCode: 0, oomKilled: false, deadlineExceeded: false }, 'Completed'],
      [{ exitCode: 2, oomKilled: false, deadlineExceeded: false }, 'Error'],
      [{ exitCode: 137, oomKilled: true, deadlineExceeded: true }, 'OOMKilled'],
      [{ exitCode: 0, oomKilled: false, deadlineExceeded: true }, 'DeadlineExceeded'],
    ];
    for (const [exit, want] of cases)
      it(`${JSON.stringify(exit)}: ${want}`, () => assert.equal(exitReason(exit), want));
  });

  describe('containerExited: restart or phase', () => {
    const cases: {
      what: string;
      rec: () => SandboxRecord;
      facts: ExitFacts;
      want: { state: string; reason?: string; phase: Phase; restartInMs?: number; backoffStep?: number };
    }[] = [
      {
        what: 'Never, exit 0, the only container',
        rec: () => record([running('a')]),
        facts: facts(0),
        want: { state: 'terminated', reason: 'Completed', phase: 'Succeeded' },
      },
      {
        what: 'Never, exit 1',
        rec: () => record([running('a')]),
        facts: facts(1),
        want: { state: 'terminated', reason: 'Error', phase: 'Failed' },
      },
      {
        what: 'Never, exit 0 while another container runs',
        rec: () => record([running('a'), running('b')]),
        facts: facts(0),
        want: { state: 'terminated', reason: 'Completed', phase: 'Running' },
      },
      {
        what: 'Never, exit 0 after another failed',
        rec: () => record([running('a'), done('b', 1)]),
        facts: facts(0),
        want: { state: 'terminated', reason: 'Completed', phase: 'Failed' },
      },
      {
        what: 'Always, exit 0: restarts after the base back-off',
        rec: () => record([running('a')], { spec: { restartPolicy: 'Always' } }),
        facts: facts(0),
        want: { state: 'waiting', reason: 'CrashLoopBackOff', phase: 'Running', restartInMs: 10_000, backoffStep: 0 },
      },
      {
        what: 'Always, third crash in a row: the back-off doubles on',
        rec: () => record([running('a', { restartCount: 2 })], { spec: { restartPolicy: 'Always' } }),
        facts: facts(1),
        want: { state: 'waiting', reason: 'CrashLoopBackOff', phase: 'Running', restartInMs: 40_000, backoffStep: 2 },
      },
      {
        what: 'Always, after a run longer than twice the cap: the back-off starts over',
        rec: () => record([running('a', { restartCount: 5, backoffStep: 5 })], { spec: { restartPolicy: 'Always' } }),
        facts: facts(1, { finishedAt: iso(T0 + 700_000) }),
        want: { state: 'waiting', reason: 'CrashLoopBackOff', phase: 'Running', restartInMs: 10_000, backoffStep: 0 },
      },
      {
        what: 'OnFailure, exit 0: done',
        rec: () => record([running('a')], { spec: { restartPolicy: 'OnFailure' } }),
        facts: facts(0),
        want: { state: 'terminated', reason: 'Completed', phase: 'Succeeded' },
      },
      {
        what: 'OnFailure, exit 1: restarts',
        rec: () => record([running('a')], { spec: { restartPolicy: 'OnFailure' } }),
        facts: facts(1),
        want: { state: 'waiting', reason: 'CrashLoopBackOff', phase: 'Running', restartInMs: 10_000, backoffStep: 0 },
      },
      {
        what: 'OOM killed',
        rec: () => record([running('a')]),
        facts: facts(137, { oomKilled: true }),
        want: { state: 'terminated', reason: 'OOMKilled', phase: 'Failed' },
      },
      {
        what: 'Always, but the sandbox is stopping: nothing restarts',
        rec: () => record([running('a')], { stopping: true, spec: { restartPolicy: 'Always' } }),
        facts: facts(0),
        want: { state: 'terminated', reason: 'Completed', phase: 'Succeeded' },
      },
      {
        what: 'stopped at the deadline, exit 0: Failed all the same',
        rec: () => record([running('a')], { stopping: true, reason: 'DeadlineExceeded' }),
        facts: facts(0),
        want: { state: 'terminated', reason: 'DeadlineExceeded', phase: 'Failed' },
      },
      {
        what: 'the run being replaced: no restart, the phase stays',
        rec: () => record([running('a')], { spec: { restartPolicy: 'Always' } }),
        facts: facts(0, { replacing: true }),
        want: { state: 'terminated', reason: 'Completed', phase: 'Running' },
      },
      {
        what: 'paused, Always: no restart, the sandbox ends',
        rec: () => record([running('a')], { phase: 'Paused', spec: { restartPolicy: 'Always' } }),
        facts: facts(0),
        want: { state: 'terminated', reason: 'Completed', phase: 'Succeeded' },
      },
    ];
    for (const { what, rec, facts: f, want } of cases)
      it(`${what}: ${want.reason}, ${want.phase}`, () => {
        const r = rec();
        const c = r.containers[0]!;
        const before = c.state;
        const out = containerExited(r, c, f);
        assert.deepEqual(Object.keys(out.state), [want.state]);
        assert.equal((out.state.waiting ?? out.state.terminated)?.reason, want.reason);
        assert.equal(out.phase, want.phase);
        assert.equal(out.restart?.at, want.restartInMs === undefined ? undefined : f.nowMs + want.restartInMs);
        assert.equal(out.restart?.backoffStep, want.backoffStep);
        if (out.restart) assert.equal(out.lastState?.terminated?.exitCode, f.status.exitCode);
        else assert.deepEqual(out.lastState, before);
        assert.equal(r.containers[0], c, 'the record is not changed');
        assert.equal(c.state, before);
      });
  });

  it('containerExited: the termination message goes into terminated, and into lastState when the container restarts', () => {
    const c = running('a');
    const final = containerExited(record([c]), c, facts(1, { message: 'disk full' }));
    assert.equal(final.state.terminated?.message, 'disk full');
    const again = containerExited(
      record([c], { spec: { restartPolicy: 'Always' } }),
      c,
      facts(1, { message: 'disk full' }),
    );
    assert.equal(again.state.waiting?.reason, 'CrashLoopBackOff');
    assert.equal(again.lastState?.terminated?.message, 'disk full');
    assert.equal(containerExited(record([c]), c, facts(0)).state.terminated?.message, undefined);
  });

  describe('deadlinePassed', () => {
    const cases: [string, RecordOverrides, number, boolean][] = [
      ['no deadline', {}, T0 + 1e9, false],
      ['before it', { spec: { activeDeadlineSeconds: 10 } }, T0 + 9_999, false],
      ['at it', { spec: { activeDeadlineSeconds: 10 } }, T0 + 10_000, true],
      ['paused past it', { phase: 'Paused', spec: { activeDeadlineSeconds: 10 } }, T0 + 20_000, true],
      ['ended before it', { phase: 'Succeeded', spec: { activeDeadlineSeconds: 10 } }, T0 + 20_000, false],
      ['stopping for a delete', { stopping: true, spec: { activeDeadlineSeconds: 10 } }, T0 + 20_000, false],
      [
        'stopping for the deadline (an agent that died half-way)',
        { stopping: true, reason: 'DeadlineExceeded', spec: { activeDeadlineSeconds: 10 } },
        T0 + 20_000,
        true,
      ],
    ];
    for (const [what, over, now, want] of cases)
      it(`${what}: ${want}`, () => assert.equal(deadlinePassed(record([running('a')], over), now), want));
  });

  describe('stateAtDeadline', () => {
    const exit = { terminated: { exitCode: 1, reason: 'Error' } };
    const cases: [string, Pick<ContainerRecord, 'state' | 'lastState'>, unknown][] = [
      [
        'waiting to restart: its last exit',
        { state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: exit },
        exit,
      ],
      ['terminated: as it is', { state: exit }, exit],
      ['waiting, never ran: as it is', { state: { waiting: { reason: 'X' } } }, { waiting: { reason: 'X' } }],
    ];
    for (const [what, c, want] of cases) it(what, () => assert.deepEqual(stateAtDeadline(c), want));
  });

  it('unit: a failed start waits with the error reason, or the fallback', () => {
    assert.deepEqual(waitingAfterFailedStart('CreateContainerError', 'm', 'RunContainerError'), {
      waiting: { reason: 'CreateContainerError', message: 'm' },
    });
    assert.deepEqual(waitingAfterFailedStart(undefined, 'm', 'RunContainerError'), {
      waiting: { reason: 'RunContainerError', message: 'm' },
    });
  });

  describe('statusPhase', () => {
    const cases: [Phase, string][] = [
      ['Creating', 'Pending'],
      ['Running', 'Running'],
      ['Paused', 'Paused'],
      ['Succeeded', 'Succeeded'],
      ['Failed', 'Failed'],
      ['Deleting', 'Running'],
    ];
    for (const [phase, want] of cases) it(`${phase}: ${want}`, () => assert.equal(statusPhase(phase), want));
  });

  it('sandboxStatus: the record as status, ready while a run has a shim', () => {
    const rec = record([running('a'), done('b', 0)], { reason: 'DeadlineExceeded', message: 'late' });
    const usage = { cpu: '1m', memory: '10', pids: 2 };
    const s = sandboxStatus(rec, usage);
    assert.equal(s.phase, 'Running');
    assert.equal(s.startTime, iso(T0));
    assert.equal(s.reason, 'DeadlineExceeded');
    assert.equal(s.message, 'late');
    assert.deepEqual(
      s.containerStatuses?.map((c) => [c.name, c.image, c.ready]),
      [
        ['a', 'img-a', true],
        ['b', 'img-b', false],
      ],
    );
    assert.deepEqual(s.usage, usage);
    assert.ok(!('reason' in sandboxStatus(record([running('a')]), usage)), 'no reason without one');
  });
});
