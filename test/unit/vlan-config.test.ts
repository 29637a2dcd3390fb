// VLAN config errors as a user sees them: `tapbridge check-config FILE` exits 2 and names the key path.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const cli = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tb-vlan-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function checkConfig(yaml: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const file = join(dir, `c${n++}.yaml`);
  writeFileSync(file, yaml);
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, 'check-config', file], { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr });
    });
  });
}

const bridge = (ports: string, uplink = '{ interface: peth0, trunk: [10, 20] }'): string => `
bridges:
  - name: xenbr0
    uplink: ${uplink}
    ports:
${ports}
`;

describe('check-config: VLAN keys', () => {
  it('accepts access, trunk, native and default ports', async () => {
    const r = await checkConfig(bridge(`
      - { name: vif1.0, vlan: 10 }
      - { name: vif2.0, trunk: [10, "100-199"], native_vlan: 10 }
      - { name: vif3.0, trunk: all }
      - { name: vif4.0, trunk: "20,30-31" }
      - { name: vif5.0 }`, '{ interface: peth0, trunk: all, native_vlan: 1 }'));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  const bad: [string, string, RegExp][] = [
    ['VID 0 on an access port', bridge('      - { name: vif1.0, vlan: 0 }'), /bridges\[0\]\.ports\[0\]\.vlan: must be a VID 1\.\.4094, got 0/],
    ['VID 4095 on an access port', bridge('      - { name: vif1.0 }\n      - { name: vif2.0, vlan: 4095 }'), /bridges\[0\]\.ports\[1\]\.vlan: must be a VID 1\.\.4094, got 4095/],
    ['VID out of range in a trunk list', bridge('      - { name: vif1.0, trunk: [10, 5000] }'), /bridges\[0\]\.ports\[0\]\.trunk: item 5000 is out of range/],
    ['range out of range in a trunk list', bridge('      - { name: vif1.0, trunk: ["4000-4095"] }'), /bridges\[0\]\.ports\[0\]\.trunk: item "4000-4095" is out of range/],
    ['uplink trunk out of range', bridge('      - { name: vif1.0 }', '{ interface: peth0, trunk: [0] }'), /bridges\[0\]\.uplink\.trunk: item 0 is out of range/],
    ['overlapping trunk list', bridge('      - { name: vif1.0, trunk: [10, "5-12"] }'), /bridges\[0\]\.ports\[0\]\.trunk: item "5-12" overlaps another item \(VID 10 twice\)/],
    ['duplicate VID in a trunk list', bridge('      - { name: vif1.0, trunk: [20, 20] }'), /bridges\[0\]\.ports\[0\]\.trunk: item 20 overlaps/],
    ['empty trunk list', bridge('      - { name: vif1.0, trunk: [] }'), /bridges\[0\]\.ports\[0\]\.trunk: is empty/],
    ['empty uplink trunk list', bridge('      - { name: vif1.0 }', '{ interface: peth0, trunk: [] }'), /bridges\[0\]\.uplink\.trunk: is empty/],
    ['native VLAN not in the trunk', bridge('      - { name: vif1.0, trunk: [10, 20], native_vlan: 30 }'), /bridges\[0\]\.ports\[0\]\.native_vlan: VLAN 30 is not in the trunk/],
    ['uplink native VLAN not in the trunk', bridge('      - { name: vif1.0 }', '{ interface: peth0, trunk: [10, 20], native_vlan: 1 }'), /bridges\[0\]\.uplink\.native_vlan: VLAN 1 is not in the trunk/],
    ['native VLAN out of range', bridge('      - { name: vif1.0, trunk: all, native_vlan: 4095 }'), /bridges\[0\]\.ports\[0\]\.native_vlan: must be a VID/],
    ['native VLAN without a trunk', bridge('      - { name: vif1.0, native_vlan: 10 }'), /bridges\[0\]\.ports\[0\]\.native_vlan: applies only to trunk ports/],
    ['both vlan and trunk', bridge('      - { name: vif1.0, vlan: 10, trunk: [10, 20] }'), /bridges\[0\]\.ports\[0\]\.vlan: a port is either access \(`vlan`\) or trunk \(`trunk`\), not both/],
    ['both vlan and trunk on the uplink', bridge('      - { name: vif1.0 }', '{ interface: peth0, vlan: 10, trunk: all }'), /bridges\[0\]\.uplink\.vlan: a port is either access/],
    ['a VID that is not a number', bridge('      - { name: vif1.0, vlan: "10" }'), /bridges\[0\]\.ports\[0\]\.vlan: must be a VID 1\.\.4094, got "10"/],
  ];

  it.each(bad)('%s: exit 2, the key path in stderr', async (_name, yaml, message) => {
    const r = await checkConfig(yaml);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).toBe('');
  });

  it('reports every VLAN error of a file at once', async () => {
    const r = await checkConfig(bridge(`
      - { name: vif1.0, vlan: 5000 }
      - { name: vif2.0, trunk: [] }
      - { name: vif3.0, trunk: [10], native_vlan: 20 }`));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/ports\[0\]\.vlan:/);
    expect(r.stderr).toMatch(/ports\[1\]\.trunk:/);
    expect(r.stderr).toMatch(/ports\[2\]\.native_vlan:/);
  });

  it('an FDB entry in a VLAN its port is not a member of names the key path', async () => {
    const r = await checkConfig(`
bridges:
  - name: xenbr0
    ports: [ { name: vif1.0, vlan: 10 } ]
    fdb: [ { mac: "00:16:3e:00:00:01", port: vif1.0, vlan: 20 } ]
`);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/bridges\[0\]\.fdb\[0\]\.vlan: port "vif1\.0" is not a member of VLAN 20/);
  });
});
