// The host-stack originals record (issue 9, section 2): exported as JSON for a state file, imported
// back with validation; an original already recorded is never overwritten by a later import.

import { describe, expect, it } from 'vitest';
import { exportHostStackOriginals, forgetHostStack, importHostStackOriginals } from '../../src/daemon/hoststack.js';

describe('host-stack originals', () => {
  it('round-trips through JSON and keeps the first original', () => {
    expect(importHostStackOriginals({ 'vif1.0': { accept_ra: '2', disable_ipv6: '0', lro: 'on' }, peth0: { accept_ra: '1' } })).toEqual([]);
    const saved = JSON.parse(JSON.stringify(exportHostStackOriginals())) as unknown;
    expect(saved).toMatchObject({ 'vif1.0': { accept_ra: '2', disable_ipv6: '0', lro: 'on' }, peth0: { accept_ra: '1' } });
    // a later record (e.g. values the daemon itself set) does not replace the true original
    expect(importHostStackOriginals({ peth0: { accept_ra: '0', disable_ipv6: '1' } })).toEqual([]);
    expect(exportHostStackOriginals().peth0).toEqual({ accept_ra: '1', disable_ipv6: '1' });
    forgetHostStack('vif1.0');
    forgetHostStack('peth0');
    expect(exportHostStackOriginals()).toEqual({});
  });

  it('skips hostile entries and names each problem', () => {
    const problems = importHostStackOriginals({
      'x%d': { accept_ra: '0' },
      'way-too-long-ifname': { accept_ra: '0' },
      ok0: { accept_ra: '1; rm -rf /' },
      ok1: { lro: 'off' },
      ok2: [1],
      ok3: { accept_ra: '2' },
    });
    expect(problems).toHaveLength(5);
    expect(problems.join('\n')).toMatch(/x%d.*contains "%"/);
    expect(Object.keys(exportHostStackOriginals())).toEqual(['ok3']);
    expect(importHostStackOriginals([1, 2])).toEqual(['host-stack originals must be a mapping of interface names']);
    forgetHostStack('ok3');
  });
});
