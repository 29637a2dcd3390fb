// Host-stack restore with the sysctl files and the ethtool calls faked (issue 9, section 2): LRO is turned back on
// when the daemon turned it off (this machine has no netdev with switchable LRO), accept_ra goes back before
// disable_ipv6, a value the daemon found already silenced is left alone, and a removed netdev is only forgotten.

import { beforeEach, describe, expect, it, vi } from 'vitest';

const files = new Map<string, string>();
const writes: string[] = [];
const lro = { on: new Set<string>(), calls: [] as string[] };
const present = new Set<string>();

vi.mock('node:fs', async (orig) => ({
  ...(await orig<typeof import('node:fs')>()),
  readFileSync: (p: string): string => {
    const v = files.get(p);
    if (v === undefined) throw Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' });
    return `${v}\n`;
  },
  writeFileSync: (p: string, v: string): void => {
    if (!files.has(p)) throw Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' });
    files.set(p, v);
    writes.push(`${p.replace('/proc/sys/net/ipv6/conf/', '')}=${v}`);
  },
}));

vi.mock('../../src/io/native.js', () => ({
  netdev: {
    info: (name: string) => (present.has(name) ? { ifindex: 5, flags: 1, mtu: 1500, mac: '02:00:00:00:00:01', txqueuelen: 1000 } : null),
    disableLro: (name: string) => {
      lro.calls.push(`off ${name}`);
      return lro.on.delete(name) ? 'changed' : 'off';
    },
    enableLro: (name: string) => {
      lro.calls.push(`on ${name}`);
      if (lro.on.has(name)) return 'on';
      lro.on.add(name);
      return 'changed';
    },
  },
}));

const { exportHostStackOriginals, restoreHostStack, silenceHostStack } = await import('../../src/daemon/hoststack.js');
const { silentLogger } = await import('../../src/log.js');
const log = silentLogger();

function netdevWith(name: string, acceptRa: string, disableIpv6: string, lroOn: boolean): void {
  files.set(`/proc/sys/net/ipv6/conf/${name}/accept_ra`, acceptRa);
  files.set(`/proc/sys/net/ipv6/conf/${name}/disable_ipv6`, disableIpv6);
  if (lroOn) lro.on.add(name);
  present.add(name);
}

beforeEach(() => {
  files.clear();
  writes.length = 0;
  lro.on.clear();
  lro.calls.length = 0;
  present.clear();
});

describe('host-stack restore', () => {
  it('silences, then restores LRO, accept_ra and (last) disable_ipv6 to the originals', () => {
    netdevWith('peth0', '2', '0', true);
    silenceHostStack('peth0', log);
    expect(files.get('/proc/sys/net/ipv6/conf/peth0/accept_ra')).toBe('0');
    expect(files.get('/proc/sys/net/ipv6/conf/peth0/disable_ipv6')).toBe('1');
    expect(lro.on.has('peth0')).toBe(false);
    expect(exportHostStackOriginals().peth0).toEqual({ accept_ra: '2', disable_ipv6: '0', lro: 'on' });
    // opened again (e.g. the netdev came back): the daemon's own values are not taken for originals
    silenceHostStack('peth0', log);
    writes.length = 0;
    restoreHostStack('peth0', log);
    expect(lro.on.has('peth0')).toBe(true);
    expect(writes).toEqual(['peth0/accept_ra=2', 'peth0/disable_ipv6=0']);
    expect(exportHostStackOriginals().peth0).toBeUndefined();
  });

  it('changes nothing back that it did not change', () => {
    netdevWith('vif1.0', '0', '1', false);
    silenceHostStack('vif1.0', log);
    restoreHostStack('vif1.0', log);
    expect(writes).toEqual([]);
    expect(lro.calls).toEqual(['off vif1.0']);
  });

  it('only forgets the originals of a netdev that is gone', () => {
    netdevWith('vif2.0', '1', '0', false);
    silenceHostStack('vif2.0', log);
    present.delete('vif2.0');
    writes.length = 0;
    restoreHostStack('vif2.0', log);
    expect(writes).toEqual([]);
    expect(exportHostStackOriginals()['vif2.0']).toBeUndefined();
  });
});
