import { libc } from '../../node-agent/sys/libc.js';

/** lsetxattr(2), for tests that lay out fixtures with xattrs (overlay opaque markers, file capabilities); the agent sets xattrs by fd only. */
export const lsetxattr = libc.func(
  'int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)',
);
