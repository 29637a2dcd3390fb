// `tapbridge install-service [--prefix DIR]`: puts the installed package's service files where systemd and the admin
// expect them, under DIR (default /):
//
//   etc/systemd/system/tapbridge.service   contrib/tapbridge.service with ExecStart= = this node + this tapbridge
//   etc/tapbridge/tapbridge.yaml           contrib/tapbridge.yaml, only when no config is there (never overwritten)
//   etc/tapbridge/qemu-ifup, qemu-ifdown   scripts/qemu-ifup, qemu-ifdown (mode 0755)
//   etc/tapbridge/qemu-vhost-user-up, -down  scripts/qemu-vhost-user-up, -down (mode 0755)
//
// The unit and the scripts belong to the package and are replaced when they differ (an upgrade); the config belongs
// to the admin. Returns what was done, line by line, and what the admin does next.

import { chmodSync, existsSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root (where package.json, contrib/ and scripts/ are) of this running tapbridge. */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export const UNIT_PATH = 'etc/systemd/system/tapbridge.service';
export const CONFIG_PATH = 'etc/tapbridge/tapbridge.yaml';
export const SCRIPTS = ['qemu-ifup', 'qemu-ifdown', 'qemu-vhost-user-up', 'qemu-vhost-user-down'] as const;
const EXEC_START_MARK = '@EXEC_START@';

export interface InstallServiceOptions {
  /** root of the file tree to write into ("/" on a real host) */
  prefix: string;
  /** the node binary for ExecStart= (default: the one running now) */
  nodePath?: string;
  /** the CLI script for ExecStart= (default: this package's dist/cli/main.js, symlinks resolved) */
  cliPath?: string;
  /** where contrib/ and scripts/ are (default: this package) */
  packageRoot?: string;
}

export interface InstallServiceResult {
  /** one line per file: what happened to it */
  done: string[];
  /** what the admin runs next */
  next: string[];
  unitPath: string;
  execStart: string;
}

export class InstallServiceError extends Error {
  readonly code = 'EINSTALL';
}

/**
 * One ExecStart= word, quoted as systemd.service(5) reads it: "%" is a specifier ("%%"), "$" an environment variable
 * ("$$"), backslash and double quote are escaped, and a word with white space is double-quoted.
 */
export function execWord(word: string): string {
  if (/[\0\n\r]/.test(word)) throw new InstallServiceError(`cannot put ${JSON.stringify(word)} in ExecStart=: it holds a NUL or newline`);
  const escaped = word.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/%/g, '%%').replace(/\$/g, '$$$$');
  return /[\s"'\\;]/.test(word) ? `"${escaped}"` : escaped;
}

/** The unit text with ExecStart='s placeholder replaced. */
export function renderUnit(template: string, nodePath: string, cliPath: string): string {
  if (!template.includes(EXEC_START_MARK)) throw new InstallServiceError(`the unit template has no ${EXEC_START_MARK} in ExecStart=`);
  return template.replace(EXEC_START_MARK, `${execWord(nodePath)} ${execWord(cliPath)}`);
}

function writeIfChanged(path: string, content: Buffer | string, mode: number, what: string, done: string[]): void {
  const data = typeof content === 'string' ? Buffer.from(content) : content;
  const old = existsSync(path) ? readFileSync(path) : null;
  if (old !== null && old.equals(data)) {
    chmodSync(path, mode);
    done.push(`${what} ${path}: unchanged`);
    return;
  }
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  writeFileSync(path, data, { mode });
  chmodSync(path, mode);
  done.push(`${what} ${path}: ${old === null ? 'installed' : 'updated'}`);
}

export function installService(opts: InstallServiceOptions): InstallServiceResult {
  const prefix = resolve(opts.prefix);
  const root = opts.packageRoot ?? PACKAGE_ROOT;
  const nodePath = opts.nodePath ?? process.execPath;
  const cliPath = opts.cliPath ?? realpathSync(join(root, 'dist', 'cli', 'main.js'));
  const read = (rel: string): Buffer => {
    try {
      return readFileSync(join(root, rel));
    } catch (err) {
      throw new InstallServiceError(`cannot read ${join(root, rel)} from the tapbridge package: ${(err as Error).message}`);
    }
  };
  const done: string[] = [];
  const inPrefix = (rel: string): string => join(prefix, rel);
  try {
    const unit = renderUnit(read('contrib/tapbridge.service').toString('utf8'), nodePath, cliPath);
    const unitPath = inPrefix(UNIT_PATH);
    writeIfChanged(unitPath, unit, 0o644, 'unit', done);

    const configPath = inPrefix(CONFIG_PATH);
    const example = read('contrib/tapbridge.yaml');
    mkdirSync(dirname(configPath), { recursive: true, mode: 0o755 });
    if (existsSync(configPath)) {
      done.push(`config ${configPath}: exists, left as it is`);
    } else {
      writeFileSync(configPath, example, { mode: 0o644, flag: 'wx' }); // wx: never overwrite, even in a race
      done.push(`config ${configPath}: installed from the example (edit it: bridges, uplink, ports)`);
    }
    for (const s of SCRIPTS) writeIfChanged(inPrefix(`etc/tapbridge/${s}`), read(`scripts/${s}`), 0o755, 'script', done);

    const real = prefix === '/';
    const next = real
      ? [
          'systemctl daemon-reload',
          `tapbridge check-config /${CONFIG_PATH}`,
          'systemctl enable --now tapbridge',
          'systemctl status tapbridge; journalctl -u tapbridge -f',
        ]
      : [`files written under ${prefix}; on the target host: systemctl daemon-reload && systemctl enable --now tapbridge`];
    return { done, next, unitPath, execStart: `${nodePath} ${cliPath}` };
  } catch (err) {
    if (err instanceof InstallServiceError) throw err;
    const e = err as NodeJS.ErrnoException;
    const hint = e.code === 'EACCES' || e.code === 'EPERM' ? ' (install-service writes to /etc: run it as root, or give --prefix DIR)' : '';
    throw new InstallServiceError(`${e.message}${hint}`);
  }
}
