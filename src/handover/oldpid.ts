// Whether the daemon that handed over is gone: the new daemon reads no port, accepts no control connection and
// writes no state while the old pid lives (protocol.ts). kill(pid, 0) answers ESRCH for a pid that is gone; a
// zombie (exited, not yet reaped by its parent) still answers, so /proc/<pid>/stat's state Z or X counts as gone
// too: a zombie holds no fd. Polling has one bound per wait and a fixed interval.

import { readFileSync } from 'node:fs';

/** How often waitProcessGone looks. */
export const GONE_POLL_MS = 10;

/** True when no process has this pid, or only a zombie has. */
export function isProcessGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists but is not ours to signal
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) S ...": comm may hold spaces and parentheses, the state follows the last ')'
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X';
  } catch {
    return true; // gone between the two looks
  }
}

/** Resolves true once the pid is gone (isProcessGone), false after timeoutMs. */
export async function waitProcessGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (isProcessGone(pid)) return true;
    if (performance.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, GONE_POLL_MS));
  }
}
