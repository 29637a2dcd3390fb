// Logs: JSON lines by default, pretty on a TTY or when asked, "<N>" syslog priorities under journald, and the level
// changed at runtime for children made before the change.
import { closeSync, mkdtempSync, openSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { chooseOutput, createLogger, setLogLevel, stdoutIsJournal, syslogPriority } from '../../src/log.js';

function collect(): { lines: string[]; destination: { write(s: string): void } } {
  const lines: string[] = [];
  return { lines, destination: { write: (s: string) => void lines.push(s) } };
}

describe('log output', () => {
  it('chooses pretty on a TTY unless json is asked for, journal prefixes only for JSON', () => {
    expect(chooseOutput(undefined, false, false)).toBe('json');
    expect(chooseOutput(undefined, true, false)).toBe('pretty');
    expect(chooseOutput('json', true, false)).toBe('json');
    expect(chooseOutput('pretty', false, true)).toBe('pretty');
    expect(chooseOutput(undefined, false, true)).toBe('journal');
  });

  it('writes plain JSON lines by default', () => {
    const c = collect();
    createLogger({ destination: c.destination, isTty: false, journal: false }).child({ subsystem: 'port' }).warn({ port: 'vif1.0' }, 'gone');
    expect(c.lines).toHaveLength(1);
    expect(JSON.parse(c.lines[0])).toMatchObject({ level: 40, subsystem: 'port', port: 'vif1.0', msg: 'gone', name: 'tapbridge' });
  });

  it('prefixes each JSON line with its syslog priority under journald; the rest is still JSON', () => {
    const c = collect();
    const log = createLogger({ level: 'trace', destination: c.destination, isTty: false, journal: true });
    log.fatal('f'); log.error('e'); log.warn('w'); log.info('i'); log.debug('d'); log.trace('t');
    expect(c.lines.map((l) => l.slice(0, 3))).toEqual(['<2>', '<3>', '<4>', '<6>', '<7>', '<7>']);
    expect(JSON.parse(c.lines[2].slice(3))).toMatchObject({ msg: 'w', level: 40 });
    expect([10, 20, 30, 40, 50, 60].map(syslogPriority)).toEqual([7, 7, 6, 4, 3, 2]);
  });

  it('pretty-prints for a human with pino-pretty', () => {
    const c = collect();
    createLogger({ format: 'pretty', destination: c.destination, isTty: false, journal: false }).child({ subsystem: 'fdb' }).info({ mac: '02:00:00:00:00:01' }, 'learned');
    expect(c.lines.join('')).toMatch(/INFO.*: learned\n\s+subsystem: "fdb"\n\s+mac: "02:00:00:00:00:01"/);
    expect(() => JSON.parse(c.lines[0])).toThrow();
  });

  it('setLogLevel changes the level of the logger and of children made before', () => {
    const c = collect();
    const log = createLogger({ level: 'info', destination: c.destination, isTty: false, journal: false });
    const child = log.child({ subsystem: 'daemon' });
    const grandchild = child.child({ bridge: 'xenbr0' });
    grandchild.debug('hidden');
    setLogLevel('debug');
    grandchild.debug('shown');
    child.debug('shown too');
    setLogLevel('error');
    log.warn('hidden again');
    grandchild.warn('hidden again');
    expect(c.lines.map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(['shown', 'shown too']);
  });

  it('recognises JOURNAL_STREAM only when it names the file on the fd', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tb-log-'));
    const fd = openSync(join(dir, 'out'), 'w');
    try {
      const st = statSync(join(dir, 'out'), { bigint: true });
      expect(stdoutIsJournal({ JOURNAL_STREAM: `${st.dev}:${st.ino}` }, fd)).toBe(true);
      expect(stdoutIsJournal({ JOURNAL_STREAM: `${st.dev}:${st.ino + 1n}` }, fd)).toBe(false);
      expect(stdoutIsJournal({ JOURNAL_STREAM: 'garbage' }, fd)).toBe(false);
      expect(stdoutIsJournal({}, fd)).toBe(false);
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the daemon refuses an unknown --log-level or --log-format with a usage error', () => {
    const cli = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
    for (const [flag, value, msg] of [['--log-level', 'loud', '--log-level must be one of fatal, error, warn, info, debug, trace, silent, got "loud"'],
      ['--log-format', 'xml', '--log-format must be json or pretty, got "xml"']]) {
      const r = spawnSync(process.execPath, [cli, 'daemon', '--config', '/nonexistent.yaml', flag, value], { encoding: 'utf8', timeout: 20_000 });
      expect(r.status).toBe(2);
      expect(r.stderr).toContain(`tapbridge: ${msg}`);
    }
  });
});
