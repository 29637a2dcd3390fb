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

  // port-ring.cc: PACKET_MMAP rings on an AF_PACKET socket (native-notes/packet-mmap.md).
  // SetupRing: on a fresh socket, before bind(): PACKET_QDISC_BYPASS when configured (with rings or
  // without), then, when rings are on, TPACKET_V2, rx and tx rings and mmap. AdoptRing: on an
  // inherited socket that has rings (PACKET_VERSION is TPACKET_V2): maps them with the configured
  // geometry after checking the socket's geometry stamp, and finds the kernel's rx and tx positions. Both return 0 or an errno
  // with *syscall set; on failure the port is left without rings.
  int SetupRing(const char** syscall);
  int AdoptRing(const char** syscall);
  // port.cc: the port's send socket (AF_PACKET, never polled; see OpenTxSocket), opened after the
  // socket is bound or adopted. Returns 0 or an errno with *syscall set.
  int OpenTxSocket(const char** syscall);
  void CloseFd();  // close() from C++
  // Marks the port closed without closing its fd (an adopted fd whose rings could not be mapped:
  // the caller keeps the fd).
  void Abandon() {
    UnmapRing();
    CloseTxSocket();
    fd_ = -1;
    closed_ = true;
  }
  bool HasRing() const { return ringMap_ != nullptr; }

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

  Napi::Value RingInfo(const Napi::CallbackInfo& info);

  static void OnPoll(uv_poll_t* handle, int status, int events);
  void HandlePoll(int status);
  // Reads one batch into the shared slab; returns the number of descriptors filled.
  // On a read error other than EAGAIN sets *err (positive errno) and *syscall.
  uint32_t ReadBatch(int* err, const char** syscall);
  // One recvmsg into the slab at pos (AF_PACKET): > 0 slab bytes used and *d filled, 0 frame
  // skipped (counted), -1 nothing to read, -2 error (*err, *syscall set).
  ssize_t RecvFrame(size_t pos, int32_t* d, int* err, const char** syscall);
  // Writes the descriptor of a frame stored at slab[pos + 4] (vnet header + frame, n bytes),
  // re-inserting the VLAN tag the kernel stripped; returns the slab bytes used.
  size_t StoreFrame(size_t pos, size_t n, int32_t* d, uint32_t tpStatus, uint16_t tci, uint16_t tpid);
  // port-ring.cc
  uint32_t RingReadBatch(int* err, const char** syscall);
  uint32_t RingSend(uint32_t m);
  uint32_t RingFlush();
  uint8_t* RxSlot(uint32_t i) const;
  uint8_t* TxSlot(uint32_t i) const;
  void UnmapRing();
  int MapRing(const char** syscall);
  void CloseTxSocket();
  // Called with the drops PACKET_STATISTICS just returned: rebuilds a wedged rx ring (see port-ring.cc).
  void CheckRxWedge(unsigned drops);
  int RebuildRxRing(const char** syscall);
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

  // PACKET_MMAP (port-ring.cc); ringMap_ == nullptr: the recvmsg/sendmmsg path.
  uint8_t* ringMap_ = nullptr;
  size_t ringMapLen_ = 0;
  uint32_t ringBlockBytes_ = 0;
  uint32_t ringFrameBytes_ = 0;
  uint32_t ringFramesPerBlock_ = 0;
  uint32_t rxFrames_ = 0;
  uint32_t txFrames_ = 0;
  uint32_t rxHead_ = 0;
  uint32_t txHead_ = 0;
  uint64_t txSeq_ = 0;       // stamped into each tx slot (tp_sec/tp_nsec) so an adopter finds the head
  uint64_t rxSlotsSinceCheck_ = 0;  // rx slots consumed since the last CheckRxWedge
  double ringResets_ = 0;    // rx rings rebuilt after a wedge
  double ringResetFailures_ = 0;
  int txFd_ = -1;            // AF_PACKET send socket (protocol 0: receives nothing; never polled)

  // recvmsg control buffer for PACKET_AUXDATA.
  alignas(8) uint8_t cmsgBuf_[128];
};

// Wraps an open fd in a RawPort (closes fd and returns undefined with a pending exception on failure).
Napi::Value NewPort(Napi::Env env, int fd, int ifindex, const std::string& name, Port::Kind kind);

}  // namespace tb
