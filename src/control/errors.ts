// Errors a control request can produce: a JSON-RPC code plus a stable string in error.data.code.

export const RPC_PARSE_ERROR = -32700;
export const RPC_INVALID_REQUEST = -32600;
export const RPC_METHOD_NOT_FOUND = -32601;
export const RPC_INVALID_PARAMS = -32602;
export const RPC_INTERNAL_ERROR = -32603;
/** Application errors (unknown bridge, port, ...). */
export const RPC_REQUEST_FAILED = -32000;

export type ControlErrorCode =
  | 'parse_error'
  | 'invalid_request'
  | 'method_not_found'
  | 'invalid_params'
  | 'internal_error'
  | 'no_such_bridge'
  | 'no_such_port'
  | 'port_exists'
  | 'not_found'
  | 'fdb_full'
  | 'mdb_full'
  | 'io_error'
  | 'request_too_large'
  | 'handing_over'
  | 'handover_refused'
  | 'invalid_config'
  | 'state_write_failed'
  | 'data_plane_timeout'
  | 'data_plane_error';

const RPC_CODE: Record<ControlErrorCode, number> = {
  parse_error: RPC_PARSE_ERROR,
  invalid_request: RPC_INVALID_REQUEST,
  request_too_large: RPC_INVALID_REQUEST,
  method_not_found: RPC_METHOD_NOT_FOUND,
  invalid_params: RPC_INVALID_PARAMS,
  internal_error: RPC_INTERNAL_ERROR,
  no_such_bridge: RPC_REQUEST_FAILED,
  no_such_port: RPC_REQUEST_FAILED,
  port_exists: RPC_REQUEST_FAILED,
  not_found: RPC_REQUEST_FAILED,
  fdb_full: RPC_REQUEST_FAILED,
  mdb_full: RPC_REQUEST_FAILED,
  io_error: RPC_REQUEST_FAILED,
  handing_over: RPC_REQUEST_FAILED,
  handover_refused: RPC_REQUEST_FAILED,
  invalid_config: RPC_INVALID_PARAMS,
  state_write_failed: RPC_REQUEST_FAILED,
  data_plane_timeout: RPC_REQUEST_FAILED,
  data_plane_error: RPC_REQUEST_FAILED,
};

export class ControlError extends Error {
  readonly code: ControlErrorCode;
  readonly rpcCode: number;
  readonly details: Record<string, unknown> | undefined;
  constructor(code: ControlErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.code = code;
    this.rpcCode = RPC_CODE[code];
    this.details = details;
  }
}
