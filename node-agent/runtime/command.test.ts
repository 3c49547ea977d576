import assert from 'node:assert/strict';
import type { ImageConfig } from '../contracts.js';
import {
  containerArgv,
  containerEnv,
  DEFAULT_PATH,
  expandVars,
  resolveCommand,
  specEnv,
  type CommandSpec,
} from './command.js';

const vars = new Map([
  ['A', 'x'],
  ['EMPTY', ''],
  ['B.C', 'dot'],
]);

describe('unit: runtime: container command and env as kubelet and containerd make them', () => {
  const expansions: [string, string][] = [
    ['plain', 'plain'],
    ['$(A)', 'x'],
    ['<$(A)$(A)>', '<xx>'],
    ['$(EMPTY)|', '|'],
    ['$(B.C)', 'dot'],
    ['$(UNDEFINED)', '$(UNDEFINED)'],
    ['$$(A)', '$(A)'],
    ['$$$(A)', '$x'],
    ['$$$$', '$$'],
    ['$$', '$'],
    ['$', '$'],
    ['a$', 'a$'],
    ['$A', '$A'],
    ['${A}', '${A}'],
    ['$(A', '$(A'],
    ['$($(A))', '$($(A))'],
    ['$()', '$()'],
  ];
  for (const [input, want] of expansions) {
    it(`expands ${JSON.stringify(input)} to ${JSON.stringify(want)}`, () =>
      assert.equal(expandVars(input, vars), want));
  }

  const envs: { name: string; env: CommandSpec['env']; want: Record<string, string> }[] = [
    {
      name: 'refers to an earlier entry',
      env: [
        { name: 'A', value: '1' },
        { name: 'B', value: '$(A)-2' },
      ],
      want: { A: '1', B: '1-2' },
    },
    {
      name: 'leaves a later entry as written',
      env: [
        { name: 'B', value: '$(A)-2' },
        { name: 'A', value: '1' },
      ],
      want: { B: '$(A)-2', A: '1' },
    },
    {
      name: 'a repeated name takes the last value, seeing the one before',
      env: [
        { name: 'A', value: '1' },
        { name: 'A', value: '$(A)2' },
      ],
      want: { A: '12' },
    },
    {
      name: 'escapes $$',
      env: [
        { name: 'A', value: '1' },
        { name: 'B', value: '$$(A)' },
      ],
      want: { A: '1', B: '$(A)' },
    },
    { name: 'a missing value is empty', env: [{ name: 'A' }], want: { A: '' } },
  ];
  for (const t of envs) {
    it(`spec env: ${t.name}`, () => assert.deepEqual(Object.fromEntries(specEnv(t.env)), t.want));
  }

  const images: { name: string; image: string[]; spec?: Record<string, string>; want: Record<string, string> }[] = [
    { name: 'no image env: default PATH and HOSTNAME', image: [], want: { PATH: DEFAULT_PATH, HOSTNAME: 'h' } },
    {
      name: 'image env replaces PATH in place and adds',
      image: ['PATH=/bin', 'A=1'],
      want: { PATH: '/bin', HOSTNAME: 'h', A: '1' },
    },
    {
      name: 'spec env wins over the image',
      image: ['A=1', 'B=2'],
      spec: { A: 'spec' },
      want: { PATH: DEFAULT_PATH, HOSTNAME: 'h', A: 'spec', B: '2' },
    },
    { name: 'a value may hold =', image: ['A=b=c'], want: { PATH: DEFAULT_PATH, HOSTNAME: 'h', A: 'b=c' } },
    { name: 'an entry without = unsets an earlier one', image: ['A=1', 'A', 'PATH'], want: { HOSTNAME: 'h' } },
    {
      name: 'an entry without = for an unknown name is nothing',
      image: ['NOPE'],
      want: { PATH: DEFAULT_PATH, HOSTNAME: 'h' },
    },
    { name: 'an entry with an empty name is dropped', image: ['=x', ''], want: { PATH: DEFAULT_PATH, HOSTNAME: 'h' } },
    {
      name: 'the spec may set what the image unset',
      image: ['PATH'],
      spec: { PATH: '/x' },
      want: { HOSTNAME: 'h', PATH: '/x' },
    },
  ];
  for (const t of images) {
    it(`process env: ${t.name}`, () =>
      assert.deepEqual(containerEnv({ env: t.image }, new Map(Object.entries(t.spec ?? {})), 'h'), t.want));
  }

  const image: ImageConfig = { entrypoint: ['/ep', '$(A)'], cmd: ['--default', '$(A)'] };
  const argvs: { name: string; image?: ImageConfig; spec: CommandSpec; want: string[] }[] = [
    { name: 'neither: ENTRYPOINT then CMD, not expanded', spec: {}, want: ['/ep', '$(A)', '--default', '$(A)'] },
    { name: 'args alone replace CMD', spec: { args: ['x', '$(A)'] }, want: ['/ep', '$(A)', 'x', 'x'] },
    {
      name: 'command replaces ENTRYPOINT and drops CMD',
      spec: { command: ['/bin/sh', '$(A)'] },
      want: ['/bin/sh', 'x'],
    },
    {
      name: 'command and args',
      spec: { command: ['/bin/sh'], args: ['-c', 'echo $$(A) $(A) $(NOPE)'] },
      want: ['/bin/sh', '-c', 'echo $(A) x $(NOPE)'],
    },
    { name: 'empty args are unset, as over the CRI', spec: { args: [] }, want: ['/ep', '$(A)', '--default', '$(A)'] },
    {
      name: 'an empty command is unset, as over the CRI',
      spec: { command: [], args: ['y'] },
      want: ['/ep', '$(A)', 'y'],
    },
    { name: 'an ENTRYPOINT of [""] is none', image: { entrypoint: [''], cmd: ['/c'] }, spec: {}, want: ['/c'] },
    { name: 'CMD alone', image: { cmd: ['/c'] }, spec: {}, want: ['/c'] },
    { name: 'args on an image with CMD only', image: { cmd: ['/c'] }, spec: { args: ['/a'] }, want: ['/a'] },
  ];
  for (const t of argvs) {
    it(`argv: ${t.name}`, () => assert.deepEqual(containerArgv(t.image ?? image, t.spec, vars), t.want));
  }

  it('refuses a container with nothing to run', () => {
    assert.throws(() => containerArgv({}, {}, vars), /no command/);
    assert.throws(() => containerArgv({ entrypoint: [''] }, { args: [] }, vars), /no command/);
  });

  it('expands command and args with the spec env only, not the image env', () => {
    const r = resolveCommand(
      { env: ['IMG=1'], entrypoint: ['/ep'] },
      { args: ['$(IMG)', '$(S)'], env: [{ name: 'S', value: 's' }] },
      'h',
    );
    assert.deepEqual(r.argv, ['/ep', '$(IMG)', 's']);
    assert.deepEqual(r.env, { PATH: DEFAULT_PATH, HOSTNAME: 'h', IMG: '1', S: 's' });
  });
});
