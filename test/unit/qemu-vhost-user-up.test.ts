// scripts/qemu-vhost-user-up's checks of its environment, which run before it reaches the daemon (no root, no
// daemon): a value it would print into QEMU's arguments is refused when the caller's unquoted $(...) would split or
// glob it. The script's work with a daemon and a guest is test/netns/qemu-vhost-user-up.test.ts.

import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const SCRIPT = join(__dirname, '..', '..', 'scripts', 'qemu-vhost-user-up');

function up(env: Record<string, string>): { code: number | null; stdout: string; stderr: string } {
  // an unreachable control socket: a check that lets a value through fails later, at the daemon, with status 1
  const r = spawnSync('bash', [SCRIPT, 'vif3.0'], {
    encoding: 'utf8', env: { PATH: process.env.PATH, TAPBRIDGE_SOCKET: '/nonexistent/tapbridge-test.sock', ...env }, timeout: 30_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('qemu-vhost-user-up: TAPBRIDGE_VHOST_SOCKET', () => {
  for (const sock of ['/run/tb/vm*.sock', '/run/tb/vm?.sock', '/run/tb/vm[1].sock', '/run/tb/a b.sock', '/run/tb/a,b.sock', 'rel.sock']) {
    it(`refuses ${JSON.stringify(sock)} before reaching the daemon (status 2, nothing on stdout)`, () => {
      const r = up({ TAPBRIDGE_VHOST_SOCKET: sock });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(/TAPBRIDGE_VHOST_SOCKET must be an absolute path/);
      expect(r.stdout).toBe('');
    });
  }

  it('lets a plain absolute path through (then fails at the unreachable daemon)', () => {
    const r = up({ TAPBRIDGE_VHOST_SOCKET: '/run/tb/vif3.0.sock' });
    expect(r.code, r.stderr).not.toBe(2);
    expect(r.stderr).not.toMatch(/TAPBRIDGE_VHOST_SOCKET must/);
    expect(r.stdout).toBe('');
  });
});
