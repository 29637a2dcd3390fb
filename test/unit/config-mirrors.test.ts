// `mirrors:` in the config (src/config/config.ts + src/bridge/mirror.ts): the documented form is read, and every
// mistake is reported with its key path.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.js';
import { configIssues } from '../support/config-issues.js';

const base = (mirrors: string, uplink = 'uplink: { interface: peth0, trunk: [10, 99] }'): string => `
bridges:
  - name: xenbr0
    ${uplink}
    ports: [ { name: vif1.0, vlan: 10 }, { name: vif2.0, vlan: 10 }, { name: vif9.0, kind: attach } ]
    mirrors: ${mirrors}
`;

describe('config mirrors', () => {
  it('reads the issue\'s example and RSPAN', () => {
    const cfg = parseConfig(base(`
      - { name: m0, select: { ports: [vif1.0], direction: both, vlans: [10] }, output: vif9.0 }
      - { name: r1, select: { ports: all, direction: in }, output_vlan: 99 }`));
    expect(cfg.bridges[0].mirrors).toEqual([
      { name: 'm0', ports: ['vif1.0'], direction: 'both', vlans: [10], output: 'vif9.0', outputVlan: null },
      { name: 'r1', ports: 'all', direction: 'in', vlans: null, output: null, outputVlan: 99 },
    ]);
    expect(parseConfig(base('[]')).bridges[0].mirrors).toEqual([]);
  });

  it('names the key path of every mistake', () => {
    expect(configIssues(base(`
      - { name: m0, select: { ports: [vif7.0] }, output: vif8.0 }
      - { name: m1, select: { ports: [vif1.0], direction: up }, output: peth0 }
      - { name: m2, select: { ports: all, vlans: [5000] }, output: vif9.0, output_vlan: 3 }
      - { select: { ports: all }, output: vif9.0, colour: red }`))).toEqual([
      'bridges[0].mirrors[0].select.ports: "vif7.0" is not a port or the uplink of bridge "xenbr0"',
      'bridges[0].mirrors[0].output: "vif8.0" is not a port of bridge "xenbr0"',
      'bridges[0].mirrors[1].select.direction: must be in, out or both, got "up"',
      'bridges[0].mirrors[2].select.vlans: item 5000 is out of range: VIDs are 1..4094',
      'bridges[0].mirrors[2].output: give either `output` (a port) or `output_vlan` (RSPAN on the uplink), not both',
      'bridges[0].mirrors[3].colour: unknown key (name, select, output, output_vlan)',
      'bridges[0].mirrors[3].name: must be 1..32 characters of A-Z a-z 0-9 _ . : -, got undefined',
    ]);
    expect(configIssues(base(`
      - { name: m0, select: { ports: all }, output: peth0 }`))).toEqual([
      'bridges[0].mirrors[0].output: "peth0" is the uplink; use output_vlan for RSPAN on the uplink',
    ]);
    expect(configIssues(base(`
      - { name: m0, select: { ports: all }, output_vlan: 99 }`, ''))).toEqual([
      'bridges[0].mirrors[0].output_vlan: needs an uplink to carry the RSPAN VLAN',
    ]);
    expect(configIssues(base(`
      - { name: m0, select: { ports: all }, output: vif9.0 }
      - { name: m0, select: { ports: [vif9.0] }, output: vif2.0 }`))).toEqual([
      'bridges[0].mirrors: mirror name m0 is used twice',
    ]);
    expect(configIssues(base('{ name: m0 }'))).toEqual(['bridges[0].mirrors: must be a list, got a mapping']);
  });
});
