// tapbridge_native: a TAP or AF_PACKET port (RawPort in src/io/native-types.ts).
#pragma once

#include "common.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <memory>
#include <string>
#include <vector>

namespace tb {

class Port : public Napi::ObjectWrap<Port> {
 public:
  enum Kind { kTap = 0, kPacket = 1 };

  static Napi::Function Init(Napi::Env env);
  // Only the addon constructs ports: (token: External, fd, ifindex, name, kind).
  explicit Port(const Napi::CallbackInfo& info);
  ~Port() override;

  // directpoll.cc: reads one batch into the slab, as the uv_poll callback does, and returns its size;
  // the caller hands it to JS. *failed: a read failed (the uv_poll path then sees the fd again and
  // reports the error through onError, so there is one place that counts and stops).
  uint32_t DirectRead(bool* failed);

  // directpoll.cc: the fd is readable; read a batch and hand it to JS as the uv_poll callback does.
  void PollReadable() { HandlePoll(0); }

 private:
  // JS accessors and methods.
  Napi::Value GetFd(const Napi::CallbackInfo& info);
  Napi::Value GetIfindex(const Napi::CallbackInfo& info);
  Napi::Value GetName(const Napi::CallbackInfo& info);
  Napi::Value GetKind(const Napi::CallbackInfo& info);
  Napi::Value SetTx(const Napi::CallbackInfo& info);
  Napi::Value SetCounters(const Napi::CallbackInfo& info);
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Stop(const Napi::CallbackInfo& info);
  Napi::Value Send(const Napi::CallbackInfo& info);
  Napi::Value ReadSocketDrops(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  static void OnPoll(uv_poll_t* handle, int status, int events);
  void HandlePoll(int status);
  // Reads one batch into the shared slab; returns the number of descriptors filled.
  // On a read error other than EAGAIN sets *err (positive errno) and *syscall.
  uint32_t ReadBatch(int* err, const char** syscall);
  void StopPolling();
  void DoClose(bool fromDestructor);
  void ReleaseJsRefs();
  void CountTxError(int e);

  napi_env env_;
  AddonData* data_;
  int fd_ = -1;
  int ifindex_ = 0;
  std::string name_;
  Kind kind_ = kTap;

  uv_poll_t* poll_ = nullptr;  // heap; freed by the uv_close callback
  bool polling_ = false;
  bool refd_ = false;          // strong ref on the wrapper while polling
  bool closed_ = false;
  int inCallback_ = 0;         // > 0 while JS callbacks run from HandlePoll
  int pollErrors_ = 0;         // consecutive poll errors (busy-loop guard)
  int readErrors_ = 0;         // consecutive read errors with no frame (busy-loop guard)

  Napi::FunctionReference onRx_;
  Napi::FunctionReference onError_;
  std::unique_ptr<Napi::AsyncContext> asyncCtx_;

  Napi::Reference<Napi::Uint32Array> txRef_;
  uint32_t* tx_ = nullptr;
  size_t txCap_ = 0;
  std::vector<uint8_t> txScratch_;   // 16 bytes per entry: [vnet hdr copy 10][tag 4][pad 2]
  std::vector<struct iovec> txIov_;  // 4 per entry
  std::vector<struct mmsghdr> txMsgs_;

  Napi::Reference<Napi::Float64Array> countersRef_;
  double* counters_;
  double dummyCounters_[CounterCount] = {0};

  // recvmsg control buffer for PACKET_AUXDATA.
  alignas(8) uint8_t cmsgBuf_[128];
};

// Wraps an open fd in a RawPort (closes fd and returns undefined with a pending exception on failure).
Napi::Value NewPort(Napi::Env env, int fd, int ifindex, const std::string& name, Port::Kind kind);

}  // namespace tb
