// The CLI as a user runs it (node dist/cli/main.js), against a control socket, and a recorder of the methods a
// scripted control server was called with: shared by the CLI unit tests.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { MethodHandler } from '../../src/control/server.js';

export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A function that runs the CLI with TAPBRIDGE_SOCKET set to `socket` (20 s timeout). */
export function cliRunner(socket: string): (...args: string[]) => Promise<CliResult> {
  return (...args) => new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 20_000, env: { ...process.env, TAPBRIDGE_SOCKET: socket } }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr });
    });
  });
}

export interface RecordedCall {
  method: string;
  params: Record<string, unknown>;
}

/** A method entry that pushes each call onto `calls`, then runs `before` (e.g. to throw) and returns `result`. */
export function recorder(calls: RecordedCall[], before: (params: Record<string, unknown>) => void = () => {}) {
  return (method: string, result: unknown): [string, MethodHandler] => [method, (params) => {
    calls.push({ method, params });
    before(params);
    return result;
  }];
}
