import { describe, expect, it } from 'vitest';
import { handleLine, type MethodHandler } from '../../src/control/server.js';
import { ControlError } from '../../src/control/errors.js';
import { silentLogger } from '../../src/log.js';

const methods = new Map<string, MethodHandler>([
  ['echo', (p) => p],
  ['fails', () => {
    throw new ControlError('no_such_bridge', 'no such bridge: x', { bridge: 'x' });
  }],
  ['crashes', () => {
    throw new Error('boom');
  }],
]);
const log = silentLogger();
const rpc = (line: string): unknown => handleLine(line, methods, log);

describe('JSON-RPC handling', () => {
  it('answers a request with its id', () => {
    expect(rpc('{"jsonrpc":"2.0","id":7,"method":"echo","params":{"a":1}}')).toEqual({ jsonrpc: '2.0', id: 7, result: { a: 1 } });
  });

  it('gives parse errors, invalid requests and unknown methods standard codes plus data.code', () => {
    expect(rpc('{nope')).toMatchObject({ id: null, error: { code: -32700, data: { code: 'parse_error' } } });
    expect(rpc('[1,2]')).toMatchObject({ error: { code: -32600, data: { code: 'invalid_request' } } });
    expect(rpc('{"jsonrpc":"1.0","id":1,"method":"echo"}')).toMatchObject({ id: 1, error: { code: -32600 } });
    expect(rpc('{"jsonrpc":"2.0","id":1,"method":"nope"}')).toMatchObject({ error: { code: -32601, data: { code: 'method_not_found' } } });
    expect(rpc('{"jsonrpc":"2.0","id":1,"method":"echo","params":[1]}')).toMatchObject({ error: { code: -32602, data: { code: 'invalid_params' } } });
  });

  it('maps application errors to -32000 with a stable code and details', () => {
    expect(rpc('{"jsonrpc":"2.0","id":"x","method":"fails"}')).toEqual({
      jsonrpc: '2.0', id: 'x', error: { code: -32000, message: 'no such bridge: x', data: { code: 'no_such_bridge', bridge: 'x' } },
    });
  });

  it('turns an unexpected exception into an internal error reply', () => {
    expect(rpc('{"jsonrpc":"2.0","id":2,"method":"crashes"}')).toMatchObject({ id: 2, error: { code: -32603, data: { code: 'internal_error' } } });
  });

  it('does not answer notifications', () => {
    expect(rpc('{"jsonrpc":"2.0","method":"echo"}')).toBeNull();
  });
});
