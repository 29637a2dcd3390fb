// Config of vhost-user ports (issue 23 §1): `socket` and `mode` on kind vhost-user, and only there.
import { describe, expect, it } from 'vitest';
import { parseConfig, vhostUserSpecOf } from '../../src/config/config.js';
import { configIssues } from '../support/config-issues.js';

describe('vhost-user port config', () => {
  it('reads socket and mode, mode client by default', () => {
    const cfg = parseConfig(`
bridges:
  - name: xenbr0
    ports:
      - { name: vif3.0, kind: vhost-user, socket: /run/tapbridge/vif3.0.sock }
      - { name: vif4.0, kind: vhost-user, socket: /run/tapbridge/vif4.0.sock, mode: server, vlan: 10 }
`);
    const [a, b] = cfg.bridges[0].ports;
    expect(a).toMatchObject({ name: 'vif3.0', kind: 'vhost-user', vhostUser: { socket: '/run/tapbridge/vif3.0.sock', mode: 'client' } });
    expect(b).toMatchObject({ kind: 'vhost-user', vhostUser: { socket: '/run/tapbridge/vif4.0.sock', mode: 'server' }, vlan: { mode: 'access' } });
  });

  it('names what is wrong', () => {
    expect(issues('{ name: v, kind: vhost-user }')).toEqual(['bridges[0].ports[0].socket: is required for kind vhost-user: the path of the vhost-user Unix socket']);
    expect(issues('{ name: v, kind: vhost-user, socket: run/v.sock }')).toEqual(['bridges[0].ports[0].socket: must be an absolute path, got "run/v.sock"']);
    expect(issues(`{ name: v, kind: vhost-user, socket: /${'x'.repeat(107)} }`)).toEqual(['bridges[0].ports[0].socket: must be at most 107 bytes without NUL']);
    expect(issues('{ name: v, kind: vhost-user, socket: /v.sock, mode: both }')).toEqual(['bridges[0].ports[0].mode: must be "client" (QEMU listens) or "server" (tapbridge listens), got "both"']);
    expect(issues('{ name: v, socket: /v.sock, mode: client }')).toEqual([
      'bridges[0].ports[0].socket: applies only to kind vhost-user',
      'bridges[0].ports[0].mode: applies only to kind vhost-user',
    ]);
    expect(issues('{ name: v, kind: vhost-user, socket: /v.sock, persist: true }')).toEqual(['bridges[0].ports[0].persist: applies only to kind tap (a vhost-user port has no netdev)']);
  });

  it('addif uses the same check', () => {
    expect(vhostUserSpecOf('/a.sock', undefined)).toEqual({ socket: '/a.sock', mode: 'client' });
    expect(vhostUserSpecOf(undefined, 'client')).toMatch(/^socket is required/);
  });
});

function issues(port: string): string[] {
  return configIssues(`bridges: [ { name: b, ports: [ ${port} ] } ]`);
}
