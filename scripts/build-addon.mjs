// npm's "install" script: builds the addon (binding.gyp) with npm's bundled node-gyp against the headers of the Node
// that runs it, when they are installed next to it (<prefix>/include/node/node.h: Debian's nodejs package and the
// official tarballs both have them), so nothing is downloaded and no nodedir has to be set by hand. An explicit
// nodedir (npm config or $npm_config_nodedir) wins; without local headers node-gyp does what it does by default.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

const args = ['rebuild'];
const prefix = dirname(dirname(process.execPath));
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node.h'))) args.push(`--nodedir=${prefix}`);
// npm tells lifecycle scripts where its node-gyp is; outside npm, the one on PATH
const gyp = process.env.npm_config_node_gyp;
const cmd = gyp ? process.execPath : 'node-gyp';
const argv = gyp ? [gyp, ...args] : args;
console.log(`build-addon: node-gyp ${args.join(' ')}`);
const r = spawnSync(cmd, argv, { stdio: 'inherit' });
if (r.error) {
  console.error(`build-addon: cannot run ${cmd}: ${r.error.message}`);
  process.exit(1);
}
process.exit(r.status ?? 1);
