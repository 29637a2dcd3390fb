// Reload and the service keys: a changed log_level is applied at once (setLogLevel, children included), a changed
// metrics.listen takes effect at restart; both show as one dry-run line.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.js';
import { applyPlan, diffConfig } from '../../src/state/reload.js';
import { createLogger } from '../../src/log.js';
import type { Daemon } from '../../src/daemon/daemon.js';

describe('reload of log_level and metrics', () => {
  it('lists a log_level change and a metrics.listen change', () => {
    const a = parseConfig('bridges: []\n');
    const b = parseConfig('log_level: debug\nmetrics: { listen: "127.0.0.1:9464" }\nbridges: []\n');
    expect(diffConfig(a, b).map((c) => c.line)).toEqual([
      '~ log_level info -> debug',
      '~ metrics.listen off -> 127.0.0.1:9464 (takes effect at restart)',
    ]);
    expect(diffConfig(b, parseConfig('log_level: debug\nmetrics: { listen: "[::1]:9464" }\nbridges: []\n')).map((c) => c.line))
      .toEqual(['~ metrics.listen 127.0.0.1:9464 -> [::1]:9464 (takes effect at restart)']);
    expect(diffConfig(b, b)).toEqual([]);
  });

  it('lists a busy_poll_us change, applied in place', () => {
    const a = parseConfig('bridges: []\n');
    const b = parseConfig('busy_poll_us: 20000\nbridges: []\n');
    const plan = diffConfig(a, b);
    expect(plan.map((c) => c.line)).toEqual(['~ busy_poll_us 0 -> 20000']);
    expect(plan[0].action).toEqual({ do: 'busyPoll', us: 20000 });
  });

  it('lists a direct_poll change, applied in place', () => {
    const a = parseConfig('bridges: []\n');
    const b = parseConfig('direct_poll: false\nbridges: []\n');
    const plan = diffConfig(a, b);
    expect(plan.map((c) => c.line)).toEqual(['~ direct_poll true -> false']);
    expect(plan[0].action).toEqual({ do: 'directPoll', on: false });
  });

  it('applies the new level to the logger and the children made before', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'info', destination: { write: (s: string) => void lines.push(s) }, isTty: false, journal: false });
    const child = log.child({ subsystem: 'port' });
    const a = parseConfig('bridges: []\n');
    const b = parseConfig('log_level: debug\nbridges: []\n');
    const fake = { config: a } as unknown as Daemon;
    const errors: string[] = [];
    applyPlan(fake, diffConfig(a, b), b, (_c, err) => errors.push(err.message));
    expect(errors).toEqual([]);
    child.debug('after reload');
    applyPlan(fake, diffConfig(b, parseConfig('log_level: error\nbridges: []\n')), parseConfig('log_level: error\nbridges: []\n'), () => undefined);
    child.warn('hidden');
    expect(lines.map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(['after reload']);
  });
});
