import { check, koffi, libc, type CallSite } from './libc.js';

/*
 * Terminal window size of a pty, for exec sessions with a TTY: the size is set
 * on the master and the kernel sends SIGWINCH to the slave's foreground
 * process group, so full-screen programs redraw at the new size.
 */

const TIOCSWINSZ = 0x5414;
const Winsize = koffi.struct('sandpit_winsize', {
  ws_row: 'uint16_t',
  ws_col: 'uint16_t',
  ws_xpixel: 'uint16_t',
  ws_ypixel: 'uint16_t',
});
const ioctlWinsize = libc.func('ioctl', 'int', ['int', 'unsigned long', koffi.pointer(Winsize)]);

/** Sets the window size of the terminal behind `fd` (a pty master). */
export function setWindowSize(fd: number, cols: number, rows: number, site: CallSite): void {
  const clamp = (n: number) => Math.max(1, Math.min(0xffff, Math.floor(n)));
  check(
    'ioctl TIOCSWINSZ',
    site,
    () =>
      ioctlWinsize(fd, TIOCSWINSZ, { ws_row: clamp(rows), ws_col: clamp(cols), ws_xpixel: 0, ws_ypixel: 0 }) as number,
  );
}
