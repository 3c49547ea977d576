import assert from 'node:assert/strict';
import { isRemote, parseArgs, parseDuration } from './args.js';

describe('unit: kubectl-sandpit arguments', () => {
  it('parses exec like kubectl: flags before --, the command untouched after it', () => {
    const { globals, command } = parseArgs([
      '-n',
      'team',
      'exec',
      'box',
      '-c',
      'side',
      '-it',
      '--',
      'sh',
      '-c',
      'echo -n hi',
    ]);
    assert.equal(globals.namespace, 'team');
    assert.deepEqual(command, {
      name: 'exec',
      sandbox: 'box',
      container: 'side',
      stdin: true,
      tty: true,
      command: ['sh', '-c', 'echo -n hi'],
    });
  });

  it('says how to fix common mistakes', () => {
    assert.throws(() => parseArgs(['exec', 'box']), /needs a command after --/);
    assert.throws(() => parseArgs(['exec', 'box', 'ls']), /put the command after --/);
    assert.throws(() => parseArgs(['logs']), /logs needs a SANDBOX name/);
    assert.throws(() => parseArgs(['logs', 'box', '--tail', 'x']), /--tail must be a number/);
    assert.throws(() => parseArgs(['port-forward', 'box', '99999']), /ports are 0-65535/);
    assert.throws(() => parseArgs(['cp', 'a', 'b']), /exactly one of source and destination/);
    assert.throws(() => parseArgs(['attach', 'box']), /unknown command "attach"/);
    assert.throws(() => parseArgs(['logs', 'box', '--bogus']), /unknown flag --bogus/);
  });

  it('parses logs, port-forward mappings and durations', () => {
    assert.deepEqual(parseArgs(['logs', 'box', '-f', '--previous', '--since=1m30s', '--tail=5']).command, {
      name: 'logs',
      sandbox: 'box',
      follow: true,
      previous: true,
      timestamps: false,
      tail: 5,
      sinceSeconds: 90,
    });
    assert.deepEqual(parseArgs(['port-forward', 'box', '8080:80', ':443', '22']).command, {
      name: 'port-forward',
      sandbox: 'box',
      address: '127.0.0.1',
      ports: [
        { local: 8080, remote: 80 },
        { local: 0, remote: 443 },
        { local: 22, remote: 22 },
      ],
    });
    assert.throws(() => parseDuration('5 minutes'), /invalid duration/);
  });

  it('tells sandbox paths from local ones', () => {
    assert.equal(isRemote('box:/etc/hosts'), true);
    assert.equal(isRemote('./box:1'), false);
    assert.equal(isRemote('/tmp/x'), false);
  });
});
