// Control operations on bonds (`bond show`, `bond set-active`, src/daemon/bond.ts): every bridge's uplink bond by
// name. A bond mode's own verb goes here, its state in bond.ts.

import { ControlError } from '../control/errors.js';
import type { Bond, BondShow } from './bond.js';
import type { DaemonCore } from './runtime.js';

function bonds(d: DaemonCore): Bond[] {
  return [...d.bridges.values()].flatMap((br) => (br.bond !== null ? [br.bond] : []));
}

function bondByName(d: DaemonCore, name: unknown): Bond {
  if (typeof name !== 'string') throw new ControlError('invalid_params', 'bond must be a string');
  const bond = bonds(d).find((b) => b.name === name);
  if (bond === undefined) throw new ControlError('not_found', `no such bond: ${name}`, { bond: name });
  return bond;
}

export function bondShow(d: DaemonCore, name: unknown): BondShow | BondShow[] {
  if (name === undefined || name === null) return bonds(d).map((b) => b.show());
  return bondByName(d, name).show();
}

export function bondSetActive(d: DaemonCore, name: unknown, member: unknown): BondShow {
  const bond = bondByName(d, name);
  if (typeof member !== 'string') throw new ControlError('invalid_params', 'member must be a string');
  const problem = bond.setActive(member);
  if (problem !== null) throw new ControlError(bond.policy.index(member) < 0 ? 'no_such_port' : 'invalid_params', problem);
  return bond.show();
}
