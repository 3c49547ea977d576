import assert from 'node:assert/strict';
import { parseGroup, parsePasswd, resolveUser, UserLookupError } from './passwd.js';

const PASSWD = parsePasswd(
  [
    'root:x:0:0:root:/root:/bin/sh',
    '# a comment',
    '',
    'www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin',
    'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin',
    'app:x:1000:1000::/home/app:/bin/sh',
    'broken:x:notanumber:1',
    '+nis',
  ].join('\n'),
);
const GROUP = parseGroup(
  [
    'root:x:0:',
    'staff:x:50:app',
    'www-data:x:33:www-data',
    'audio:x:29:app,www-data',
    'app:x:1000:app',
    'nogroup:x:65534:',
    'bad:x:',
  ].join('\n'),
);

describe('unit: image users from /etc/passwd and /etc/group', () => {
  it('parses the files and skips comments, malformed and NIS lines', () => {
    assert.deepEqual(
      PASSWD.map((p) => p.name),
      ['root', 'www-data', 'nobody', 'app'],
    );
    assert.deepEqual(PASSWD[1], { name: 'www-data', uid: 33, gid: 33 });
    assert.deepEqual(
      GROUP.find((g) => g.name === 'audio'),
      { name: 'audio', gid: 29, members: ['app', 'www-data'] },
    );
    assert.equal(
      GROUP.find((g) => g.name === 'bad'),
      undefined,
    );
  });

  it('resolves names, numbers and groups like runc and containerd', () => {
    const r = (spec: string) => resolveUser(spec, PASSWD, GROUP);
    assert.deepEqual(r(''), { uid: 0, gid: 0, name: 'root', additionalGids: [] });
    assert.deepEqual(r('nobody'), { uid: 65534, gid: 65534, name: 'nobody', additionalGids: [] });
    // The group of the user's own name is not a supplementary group; the others are.
    assert.deepEqual(r('www-data:www-data'), { uid: 33, gid: 33, name: 'www-data', additionalGids: [29] });
    assert.deepEqual(r('1000:staff'), { uid: 1000, gid: 50, name: 'app', additionalGids: [50, 29] });
    assert.deepEqual(r('app'), { uid: 1000, gid: 1000, name: 'app', additionalGids: [50, 29] });
    assert.deepEqual(r('app:4242'), { uid: 1000, gid: 4242, name: 'app', additionalGids: [50, 29] });
    // A numeric uid without an entry runs with gid 0, as runc does.
    assert.deepEqual(r('4242'), { uid: 4242, gid: 0, additionalGids: [] });
    assert.deepEqual(r('4242:4343'), { uid: 4242, gid: 4343, additionalGids: [] });
    assert.deepEqual(r('0'), { uid: 0, gid: 0, name: 'root', additionalGids: [] });
  });

  it('refuses unknown names, missing files and out-of-range ids', () => {
    assert.throws(
      () => resolveUser('ghost', PASSWD, GROUP),
      (e: Error) =>
        e instanceof UserLookupError && /unable to find user ghost: no matching entry in \/etc\/passwd/.test(e.message),
    );
    assert.throws(() => resolveUser('app:ghosts', PASSWD, GROUP), /unable to find group ghosts/);
    assert.throws(() => resolveUser('nobody', undefined, undefined), /the image has no \/etc\/passwd/);
    assert.throws(() => resolveUser('0:staff', PASSWD, undefined), /the image has no \/etc\/group/);
    assert.throws(() => resolveUser('2147483648', PASSWD, GROUP), /uid 2147483648 is out of range/);
    // Numbers need no files at all.
    assert.deepEqual(resolveUser('1:2', undefined, undefined), { uid: 1, gid: 2, additionalGids: [] });
  });
});
