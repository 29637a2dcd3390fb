// mirror.add / mirror.del in the runtime journal (src/daemon/mirrors.ts recorders on src/state/journal.ts):
// what a restart replays, in order.
import { describe, expect, it } from 'vitest';
import '../../src/daemon/mirrors.js';
import { recorderOf, RuntimeJournal, type RecordContext } from '../../src/state/journal.js';

const ctx: RecordContext = { untaggedVid: () => null, configHasPort: () => true, configHasFdb: () => false, portQos: () => null };

function run(j: RuntimeJournal, method: string, params: Record<string, unknown>): void {
  const rec = recorderOf(method);
  if (rec === undefined) throw new Error(`no recorder for ${method}`);
  rec(params, null, j, ctx);
}

describe('mirrors in the runtime journal', () => {
  it('records an add with its parameters; a delete of a runtime mirror leaves nothing', () => {
    const j = new RuntimeJournal();
    run(j, 'mirror.add', { bridge: 'xenbr0', name: 'ids', select_ports: 'vif1.0,vif2.0', output: 'vif9.0', direction: undefined });
    expect(j.list()).toEqual([{
      method: 'mirror.add', params: { bridge: 'xenbr0', name: 'ids', select_ports: 'vif1.0,vif2.0', output: 'vif9.0' },
      key: 'mirror:xenbr0/ids', target: 'bridge:xenbr0/mirrors/ids',
    }]);
    run(j, 'mirror.del', { bridge: 'xenbr0', name: 'ids' });
    expect(j.list()).toEqual([]);
  });

  it('a config mirror deleted, then added again: the deletion is replayed before the add', () => {
    const j = new RuntimeJournal();
    run(j, 'mirror.del', { bridge: 'xenbr0', name: 'm0' });
    run(j, 'mirror.add', { bridge: 'xenbr0', name: 'm0', select_ports: 'all', output_vlan: 99 });
    expect(j.list().map((r) => [r.method, r.key])).toEqual([['mirror.del', 'mirror-del:xenbr0/m0'], ['mirror.add', 'mirror:xenbr0/m0']]);
    // deleted again: only the config mirror's deletion remains
    run(j, 'mirror.del', { bridge: 'xenbr0', name: 'm0' });
    expect(j.list().map((r) => [r.method, r.key])).toEqual([['mirror.del', 'mirror-del:xenbr0/m0']]);
  });
});
