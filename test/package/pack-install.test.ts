// The package as an admin installs it: `npm pack` (which builds dist/ through `prepare`), `npm install -g` of the
// tarball into a temporary global prefix (the addon is compiled from the tarball's sources, node headers from the local
// Node), `tapbridge` on PATH, `version`, `check-config` on the installed example config, `install-service --prefix`,
// `systemd-analyze verify` on the unit it wrote, and the man pages npm links into the prefix (`man` finds them when it
// is installed). Dependencies come from the registry (or npm's cache).
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { name: string; version: string; man: string[] };
const hasNpm = spawnSync('npm', ['--version'], { stdio: 'ignore' }).status === 0;
const hasToolchain = ['make', 'g++'].every((t) => spawnSync(t, ['--version'], { stdio: 'ignore' }).status === 0);
const hasAnalyze = spawnSync('systemd-analyze', ['--version'], { stdio: 'ignore' }).status === 0;
const hasMan = spawnSync('man', ['--version'], { stdio: 'ignore' }).status === 0;
const why = !hasNpm ? 'no npm on PATH' : !hasToolchain ? 'no C++ toolchain (make, g++) for the addon' : '';

interface Run { code: number; out: string; stdout: string }
function sh(file: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((done) => {
    execFile(file, args, { cwd: opts.cwd, env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 32 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => done({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 124, out: `${stdout}${stderr}`, stdout }));
  });
}

describe.skipIf(why !== '')(`npm pack + npm install -g${why === '' ? '' : ` (skipped: ${why})`}`, () => {
  const dir = mkdtempSync(join(tmpdir(), 'tb-pack-'));
  const prefix = join(dir, 'global');
  const installed = join(prefix, 'lib', 'node_modules', pkg.name);
  // An empty user config: no nodedir set by hand (this machine's ~/.npmrc has one), so the install must find the
  // running Node's headers by itself (scripts/build-addon.mjs) or it would download them.
  const userconfig = join(dir, 'empty-npmrc');
  writeFileSync(userconfig, '');
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${join(prefix, 'bin')}:${process.env.PATH ?? ''}`, npm_config_update_notifier: 'false',
    npm_config_userconfig: userconfig };
  delete env.npm_config_nodedir;
  let tarball = '';
  let files: string[] = [];
  let installLog = '';

  beforeAll(async () => {
    const packed = await sh('npm', ['pack', '--json', '--pack-destination', dir], { cwd: REPO_ROOT, timeoutMs: 120_000 });
    if (packed.code !== 0) throw new Error(`npm pack failed:\n${packed.out}`);
    const json = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as { filename: string; files: { path: string }[] }[];
    tarball = join(dir, json[0].filename);
    files = json[0].files.map((f) => f.path);
    const inst = await sh('npm', ['install', '-g', '--prefix', prefix, '--foreground-scripts', '--no-audit', '--no-fund', '--prefer-offline', tarball],
      { cwd: dir, env, timeoutMs: 170_000 });
    installLog = inst.out;
    if (inst.code !== 0) throw new Error(`npm install -g failed:\n${inst.out.slice(-4000)}`);
  }, 300_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('the tarball carries only what runs: dist/, the addon sources, binding.gyp, the QEMU scripts, the unit, an example config, the man pages', () => {
    expect(existsSync(tarball)).toBe(true);
    for (const f of ['dist/cli/main.js', 'dist/daemon/run.js', 'dist/metrics/metrics.js', 'dist/service/sd-notify.js', 'binding.gyp',
      'src/native/addon.cc', 'src/native/notify.cc', 'src/native/common.h', 'scripts/qemu-ifup', 'scripts/qemu-ifdown', 'scripts/qemu-vhost-user-up', 'scripts/qemu-vhost-user-down',
      'contrib/tapbridge.service', 'contrib/tapbridge.yaml', 'man/tapbridge.8', 'man/tapbridge.yaml.5', 'package.json']) {
      expect(files, f).toContain(f);
    }
    const extra = files.filter((f) => !/^(dist\/.*\.js|src\/native\/[^/]+\.(cc|h)|binding\.gyp|scripts\/qemu-(if(up|down)|vhost-user-(up|down))|scripts\/build-addon\.mjs|contrib\/[^/]+|man\/[^/]+\.\d|package\.json|README\.md|LICENSE)$/.test(f));
    expect(extra).toEqual([]);
  });

  it('installs with the addon built from the tarball\'s sources and nothing downloaded', async () => {
    expect(installLog).toMatch(/build-addon: node-gyp rebuild --nodedir=\S+/);
    expect(installLog).toMatch(/gyp info ok/);
    // node-gyp says "gyp http GET ..." when it fetches node headers; the running Node's own headers make that unnecessary
    expect(installLog).not.toMatch(/gyp http|gyp WARN install|nodejs\.org/);
    expect(existsSync(join(installed, 'build', 'Release', 'tapbridge_native.node'))).toBe(true);
    const loaded = await sh(process.execPath, ['--input-type=module', '-e',
      `const m = await import(${JSON.stringify(join(installed, 'dist', 'io', 'native.js'))}); console.log(m.netdev.version());`]);
    expect(loaded.out.trim()).toMatch(/^tapbridge_native /);
  });

  it('puts tapbridge on PATH: version and check-config on the installed example config', async () => {
    const which = await sh('sh', ['-c', 'command -v tapbridge'], { env });
    expect(which.out.trim()).toBe(join(prefix, 'bin', 'tapbridge'));
    const v = await sh('tapbridge', ['version', '--socket', join(dir, 'no-daemon.sock')], { env });
    expect(v.out).toContain(`tapbridge ${pkg.version}`);
    const c = await sh('tapbridge', ['check-config', join(installed, 'contrib', 'tapbridge.yaml')], { env });
    expect(c.code, c.out).toBe(0);
    expect(c.out).toContain(': ok (');
  });

  it('install-service --prefix writes the unit with the installed tapbridge in ExecStart=, which systemd-analyze verify accepts', async () => {
    const root = join(dir, 'root');
    const r = await sh('tapbridge', ['install-service', '--prefix', root], { env });
    expect(r.code, r.out).toBe(0);
    const unitPath = join(root, 'etc', 'systemd', 'system', 'tapbridge.service');
    const unit = readFileSync(unitPath, 'utf8');
    expect(unit).toContain(`ExecStart=${process.execPath} ${join(installed, 'dist', 'cli', 'main.js')} daemon`);
    expect(existsSync(join(root, 'etc', 'tapbridge', 'tapbridge.yaml'))).toBe(true);
    expect(existsSync(join(root, 'etc', 'tapbridge', 'qemu-ifup'))).toBe(true);
    expect(existsSync(join(root, 'etc', 'tapbridge', 'qemu-vhost-user-up'))).toBe(true);
    if (hasAnalyze) {
      const v = spawnSync('systemd-analyze', ['verify', unitPath], { encoding: 'utf8', timeout: 30_000 });
      expect(`${v.stdout}${v.stderr}`.trim()).toBe('');
      expect(v.status).toBe(0);
    }
  });

  it('links the man pages into the prefix\'s share/man, where man finds them', async () => {
    expect(pkg.man.length).toBeGreaterThan(0);
    for (const page of pkg.man) {
      const file = page.replace(/^\.\/man\//, '');
      const section = /\.(\d)$/.exec(file)?.[1] ?? '';
      const linked = join(prefix, 'share', 'man', `man${section}`, file);
      expect(existsSync(linked), linked).toBe(true);
      expect(readFileSync(linked, 'utf8')).toMatch(/^\.TH "/);
      if (hasMan) {
        const name = file.slice(0, -2);
        const w = await sh('man', ['-w', section, name], { env: { ...env, MANPATH: join(prefix, 'share', 'man') } });
        expect(w.code, w.out).toBe(0);
        // man follows npm's symlink to the page inside the installed package
        expect(realpathSync(w.out.trim())).toBe(realpathSync(linked));
      }
    }
  });
});
