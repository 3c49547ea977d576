import assert from 'node:assert/strict';
import { classifyEntry, splitLinkTarget, xattrAllowed } from './paths.js';

describe('unit: images: tar entry names', () => {
  it('splits ordinary names, ignoring ./ and empty components', () => {
    assert.deepEqual(classifyEntry('./usr//bin/./sh'), { kind: 'path', parts: ['usr', 'bin', 'sh'] });
    assert.deepEqual(classifyEntry('./'), { kind: 'root' });
  });
  it('refuses traversal and absolute paths', () => {
    for (const p of ['../x', 'a/../../x', 'a/..', '/etc/passwd']) assert.ok('refused' in classifyEntry(p), p);
  });
  it('classifies whiteouts and opaque markers', () => {
    assert.deepEqual(classifyEntry('a/.wh.b'), { kind: 'whiteout', parts: ['a', 'b'] });
    assert.deepEqual(classifyEntry('a/.wh..wh..opq'), { kind: 'opaque', parts: ['a'] });
    assert.deepEqual(classifyEntry('.wh..wh.plnk'), { kind: 'reserved' });
  });
  it('refuses whiteouts that name nothing or reach outside', () => {
    for (const p of ['a/.wh.', 'a/.wh..', 'a/.wh...']) assert.ok('refused' in classifyEntry(p), p);
  });
  it('treats a leading / in hardlink targets as archive-relative but refuses ..', () => {
    assert.deepEqual(splitLinkTarget('/bin/sh'), ['bin', 'sh']);
    assert.ok('refused' in (splitLinkTarget('../etc/shadow') as object));
  });
  it('keeps file capabilities and user xattrs, never trusted.* or selinux labels', () => {
    assert.ok(xattrAllowed('security.capability', 'file'));
    assert.ok(xattrAllowed('user.mime', 'file'));
    assert.ok(!xattrAllowed('trusted.overlay.opaque', 'dir'));
    assert.ok(!xattrAllowed('security.selinux', 'file'));
    assert.ok(!xattrAllowed('user.overlay.redirect', 'dir'));
    assert.ok(!xattrAllowed('user.x', 'other'));
  });
});
