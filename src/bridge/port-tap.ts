// The engine's hook for observers of a port's frames: step "capture" in bridge.ts.
//
// Model: the engine defines this interface and calls it; an observer above the engine implements it
// (src/observe/capture.ts: live pcapng) and sets it as `port.tap`, or null when it stops. The engine
// imports nothing from its observers: layers point down (test/unit/layers.test.ts checks the imports).
//
//   rx    a frame the port received and the bridge accepted
//   tx    a frame queued on the port, with its tx op (off, len, op as in PortIo.tx; `tagTci`: the TCI a
//         push/set writes, TPID 0x8100)
//   drop  a frame dropped at this port (`reason`: a bridge.ts DROP_* code, named by dropCodeName();
//         `out`: dropped on egress)
//   `vid` is the frame's VLAN in the bridge (-1 when not yet classified).
//
// Contract: the engine calls a tap inside a receive batch, with the frame in the rx slab; a tap copies
// what it keeps before it returns, never blocks and never throws. Frames a tap could not keep are counted
// by its owner in port.captureDropped (`capture_dropped` in stats).
//
// Notes on performance
//   A port without a tap costs one null check per frame it touches.

export interface PortTap {
  rx(slab: Uint8Array, off: number, len: number, vid: number): void;
  tx(slab: Uint8Array, off: number, len: number, op: number, tagTci: number, vid: number): void;
  drop(slab: Uint8Array, off: number, len: number, op: number, tagTci: number, vid: number, reason: number, out: boolean): void;
}
