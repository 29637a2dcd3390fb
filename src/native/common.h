// tapbridge_native: shared declarations.
//
// Built with NAPI_DISABLE_CPP_EXCEPTIONS: every helper that throws into JS returns and the caller
// must return immediately (the JS exception is pending in the env).
#pragma once

#include <napi.h>
#include <uv.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>

namespace tb {

constexpr const char* kVersion = "tapbridge_native 0.1.0";

// Sizes shared with src/io/native-types.ts.
constexpr size_t kVnetHdrLen = 10;          // struct virtio_net_hdr
constexpr size_t kMaxFrame = 65536;         // largest frame (GSO) we accept
constexpr size_t kTagLen = 4;               // 802.1Q / 802.1ad tag
constexpr size_t kSlotAlign = 16;
// One receive slot: tag headroom + vnet header + frame + alignment slack.
constexpr size_t kSlot = kTagLen + kVnetHdrLen + kMaxFrame + kSlotAlign;
constexpr size_t kMinSlab = 1u << 20;       // setup() requires >= 1 MiB

// Rx flags (native-types.ts).
constexpr int32_t RX_F_TAG_RESTORED = 1;

// Tx ops (native-types.ts).
constexpr uint32_t TX_OP_NONE = 0;
constexpr uint32_t TX_OP_PUSH_TAG = 1;
constexpr uint32_t TX_OP_POP_TAG = 2;
constexpr uint32_t TX_OP_SET_TAG = 3;

// PortCounter (native-types.ts).
enum PortCounter : int {
  RxTruncated = 0,
  RxErrors = 1,
  TxFull = 2,
  TxLinkDown = 3,
  TxOversize = 4,
  TxOther = 5,
  TxLastErrno = 6,
  RxSocketDrops = 7,
  TxBytes = 8,
  RxRunt = 9,        // frame shorter than 14 bytes (RxTruncated: longer than the slot, MSG_TRUNC)
  RxGsoPackets = 10, // frames read with a GSO vnet header (gso_type != 0)
  TxGsoPackets = 11, // frames the kernel accepted with a GSO vnet header
  CounterCount = 12,
};

// Per-env state (napi instance data).
struct AddonData {
  Napi::Reference<Napi::ArrayBuffer> slabRef;
  Napi::Reference<Napi::Int32Array> rxDescRef;
  uint8_t* slab = nullptr;
  size_t slabLen = 0;
  int32_t* rxDesc = nullptr;
  size_t rxDescFrames = 0;   // rxDesc.length / 3
  uint32_t budget = 0;
  Napi::FunctionReference portCtor;
  Napi::FunctionReference linkMonCtor;
  Napi::FunctionReference vhostUserCtor;  // vhost-user.cc
  Napi::FunctionReference vhostPeerCtor;  // vhost-user.cc: a data worker's peer of a port
  void* directPoll = nullptr;  // directpoll.cc's state, created on first use
  AddonData() = default;
  AddonData(const AddonData&) = delete;
  AddonData& operator=(const AddonData&) = delete;
  ~AddonData();
};

// Token that only the addon can pass to the Port / LinkMonitor / vhost-user constructors.
extern int kCtorToken;
// Whether a wrapped class's constructor was called by the addon (argc arguments, the token first); else throws
// `usage` (a TypeError) and the caller marks the object closed.
bool FromAddon(const Napi::CallbackInfo& info, size_t argc, const char* usage);

// "<syscall> <ifname>: <strerror> (<CODE>)" with own properties code, errno, syscall, ifname.
Napi::Error MakeSysError(Napi::Env env, int err, const std::string& syscall, const std::string& ifname);
void ThrowSysError(Napi::Env env, int err, const std::string& syscall, const std::string& ifname);
void ThrowType(Napi::Env env, const std::string& msg);
const char* ErrnoName(int err);

// Validates an interface name argument (string, 1..15 bytes). Throws TypeError and returns false.
bool GetIfName(const Napi::CallbackInfo& info, size_t idx, std::string* out);
// Integer argument helpers; throw TypeError and return false on a bad value.
bool GetInt(const Napi::Value& v, const char* what, int64_t min, int64_t max, int64_t* out);

// The typed arrays a port keeps (port.cc, vhost-user.cc). setTx(tx: Uint32Array) of at least one entry (4 uint32):
// *data and *entries set, a reference kept; setCounters(counters: Float64Array) of >= CounterCount. False with a
// TypeError thrown on a bad argument.
bool BindTx(const Napi::CallbackInfo& info, Napi::Reference<Napi::Uint32Array>* ref, uint32_t** data, size_t* entries);
bool BindCounters(const Napi::CallbackInfo& info, Napi::Reference<Napi::Float64Array>* ref, double** data);
// send(count): *count in 0..entries (0 when the port is closed); false with a TypeError (not a number, out of range)
// or an Error (setTx() not called) thrown.
bool GetSendCount(const Napi::CallbackInfo& info, bool closed, const uint32_t* tx, size_t entries, uint32_t* count);

// If a JS exception is pending after a callback from a libuv callback, hand it to Node's
// uncaught-exception machinery (process 'uncaughtException' or exit), as core handles do.
void HandlePendingException(Napi::Env env);

// True for errnos that mean "the device or fd is gone for good".
inline bool IsFatalRxErrno(int e) {
  return e == EBADFD || e == ENXIO || e == ENODEV || e == EBADF;
}

// Init functions of the parts.
Napi::Function InitPort(Napi::Env env);
Napi::Function InitLinkMonitor(Napi::Env env);
void InitIfctl(Napi::Env env, Napi::Object exports);
void InitHandover(Napi::Env env, Napi::Object exports);
void InitNetns(Napi::Env env, Napi::Object exports);  // netns.cc: moved TAPs
void InitNotify(Napi::Env env, Napi::Object exports);  // notify.cc: sdNotify
void InitVxlan(Napi::Env env, Napi::Object exports);  // vxlan.cc
// filelock.cc: flockExclusive(fd) for the state file lock.
void InitFileLock(Napi::Env env, Napi::Object exports);
void InitUnixSock(Napi::Env env, Napi::Object exports);
void InitPacketRing(Napi::Env env, Napi::Object exports);  // port-ring.cc: setPacketRing
Napi::Value OpenTap(const Napi::CallbackInfo& info);
Napi::Value OpenPacket(const Napi::CallbackInfo& info);
Napi::Value LinkMonitorNew(const Napi::CallbackInfo& info);

// Small helpers for the ioctl socket.
int CtlSocket();  // AF_INET SOCK_DGRAM, CLOEXEC; -1 with errno on failure
int IfIndex(const std::string& name, int* err);  // >0, or 0 with *err set

}  // namespace tb
