// tapbridge_native: vhost-user ports (QEMU docs/interop/vhost-user.rst), written from the specification.
//
// Model. A vhost-user frontend (QEMU, DPDK's virtio_user) shares the guest's memory with us over a Unix stream
// socket: a memory table with one fd per region, which we mmap MAP_SHARED, and per virtqueue the ring addresses, a
// kick eventfd (guest -> us) and a call eventfd (us -> guest). We read and write the split virtqueues directly:
//
//   queue 1 (guest TX)  kick readable -> walk the available chains, copy each frame into the shared RX slab as
//                       [virtio_net_hdr 10][frame], return the chain on the used ring, one onRx(count) per batch;
//                       the engine sees the port like a TAP (same slab, same vnet-header path).
//   queue 0 (guest RX)  send(count) copies each tx entry (off, len, op, arg as on a TAP) into the guest's
//                       available buffers, with MRG_RXBUF over as many chains as it needs.
//
// Features offered: VERSION_1, MRG_RXBUF, INDIRECT_DESC, EVENT_IDX, CSUM, GUEST_CSUM, HOST/GUEST_TSO4/6/ECN,
// PROTOCOL_FEATURES (protocol feature REPLY_ACK). The guest's 12-byte header (10 without VERSION_1/MRG_RXBUF)
// becomes the 10-byte vnet header of the slab as is: both are struct virtio_net_hdr, little endian here.
// Towards a guest that did not take GUEST_CSUM the checksum is completed in software; a GSO frame it did not
// take GUEST_TSO* for is dropped (TxOversize).
//
// The guest is never trusted. Every guest value is read once into a local and checked: ring sizes (a power of
// two, <= 32768), ring addresses (inside one region, aligned), avail idx (at most num ahead), heads and next
// indexes (< size), descriptor direction, indirect tables (inside one region, a multiple of 16, no nesting),
// chain length (<= the table size: a loop is an error), every buffer (inside the memory table). Any violation
// and any malformed message closes the connection with a reason (onState 'disconnected'); only this port is
// affected. Frames longer than 64 KiB are dropped and counted (RxTruncated), not an error.
//
// Budget. A chain is walked for at most kMaxChainDescs descriptors (longer: returned unread, frame dropped), one
// kick's receive batches for at most kDescBudgetPerWakeup, one send() for at most kDescBudgetPerSend: a guest's
// legal but maximal rings (32768 chains of indirect tables of 32768) cost a bounded amount of work per wakeup.
// The budget walked is the ring's (Vring::descWalked, under that ring's lock): queue 1's reader and queue 0's
// senders, which may be different threads, never share it.
//
// Notifications. Queue 0 (guest RX) asks for no kicks at all (NO_NOTIFY, or an avail_event far ahead). Kicks:
// a kick reads up to kBatchesPerWakeup batches, the bridge handling each in between; with EVENT_IDX avail_event
// is set to the next expected index only when queue 1 is found empty; without it VRING_USED_F_NO_NOTIFY is set while
// the batches run and cleared when queue 1 is found empty, each followed by one more look at the avail index.
// One implementation (ServeKick) serves a kick on the main thread and on a data worker. Re-enabling kicks is
// followed by a full barrier and one more look at the avail index (a chain posted in between kicks us ourselves);
// a call is decided after the used index is published and a full barrier (vring_need_event).
// Calls: EVENT_IDX's used_event, else VRING_AVAIL_F_NO_INTERRUPT.
//
// Connection. mode client: JS calls connect() (and again after a disconnect, with backoff); mode server: we
// listen on the socket path and take one connection at a time (a second one is closed at once). A protocol
// error found inside send() closes the connection from a zero timer, never in the middle of the engine's batch.
// Takeover: exportHandover() gives the fds and the negotiated state to the new daemon's adoptHandover(); from then
// on this port polls neither the socket nor queue 1's kick unless start() is called (a handover that failed). The new
// daemon calls stop() after adopting (its I/O is paused until the old daemon has stopped).
// QoS: holdRx(true) stops polling queue 1's kick only (its frames wait in the guest's ring); the socket and queue 0
// are served. Queue 1's kick is polled while start() asked for it and no hold is set.
// The protocol runs on the main loop thread: uv_poll on the socket, on the listening fd and on queue 1's kick.
//
// Data workers (src/dataplane/, native-notes/multicore.md "vhost-user ports on workers"). A worker's VhostUserPeer
// (adopted by the port's `device` id from a process-wide registry) shares the port's rings: send() writes queue 0
// from the worker's slab, and while the main thread has stepped aside (rxAway(true)) the peer reads queue 1 into the
// worker's slab, woken through the port's kick epoll (an epoll fd, stable for the port's life, that holds queue 1's
// current kick eventfd: the main thread swaps the kick in it, the peer polls a dup of it in its own loop). The rule:
// every access to a ring, to guest memory or to what was negotiated holds that ring's lock (VhostLink::q[i]),
// whichever thread makes it; whatever changes the memory table or a ring (every protocol message, a disconnect,
// close, the takeover's export and adopt) holds both (q[0] then q[1]). So a worker is never inside a batch while
// memory is unmapped or a ring moves, and it sees a ring stopped, or the port closed (VhostLink::port null), under
// the lock. A peer that finds a violation in a ring marks the port broken and wakes the main thread (failAsync_),
// which disconnects.
//
// Trust in the frontend process: the memory fds must not shrink after SET_MEM_TABLE (a fault on access); a memfd
// that allows it is sealed with F_SEAL_SHRINK here, QEMU's memory-backend-memfd seals its own.
#include "vhost-user.h"
#include "busypoll.h"
#include "vnet.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <sys/epoll.h>

#include <algorithm>
#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "virtio rings are little endian; this code reads them natively");

namespace tb {

namespace {

// ---- protocol constants (vhost-user.rst) ----
enum : uint32_t {
  kGetFeatures = 1,
  kSetFeatures = 2,
  kSetOwner = 3,
  kResetOwner = 4,
  kSetMemTable = 5,
  kSetLogBase = 6,
  kSetLogFd = 7,
  kSetVringNum = 8,
  kSetVringAddr = 9,
  kSetVringBase = 10,
  kGetVringBase = 11,
  kSetVringKick = 12,
  kSetVringCall = 13,
  kSetVringErr = 14,
  kGetProtocolFeatures = 15,
  kSetProtocolFeatures = 16,
  kGetQueueNum = 17,
  kSetVringEnable = 18,
};
constexpr uint32_t kFlagVersion = 0x1;
constexpr uint32_t kFlagReply = 0x4;
constexpr uint32_t kFlagNeedReply = 0x8;
constexpr uint64_t kVringNoFd = 0x100;
constexpr uint64_t kVringIdxMask = 0xff;
constexpr size_t kHdrSize = 12;
constexpr size_t kMaxPayload = 4096;
constexpr size_t kMaxFds = 8;
constexpr size_t kMaxRegions = 8;
constexpr uint32_t kMaxQueueSize = 32768;
constexpr int kMessagesPerWakeup = 64;
// Descriptor budgets: what one wakeup may cost the daemon, whatever the guest posts. A chain walks at most
// kMaxChainDescs descriptors (an indirect descriptor and its table's entries each count; Linux's vhost-net stops at
// UIO_MAXIOV, 1024, too); a longer chain (legal up to the table size) is returned to the guest unread and dropped
// (RxErrors / TxOversize, info().longChains). The receive batches of one kick start a chain only while
// kDescBudgetPerWakeup - walked >= kMaxChainDescs, so one wakeup walks at most kDescBudgetPerWakeup descriptors; the
// rest waits for the next wakeup (info().descBudgetHits). send() walks at most kDescBudgetPerSend in the same way
// (then TxFull).
constexpr uint32_t kMaxChainDescs = 1024;
constexpr int kBatchesPerWakeup = 4;  // HandleKick: receive batches per kick before the loop serves the others
constexpr uint32_t kDescBudgetPerWakeup = 4096;
constexpr uint32_t kDescBudgetPerSend = 16384;
static_assert(kMaxChainDescs <= kDescBudgetPerWakeup && kMaxChainDescs <= kDescBudgetPerSend, "a chain fits a budget");
// Why a receive batch stopped: queue 1 empty, the batch full (frames or slab), the descriptor budget, or the ring is
// off (not started or enabled, no memory table, broken, handed over).
enum class ReadStop { Drained, Full, Budget, Off };
// How a wakeup of queue 1's reader ended (VhostUserPort::ServeKick).
enum class KickEnd { Done, Broken, Gone };

// virtio feature bits
constexpr uint64_t F_CSUM = 1ull << 0;
constexpr uint64_t F_GUEST_CSUM = 1ull << 1;
constexpr uint64_t F_GUEST_TSO4 = 1ull << 7;
constexpr uint64_t F_GUEST_TSO6 = 1ull << 8;
constexpr uint64_t F_GUEST_ECN = 1ull << 9;
constexpr uint64_t F_HOST_TSO4 = 1ull << 11;
constexpr uint64_t F_HOST_TSO6 = 1ull << 12;
constexpr uint64_t F_HOST_ECN = 1ull << 13;
constexpr uint64_t F_MRG_RXBUF = 1ull << 15;
constexpr uint64_t F_INDIRECT_DESC = 1ull << 28;
constexpr uint64_t F_EVENT_IDX = 1ull << 29;
constexpr uint64_t F_PROTOCOL_FEATURES = 1ull << 30;
constexpr uint64_t F_VERSION_1 = 1ull << 32;
constexpr uint64_t kOfferedFeatures = F_CSUM | F_GUEST_CSUM | F_GUEST_TSO4 | F_GUEST_TSO6 | F_GUEST_ECN | F_HOST_TSO4 |
                                      F_HOST_TSO6 | F_HOST_ECN | F_MRG_RXBUF | F_INDIRECT_DESC | F_EVENT_IDX |
                                      F_PROTOCOL_FEATURES | F_VERSION_1;
constexpr uint64_t PF_REPLY_ACK = 1ull << 3;
constexpr uint64_t kOfferedProtocolFeatures = PF_REPLY_ACK;

// split ring
constexpr uint16_t VRING_DESC_F_NEXT = 1;
constexpr uint16_t VRING_DESC_F_WRITE = 2;
constexpr uint16_t VRING_DESC_F_INDIRECT = 4;
constexpr uint16_t VRING_AVAIL_F_NO_INTERRUPT = 1;
constexpr uint16_t VRING_USED_F_NO_NOTIFY = 1;

struct VringDesc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(VringDesc) == 16, "virtq_desc is 16 bytes");

inline uint16_t LoadAcquire16(const volatile uint16_t* p) {
  return __atomic_load_n(const_cast<const uint16_t*>(p), __ATOMIC_ACQUIRE);
}
inline void StoreRelease16(volatile uint16_t* p, uint16_t v) {
  __atomic_store_n(const_cast<uint16_t*>(p), v, __ATOMIC_RELEASE);
}
// virtio spec 2.7.10: notify when new_idx has passed event_idx since old.
inline bool NeedEvent(uint16_t eventIdx, uint16_t newIdx, uint16_t oldIdx) {
  return static_cast<uint16_t>(newIdx - eventIdx - 1) < static_cast<uint16_t>(newIdx - oldIdx);
}

struct Region {
  uint64_t gpa = 0, size = 0, uva = 0, mmapOffset = 0;
  uint8_t* map = nullptr;  // mmap of [0, mmapOffset + size) of fd
  size_t mapLen = 0;
  int fd = -1;
  uint8_t* host() const { return map + mmapOffset; }
};

struct Vring {
  uint32_t num = 0;  // 0: not set
  uint64_t descUva = 0, availUva = 0, usedUva = 0;
  bool addrSet = false;
  bool started = false;  // kick received, addresses translated
  bool enabled = false;
  const VringDesc* desc = nullptr;
  volatile uint16_t* avail = nullptr;  // flags, idx, ring[num], used_event
  volatile uint8_t* used = nullptr;    // flags u16, idx u16, ring[num] {u32 id, u32 len}, avail_event u16
  uint16_t lastAvail = 0;
  uint16_t lastUsed = 0;
  uint16_t signalledUsed = 0;
  bool signalledValid = false;
  int kick = -1, call = -1, err = -1;
  uv_poll_t* kickPoll = nullptr;
  // Descriptor budget of the walk in progress, under this ring's lock (so the readers of queue 1 and the senders to
  // queue 0, on any threads, never share it): queue 1 one kick's batches, queue 0 one send(). ChainNext counts.
  uint32_t descWalked = 0, descBudget = 0;
  // a chain started now fits the budget (one chain walks at most kMaxChainDescs)
  bool DescBudgetLeft() const { return descWalked + kMaxChainDescs <= descBudget; }

  volatile uint16_t* usedFlags() const { return reinterpret_cast<volatile uint16_t*>(used); }
  volatile uint16_t* usedIdx() const { return reinterpret_cast<volatile uint16_t*>(used + 2); }
  volatile uint32_t* usedElem(uint16_t i) const { return reinterpret_cast<volatile uint32_t*>(used + 4 + 8 * (i & (num - 1))); }
  volatile uint16_t* availEvent() const { return reinterpret_cast<volatile uint16_t*>(used + 4 + 8 * num); }
  uint16_t usedEvent() const { return avail[2 + num]; }
};

void CloseFd(int* fd) {
  if (*fd >= 0) ::close(*fd);
  *fd = -1;
}

void FreePoll(uv_poll_t** p) {
  if (*p == nullptr) return;
  (*p)->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(*p), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
  *p = nullptr;
}

void FreeTimer(uv_timer_t** t) {
  if (*t == nullptr) return;
  (*t)->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(*t), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  *t = nullptr;
}

// Makes an fd from the frontend non-blocking: an eventfd read or write must never stall the loop.
void SetNonBlocking(int fd) {
  int fl = ::fcntl(fd, F_GETFL);
  if (fl >= 0 && !(fl & O_NONBLOCK)) ::fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

}  // namespace

class VhostUserPort;

// What a port shares with the data workers' peers. Lives as long as the port or a peer holds it.
struct VhostLink {
  // per virtqueue: held by whoever touches that ring; both (q[0] then q[1]) by whoever changes the memory table or
  // a ring (the model comment)
  std::mutex q[2];
  // the port; null once it is closed (written with both locks held)
  VhostUserPort* port = nullptr;
};

namespace {
// device id -> link, for adoptVhostUser() in a worker (the addon is loaded once per thread; this is process-wide)
std::mutex gLinksLock;
std::map<uint32_t, std::weak_ptr<VhostLink>> gLinks;
uint32_t gNextDevice = 1;

// Both ring locks of a port, in the one order.
struct RingsGuard {
  VhostLink& l;
  explicit RingsGuard(VhostLink& link) : l(link) {
    l.q[0].lock();
    l.q[1].lock();
  }
  ~RingsGuard() {
    l.q[1].unlock();
    l.q[0].unlock();
  }
};
}  // namespace

class VhostUserPort : public Napi::ObjectWrap<VhostUserPort> {
  friend class VhostUserPeer;

 public:
  static Napi::Function Init(Napi::Env env);
  explicit VhostUserPort(const Napi::CallbackInfo& info);
  ~VhostUserPort() override;

 private:
  // JS surface: the RawPort methods plus connect(), info().
  Napi::Value GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), connFd_); }
  Napi::Value GetIfindex(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), 0); }
  Napi::Value GetName(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), name_); }
  Napi::Value GetKind(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), "vhost-user"); }
  Napi::Value GetDevice(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), device_); }
  Napi::Value SetTx(const Napi::CallbackInfo& info);
  Napi::Value SetCounters(const Napi::CallbackInfo& info);
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Stop(const Napi::CallbackInfo& info);
  // data workers: rxAway(true) leaves queue 1 to a worker's peer (the connection and sends are served as before)
  Napi::Value RxAway(const Napi::CallbackInfo& info);
  // QoS: holdRx(true) leaves queue 1 (the guest's TX ring) alone, the connection keeps being served
  Napi::Value HoldRx(const Napi::CallbackInfo& info);
  Napi::Value Send(const Napi::CallbackInfo& info);
  Napi::Value ReadSocketDrops(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), 0); }
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Connect(const Napi::CallbackInfo& info);
  Napi::Value Listen(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  // takeover: exportHandover() -> {fds: [[role, fd]...], state}; adopt(fds, state) on a fresh port of the new daemon
  Napi::Value ExportHandover(const Napi::CallbackInfo& info);
  Napi::Value AdoptHandover(const Napi::CallbackInfo& info);

  // connection
  void Adopt(int fd);
  void Disconnect(const std::string& reason);
  // close(), the destructor: the peers cut off (DetachLink), every ring, region, fd and handle of the connection (not
  // the listening fd)
  void ReleaseAll();
  // onRx/onError/onState are let go once closed and no callback of ours runs
  void DropCallbacksIfClosed();
  void PollKick();
  void Fail(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
  void Emit(const char* type, const std::string& detail, bool up);
  void UpdateLink();
  bool LinkUp() const;
  static void OnConnPoll(uv_poll_t* h, int status, int events);
  static void OnListenPoll(uv_poll_t* h, int status, int events);
  static void OnKickPoll(uv_poll_t* h, int status, int events);
  void ReadMessages();
  void HandleMessage();
  bool Reply(uint32_t request, const void* payload, uint32_t size);
  bool ReplyU64(uint32_t request, uint64_t v) { return Reply(request, &v, 8); }
  uint32_t MessageSize() const;
  bool MessageOk(const char* what, uint32_t minSize);
  bool VringMessage(const char* what, uint32_t minSize, bool fileIndex, uint32_t* idx);
  bool OfferedBits(const char* what, uint64_t offered, uint64_t* out);
  void ClearFds();
  int TakeFd();  // first received fd, or -1
  void ResetRings();
  void UnmapRegions();
  bool StartRing(uint32_t index);
  void StopRing(Vring& vq);

  // memory
  uint8_t* UvaToHost(uint64_t uva, uint64_t len) const;
  uint8_t* GpaToHost(uint64_t gpa, uint64_t len) const;
  // Copies guest bytes in [gpa, gpa+len) (possibly over several regions); false when any byte is outside.
  bool GuestRead(uint8_t* dst, uint64_t gpa, uint32_t len);
  bool GuestWrite(uint64_t gpa, const uint8_t* src, uint32_t len);
  bool GuestRangeOk(uint64_t gpa, uint64_t len) const;
  const Region* RegionOf(uint64_t addr, bool uva) const;
  // Calls piece(host, n) for each part of [gpa, gpa+len) in one region, in order; false when a byte is outside.
  template <typename Piece>
  bool GuestSpan(uint64_t gpa, uint64_t len, Piece piece) const;
  // From send(): the connection is closed on the next loop iteration, never inside the engine's batch.
  void DisconnectLater();
  static void OnDeferTimer(uv_timer_t* t);

  // data path
  struct Chain {
    const VringDesc* table;
    uint32_t size;
    uint32_t idx;
    uint32_t steps;   // descriptors read from the current table (a loop check)
    uint32_t walked;  // descriptors read in all (the ring's and an indirect table's), <= kMaxChainDescs
    bool indirect;
    bool more;
    bool tooLong;  // stopped at kMaxChainDescs with descriptors left: not an error, the frame is dropped
  };
  bool ChainBegin(Vring& vq, uint16_t head, Chain* c);
  // Next buffer of the chain into *d (checked); false at the end, at kMaxChainDescs (c->tooLong) or on an error
  // (broken_ set). Each descriptor read counts in vq.descWalked.
  bool ChainNext(Vring& vq, Chain* c, VringDesc* d, bool writable);
  void HandleKick();
  // Reads one batch of queue 1 into d's slab (the calling thread's), counting into ctr, within vq_[1]'s descriptor
  // budget; *stop says why it stopped. The caller holds link_->q[1].
  uint32_t ReadBatch(AddonData* d, double* ctr, ReadStop* stop);
  // Going back to sleep after a wakeup's batches; the caller holds link_->q[1].
  void ArmKick();
  // One wakeup of queue 1's reader, whichever thread it is: HandleKick (main thread) and VhostUserPeer::HandleKick
  // (a data worker). Defined below the class.
  template <typename Deliver>
  static KickEnd ServeKick(std::shared_ptr<VhostLink> link, AddonData* d, double* const& ctr, bool onMain,
                           Deliver deliver);
  // Writes tx entries from d's slab into queue 0, counting into ctr; the caller holds link_->q[0]. Returns accepted.
  uint32_t SendBatch(AddonData* d, const uint32_t* tx, uint32_t count, double* ctr);
  // queue 1's kick is polled on this thread: start() asked, no QoS hold, not left to a worker, not handed over
  Napi::Value SetReadGate(const Napi::CallbackInfo& info, const char* usage, bool* gate);
  bool MainReads() const { return reading_ && !held_ && !away_ && !exported_; }
  void DetachLink();
  static void OnFailAsync(uv_async_t* a);
  void Notify(Vring& vq);
  // Copies one frame (pieces) into the guest's RX buffers; 0 sent, else a PortCounter index of the drop.
  int SendOne(const uint8_t* hdr, const struct iovec* pieces, int npieces, size_t frameLen);

  napi_env env_;
  AddonData* data_;
  std::string name_;
  std::string path_;
  bool server_ = false;
  bool closed_ = false;
  bool reading_ = true;  // stop()/start(): poll queue 1's kick or not
  bool held_ = false;    // holdRx(): QoS holds queue 1; its kick is polled only while reading_ && !held_
  bool away_ = false;    // rxAway(): a data worker's peer reads queue 1
  bool exported_ = false;  // handed over to another daemon: the rings and the socket are not ours to touch
  int inCallback_ = 0;
  bool refd_ = false;

  int listenFd_ = -1;
  ino_t boundIno_ = 0;  // the socket file we bound (unlinked at close only if it is still that file)
  dev_t boundDev_ = 0;
  uv_poll_t* listenPoll_ = nullptr;
  int connFd_ = -1;
  uv_poll_t* connPoll_ = nullptr;
  uv_timer_t* deferTimer_ = nullptr;
  // set by Fail() on any thread (a worker's peer too: under failLock_, the reason first); reset with both ring locks
  std::atomic<bool> broken_{false};
  std::mutex failLock_;
  std::string brokenReason_;
  // shared with the workers' peers; device_ names it in the registry
  std::shared_ptr<VhostLink> link_;
  uint32_t device_ = 0;
  int kickEpoll_ = -1;            // holds queue 1's current kick fd (EPOLLIN); peers poll a dup
  uv_async_t* failAsync_ = nullptr;  // a peer found the rings broken: Disconnect() on the main loop

  // message assembly
  uint8_t msg_[kHdrSize + kMaxPayload];
  size_t have_ = 0;
  std::vector<int> fds_;

  bool owner_ = false;
  uint64_t features_ = 0;
  bool featuresSet_ = false;
  uint64_t protocolFeatures_ = 0;
  size_t guestHdrLen_ = 10;
  Region regions_[kMaxRegions];
  size_t nregions_ = 0;
  bool memSet_ = false;
  Vring vq_[2];
  bool linkUp_ = false;

  // JS
  Napi::FunctionReference onRx_;
  Napi::FunctionReference onError_;
  Napi::FunctionReference onState_;
  std::unique_ptr<Napi::AsyncContext> asyncCtx_;
  Napi::Reference<Napi::Uint32Array> txRef_;
  uint32_t* tx_ = nullptr;
  size_t txCap_ = 0;
  Napi::Reference<Napi::Float64Array> countersRef_;
  double* counters_;
  double dummyCounters_[CounterCount] = {0};
  std::vector<uint8_t> csumScratch_;

  // statistics for info()
  double connects_ = 0, protocolErrors_ = 0, rejected_ = 0;
  std::atomic<uint64_t> kicks_{0}, notifies_{0};  // counted by whichever thread reads or sends
  // Descriptor budget (the walk itself is per ring: Vring::descWalked/descBudget, under that ring's lock). Counted
  // by whichever thread reads or sends: batches and sends that stopped on the budget, chains dropped at
  // kMaxChainDescs, onRx callbacks (frames per batch = rx_packets / rxBatches).
  std::atomic<uint64_t> descBudgetHits_{0}, longChains_{0}, rxBatches_{0};
  uint32_t maxDescPerWakeup_ = 0;  // the most descriptors one kick's receive batches walked; under link_->q[1]
  std::string lastError_;
};

Napi::Function VhostUserPort::Init(Napi::Env env) {
  return DefineClass(env, "RawVhostUser",
                     {
                         InstanceAccessor<&VhostUserPort::GetFd>("fd"),
                         InstanceAccessor<&VhostUserPort::GetIfindex>("ifindex"),
                         InstanceAccessor<&VhostUserPort::GetName>("name"),
                         InstanceAccessor<&VhostUserPort::GetKind>("kind"),
                         InstanceAccessor<&VhostUserPort::GetDevice>("device"),
                         InstanceMethod<&VhostUserPort::SetTx>("setTx"),
                         InstanceMethod<&VhostUserPort::SetCounters>("setCounters"),
                         InstanceMethod<&VhostUserPort::Start>("start"),
                         InstanceMethod<&VhostUserPort::Stop>("stop"),
                         InstanceMethod<&VhostUserPort::RxAway>("rxAway"),
                         InstanceMethod<&VhostUserPort::HoldRx>("holdRx"),
                         InstanceMethod<&VhostUserPort::Send>("send"),
                         InstanceMethod<&VhostUserPort::ReadSocketDrops>("readSocketDrops"),
                         InstanceMethod<&VhostUserPort::Close>("close"),
                         InstanceMethod<&VhostUserPort::Connect>("connect"),
                         InstanceMethod<&VhostUserPort::Listen>("listen"),
                         InstanceMethod<&VhostUserPort::Info>("info"),
                         InstanceMethod<&VhostUserPort::ExportHandover>("exportHandover"),
                         InstanceMethod<&VhostUserPort::AdoptHandover>("adoptHandover"),
                     });
}

// (token, name, path, server, onState)
VhostUserPort::VhostUserPort(const Napi::CallbackInfo& info) : Napi::ObjectWrap<VhostUserPort>(info), env_(info.Env()) {
  Napi::Env env = info.Env();
  data_ = env.GetInstanceData<AddonData>();
  counters_ = dummyCounters_;
  if (!FromAddon(info, 5, "RawVhostUser cannot be constructed from JS; use openVhostUser()")) {
    closed_ = true;
    return;
  }
  name_ = info[1].As<Napi::String>().Utf8Value();
  path_ = info[2].As<Napi::String>().Utf8Value();
  server_ = info[3].As<Napi::Boolean>().Value();
  onState_ = Napi::Persistent(info[4].As<Napi::Function>());
  asyncCtx_ = std::make_unique<Napi::AsyncContext>(env, "tapbridge:vhost-user", Napi::Object::New(env));
  // the wrapper lives until close(): its uv handles call back into it
  Ref();
  refd_ = true;
  kickEpoll_ = ::epoll_create1(EPOLL_CLOEXEC);
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  failAsync_ = new uv_async_t;
  uv_async_init(loop, failAsync_, OnFailAsync);
  failAsync_->data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(failAsync_));
  link_ = std::make_shared<VhostLink>();
  link_->port = this;
  std::lock_guard<std::mutex> g(gLinksLock);
  device_ = gNextDevice++;
  gLinks[device_] = link_;
}

// Unlists the port and cuts the peers off it (with both ring locks: no peer is inside a batch after this).
void VhostUserPort::DetachLink() {
  if (link_ == nullptr) return;
  {
    std::lock_guard<std::mutex> g(gLinksLock);
    gLinks.erase(device_);
  }
  {
    RingsGuard g(*link_);
    link_->port = nullptr;
    ResetRings();
    UnmapRegions();
  }
  link_.reset();
  CloseFd(&kickEpoll_);
  if (failAsync_ != nullptr) {
    failAsync_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(failAsync_), [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
    failAsync_ = nullptr;
  }
}

void VhostUserPort::OnFailAsync(uv_async_t* a) {
  VhostUserPort* self = static_cast<VhostUserPort*>(a->data);
  if (self == nullptr || self->closed_ || !self->broken_) return;
  Napi::HandleScope scope(Napi::Env(self->env_));
  std::string r = self->brokenReason_;
  self->Disconnect(r);
}

VhostUserPort::~VhostUserPort() {
  closed_ = true;
  ReleaseAll();
  CloseFd(&listenFd_);
}

// Detaches the peers (DetachLink: rings and regions go with both ring locks held), then the connection's fds.
void VhostUserPort::ReleaseAll() {
  DetachLink();
  ClearFds();
  FreePoll(&connPoll_);
  FreePoll(&listenPoll_);
  FreeTimer(&deferTimer_);
  CloseFd(&connFd_);
}

void VhostUserPort::DropCallbacksIfClosed() {
  if (!closed_ || inCallback_ != 0) return;
  onRx_.Reset();
  onError_.Reset();
  onState_.Reset();
}

Napi::Value VhostUserPort::SetTx(const Napi::CallbackInfo& info) {
  BindTx(info, &txRef_, &tx_, &txCap_);
  return info.Env().Undefined();
}

Napi::Value VhostUserPort::SetCounters(const Napi::CallbackInfo& info) {
  BindCounters(info, &countersRef_, &counters_);
  return info.Env().Undefined();
}

Napi::Value VhostUserPort::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsFunction() || !info[1].IsFunction()) {
    ThrowType(env, "start(onRx: (count) => void, onError: (errno, syscall, stopped) => void)");
    return env.Undefined();
  }
  if (data_->slab == nullptr) {
    Napi::Error::New(env, "start: setup() must be called first").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  onRx_ = Napi::Persistent(info[0].As<Napi::Function>());
  onError_ = Napi::Persistent(info[1].As<Napi::Function>());
  reading_ = true;
  if (exported_ && link_ != nullptr) {
    // a handover that failed: the peers may send again (they look at exported_ under the ring lock)
    RingsGuard g(*link_);
    exported_ = false;
  }
  if (connPoll_ != nullptr) uv_poll_start(connPoll_, UV_READABLE, OnConnPoll);
  // frames that queued while stopped come back through the kick
  if (MainReads()) PollKick();
  return env.Undefined();
}

// rxAway(away): a data worker's peer reads queue 1 (the data plane gives it the port only after this, and calls
// rxAway(false) only once that worker acknowledged it stopped reading). Main-thread state only: no lock.
Napi::Value VhostUserPort::RxAway(const Napi::CallbackInfo& info) {
  return SetReadGate(info, "rxAway(away: boolean)", &away_);
}

// holdRx(held): QoS (src/bridge/qos.ts) held, queue 1's kick is not polled: what the guest sends stays in its TX ring
// (its driver sees the ring fill and stops its queue: backpressure, no drop here); the connection's messages and
// queue 0 (frames to the guest) are served as before. Released, the kick is polled again if start() asked for it, and
// one kick re-reads what queued meanwhile.
Napi::Value VhostUserPort::HoldRx(const Napi::CallbackInfo& info) {
  return SetReadGate(info, "holdRx(held: boolean)", &held_);
}

// rxAway() and holdRx(): sets one of the gates MainReads() consults (away_, held_); closing the gate stops polling
// queue 1's kick, opening it polls and kicks again when every gate is open.
Napi::Value VhostUserPort::SetReadGate(const Napi::CallbackInfo& info, const char* usage, bool* gate) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsBoolean()) {
    ThrowType(env, usage);
    return env.Undefined();
  }
  const bool closedGate = info[0].As<Napi::Boolean>().Value();
  const bool changed = closedGate != *gate;
  *gate = closedGate;
  if (!changed || closed_) return env.Undefined();
  if (closedGate) {
    if (vq_[1].kickPoll != nullptr) uv_poll_stop(vq_[1].kickPoll);
  } else if (MainReads()) {
    PollKick();
  }
  return env.Undefined();
}

// Polls queue 1's kick and kicks it once: what the guest posted while it was not polled is read.
void VhostUserPort::PollKick() {
  Vring& vq = vq_[1];
  if (vq.kickPoll == nullptr) return;
  uv_poll_start(vq.kickPoll, UV_READABLE, OnKickPoll);
  if (vq.kick >= 0) eventfd_write(vq.kick, 1);
}

Napi::Value VhostUserPort::Stop(const Napi::CallbackInfo& info) {
  reading_ = false;
  if (vq_[1].kickPoll != nullptr) uv_poll_stop(vq_[1].kickPoll);
  // paused for a handover: the frontend's messages wait in the socket for whoever reads next
  if (connPoll_ != nullptr) uv_poll_stop(connPoll_);
  return info.Env().Undefined();
}

Napi::Value VhostUserPort::Close(const Napi::CallbackInfo& info) {
  if (!closed_) {
    closed_ = true;
    ReleaseAll();
    if (listenFd_ >= 0) {
      CloseFd(&listenFd_);
      // only our own socket file: after a takeover the path may already be the new daemon's
      struct stat st;
      if (::lstat(path_.c_str(), &st) == 0 && st.st_ino == boundIno_ && st.st_dev == boundDev_) ::unlink(path_.c_str());
    }
    DropCallbacksIfClosed();
    txRef_.Reset();
    tx_ = nullptr;
    txCap_ = 0;
    countersRef_.Reset();
    counters_ = dummyCounters_;
    if (refd_) {
      refd_ = false;
      Unref();
    }
  }
  return info.Env().Undefined();
}

// connect(): client mode, one attempt. Returns 0 (connected) or the errno.
Napi::Value VhostUserPort::Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_) return Napi::Number::New(env, EBADF);
  if (connFd_ >= 0) return Napi::Number::New(env, EISCONN);
  struct sockaddr_un sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  if (path_.size() >= sizeof sa.sun_path) return Napi::Number::New(env, ENAMETOOLONG);
  std::memcpy(sa.sun_path, path_.data(), path_.size());
  // non-blocking: a Unix connect to a full backlog fails with EAGAIN instead of blocking the loop (retried later)
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Napi::Number::New(env, errno);
  if (::connect(fd, reinterpret_cast<struct sockaddr*>(&sa), sizeof sa) < 0) {
    int e = errno;
    ::close(fd);
    return Napi::Number::New(env, e);
  }
  Adopt(fd);
  return Napi::Number::New(env, connFd_ >= 0 ? 0 : EIO);
}

// listen(): server mode. Replaces a stale socket file (a socket nobody accepts on), never another file type.
Napi::Value VhostUserPort::Listen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_ || listenFd_ >= 0) return env.Undefined();
  struct sockaddr_un sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  if (path_.size() >= sizeof sa.sun_path) {
    ThrowSysError(env, ENAMETOOLONG, "bind(" + path_ + ")", name_);
    return env.Undefined();
  }
  std::memcpy(sa.sun_path, path_.data(), path_.size());
  struct stat st;
  if (::lstat(path_.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      ThrowSysError(env, EEXIST, "bind(" + path_ + ")", name_);
      return env.Undefined();
    }
    int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int pr = probe >= 0 ? ::connect(probe, reinterpret_cast<struct sockaddr*>(&sa), sizeof sa) : -1;
    bool live = probe >= 0 && (pr == 0 || errno == EAGAIN);  // EAGAIN: somebody listens, its backlog is full
    if (probe >= 0) ::close(probe);
    if (live) {
      ThrowSysError(env, EADDRINUSE, "bind(" + path_ + ")", name_);
      return env.Undefined();
    }
    ::unlink(path_.c_str());
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ThrowSysError(env, errno, "socket(AF_UNIX)", name_);
    return env.Undefined();
  }
  mode_t old = ::umask(0077);
  int r = ::bind(fd, reinterpret_cast<struct sockaddr*>(&sa), sizeof sa);
  int e = errno;
  ::umask(old);
  if (r < 0 || ::listen(fd, 4) < 0) {
    if (r == 0) e = errno;
    ::close(fd);
    ThrowSysError(env, e, "bind/listen(" + path_ + ")", name_);
    return env.Undefined();
  }
  struct stat bound;
  if (::lstat(path_.c_str(), &bound) == 0) {
    boundIno_ = bound.st_ino;
    boundDev_ = bound.st_dev;
  }
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  listenFd_ = fd;
  listenPoll_ = new uv_poll_t;
  uv_poll_init(loop, listenPoll_, fd);
  listenPoll_->data = this;
  uv_poll_start(listenPoll_, UV_READABLE, OnListenPoll);
  return env.Undefined();
}

void VhostUserPort::OnListenPoll(uv_poll_t* h, int status, int) {
  VhostUserPort* self = static_cast<VhostUserPort*>(h->data);
  if (self == nullptr || self->closed_ || status < 0) return;
  for (int i = 0; i < 4; i++) {
    int fd = ::accept4(self->listenFd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    if (self->connFd_ >= 0) {
      // one frontend at a time
      self->rejected_++;
      ::close(fd);
      continue;
    }
    Napi::HandleScope scope(Napi::Env(self->env_));
    self->Adopt(fd);
  }
}

void VhostUserPort::Adopt(int fd) {
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env_, &loop);
  connFd_ = fd;
  connPoll_ = new uv_poll_t;
  if (uv_poll_init(loop, connPoll_, fd) < 0) {
    delete connPoll_;
    connPoll_ = nullptr;
    CloseFd(&connFd_);
    return;
  }
  connPoll_->data = this;
  uv_poll_start(connPoll_, UV_READABLE, OnConnPoll);
  broken_ = false;
  brokenReason_.clear();
  have_ = 0;
  owner_ = false;
  features_ = 0;
  featuresSet_ = false;
  protocolFeatures_ = 0;
  guestHdrLen_ = 10;
  connects_++;
  Emit("connected", path_, false);
}

void VhostUserPort::Fail(const char* fmt, ...) {
  std::lock_guard<std::mutex> g(failLock_);
  if (broken_) return;
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  brokenReason_ = std::string("protocol error: ") + buf;
  protocolErrors_++;
  broken_ = true;
}

void VhostUserPort::Disconnect(const std::string& reason) {
  if (connFd_ < 0) return;
  {
    RingsGuard g(*link_);
    ResetRings();
    UnmapRegions();
    broken_ = false;
  }
  ClearFds();
  FreePoll(&connPoll_);
  CloseFd(&connFd_);
  have_ = 0;
  owner_ = false;
  lastError_ = reason;
  UpdateLink();
  Emit("disconnected", reason, false);
}

void VhostUserPort::Emit(const char* type, const std::string& detail, bool up) {
  if (closed_ || onState_.IsEmpty()) return;
  Napi::Env env(env_);
  Napi::HandleScope scope(env);
  inCallback_++;
  Ref();
  napi_value argv[3] = {Napi::String::New(env, type), Napi::String::New(env, detail), Napi::Boolean::New(env, up)};
  onState_.MakeCallback(Value(), 3, argv, *asyncCtx_);
  HandlePendingException(env);
  inCallback_--;
  DropCallbacksIfClosed();
  Unref();
}

bool VhostUserPort::LinkUp() const {
  return connFd_ >= 0 && memSet_ && vq_[0].started && vq_[0].enabled && vq_[1].started && vq_[1].enabled;
}

void VhostUserPort::UpdateLink() {
  bool up = LinkUp();
  if (up == linkUp_) return;
  linkUp_ = up;
  Emit("link", up ? "up" : "down", up);
}

void VhostUserPort::OnConnPoll(uv_poll_t* h, int status, int) {
  VhostUserPort* self = static_cast<VhostUserPort*>(h->data);
  if (self == nullptr || self->closed_) return;
  Napi::HandleScope scope(Napi::Env(self->env_));
  if (status < 0) {
    self->Disconnect("socket error");
    return;
  }
  {
    // every message may change the memory table or a ring: no peer is inside a batch meanwhile
    RingsGuard g(*self->link_);
    self->ReadMessages();
  }
  if (self->broken_) {
    std::string r = self->brokenReason_;
    self->Disconnect(r);
  } else {
    self->UpdateLink();
  }
}

void VhostUserPort::ClearFds() {
  for (int fd : fds_) ::close(fd);
  fds_.clear();
}

int VhostUserPort::TakeFd() {
  if (fds_.empty()) return -1;
  int fd = fds_.front();
  fds_.erase(fds_.begin());
  return fd;
}

void VhostUserPort::ReadMessages() {
  for (int n = 0; n < kMessagesPerWakeup && connFd_ >= 0 && !broken_; n++) {
    size_t want = kHdrSize;
    if (have_ >= kHdrSize) {
      uint32_t size;
      std::memcpy(&size, msg_ + 8, 4);
      if (size > kMaxPayload) {
        Fail("message payload of %u bytes (at most %zu)", size, kMaxPayload);
        return;
      }
      want = kHdrSize + size;
    }
    if (have_ < want) {
      struct iovec iov = {msg_ + have_, want - have_};
      alignas(struct cmsghdr) uint8_t cbuf[CMSG_SPACE(sizeof(int) * kMaxFds)];
      struct msghdr mh;
      std::memset(&mh, 0, sizeof mh);
      mh.msg_iov = &iov;
      mh.msg_iovlen = 1;
      mh.msg_control = cbuf;
      mh.msg_controllen = sizeof cbuf;
      ssize_t r = ::recvmsg(connFd_, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
      if (r < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        Fail("recvmsg: %s", strerror(errno));
        return;
      }
      for (struct cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < nfd; i++) {
          int fd;
          std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
          fds_.push_back(fd);
        }
      }
      if (mh.msg_flags & MSG_CTRUNC) Fail("more than %zu fds in one message", kMaxFds);
      if (fds_.size() > kMaxFds) Fail("more than %zu fds in one message", kMaxFds);
      if (r == 0) {
        broken_ = true;
        brokenReason_ = "frontend closed the connection";
        return;
      }
      have_ += static_cast<size_t>(r);
      if (broken_) return;
      if (have_ < want) continue;  // the header, or part of the payload: read on
      if (want == kHdrSize) {
        uint32_t size;
        std::memcpy(&size, msg_ + 8, 4);
        if (size > kMaxPayload) {
          Fail("message payload of %u bytes (at most %zu)", size, kMaxPayload);
          return;
        }
        if (size > 0) continue;
      }
    }
    HandleMessage();
    have_ = 0;
    ClearFds();  // fds a message did not use
  }
}

bool VhostUserPort::Reply(uint32_t request, const void* payload, uint32_t size) {
  uint8_t buf[kHdrSize + 64];
  if (size > 64) return false;
  uint32_t flags = kFlagVersion | kFlagReply;
  std::memcpy(buf, &request, 4);
  std::memcpy(buf + 4, &flags, 4);
  std::memcpy(buf + 8, &size, 4);
  std::memcpy(buf + kHdrSize, payload, size);
  size_t n = kHdrSize + size;
  // a reply is small; the socket buffer holds it unless the frontend stopped reading for good
  ssize_t r;
  do {
    r = ::send(connFd_, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (r < 0 && errno == EINTR);
  if (r != static_cast<ssize_t>(n)) {
    Fail("cannot send the reply to request %u", request);
    return false;
  }
  return true;
}

// The current message's payload size (the header's size field).
uint32_t VhostUserPort::MessageSize() const {
  uint32_t size;
  std::memcpy(&size, msg_ + 8, 4);
  return size;
}

// A message that needs SET_OWNER first and a payload of at least minSize bytes; false (Fail called) otherwise.
bool VhostUserPort::MessageOk(const char* what, uint32_t minSize) {
  if (!owner_) {
    Fail("%s before SET_OWNER", what);
    return false;
  }
  const uint32_t size = MessageSize();
  if (size < minSize) {
    Fail("%s with a payload of %u bytes (needs %u)", what, size, minSize);
    return false;
  }
  return true;
}

// A queue message (SET_VRING_*, GET_VRING_BASE): MessageOk, and the queue index, from the first u32 of the payload
// (vring state and address) or from the low byte of its u64 (fileIndex: kick, call, err), is 0 or 1.
bool VhostUserPort::VringMessage(const char* what, uint32_t minSize, bool fileIndex, uint32_t* idx) {
  if (!MessageOk(what, minSize)) return false;
  const uint8_t* p = msg_ + kHdrSize;
  if (fileIndex) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    *idx = static_cast<uint32_t>(v & kVringIdxMask);
  } else {
    std::memcpy(idx, p, 4);
  }
  if (*idx >= 2) {
    Fail("%s for queue %u (this port has queues 0 and 1)", what, *idx);
    return false;
  }
  return true;
}

// SET_FEATURES / SET_PROTOCOL_FEATURES: a u64 with only offered bits; false (Fail called) otherwise.
bool VhostUserPort::OfferedBits(const char* what, uint64_t offered, uint64_t* out) {
  const uint32_t size = MessageSize();
  if (size < 8) {
    Fail("%s with a payload of %u bytes (needs 8)", what, size);
    return false;
  }
  std::memcpy(out, msg_ + kHdrSize, 8);
  if (*out & ~offered) {
    Fail("%s 0x%llx has bits that were not offered (0x%llx)", what, static_cast<unsigned long long>(*out),
         static_cast<unsigned long long>(*out & ~offered));
    return false;
  }
  return true;
}

void VhostUserPort::HandleMessage() {
  uint32_t req, flags, size;
  std::memcpy(&req, msg_, 4);
  std::memcpy(&flags, msg_ + 4, 4);
  std::memcpy(&size, msg_ + 8, 4);
  const uint8_t* p = msg_ + kHdrSize;
  if ((flags & 0x3) != kFlagVersion) {
    Fail("message version %u (expected 1)", flags & 0x3);
    return;
  }
  bool replied = false;
  switch (req) {
    case kGetFeatures:
      replied = ReplyU64(req, kOfferedFeatures);
      break;
    case kSetFeatures: {
      uint64_t f;
      if (!OfferedBits("SET_FEATURES", kOfferedFeatures, &f)) return;
      features_ = f;
      featuresSet_ = true;
      guestHdrLen_ = (f & (F_VERSION_1 | F_MRG_RXBUF)) ? 12 : 10;
      if (!(f & F_PROTOCOL_FEATURES)) {
        for (auto& vq : vq_) vq.enabled = true;
      }
      break;
    }
    case kGetProtocolFeatures:
      replied = ReplyU64(req, kOfferedProtocolFeatures);
      break;
    case kSetProtocolFeatures: {
      uint64_t f;
      if (!OfferedBits("SET_PROTOCOL_FEATURES", kOfferedProtocolFeatures, &f)) return;
      protocolFeatures_ = f;
      break;
    }
    case kGetQueueNum:
      replied = ReplyU64(req, 1);
      break;
    case kSetOwner:
      owner_ = true;
      break;
    case kResetOwner:
      ResetRings();
      owner_ = false;
      break;
    case kSetMemTable: {
      if (!MessageOk("SET_MEM_TABLE", 8)) return;
      uint32_t n;
      std::memcpy(&n, p, 4);
      if (n == 0 || n > kMaxRegions) {
        Fail("SET_MEM_TABLE with %u regions (1..%zu)", n, kMaxRegions);
        return;
      }
      if (size < 8 + 32 * n) {
        Fail("SET_MEM_TABLE of %u regions in %u bytes", n, size);
        return;
      }
      if (fds_.size() != n) {
        Fail("SET_MEM_TABLE of %u regions with %zu fds", n, fds_.size());
        return;
      }
      Region fresh[kMaxRegions];
      for (uint32_t i = 0; i < n; i++) {
        Region& r = fresh[i];
        std::memcpy(&r.gpa, p + 8 + 32 * i, 8);
        std::memcpy(&r.size, p + 16 + 32 * i, 8);
        std::memcpy(&r.uva, p + 24 + 32 * i, 8);
        std::memcpy(&r.mmapOffset, p + 32 + 32 * i, 8);
        r.fd = fds_[i];
      }
      bool ok = true;
      for (uint32_t i = 0; i < n && ok; i++) {
        Region& r = fresh[i];
        if (r.size == 0 || r.size > (1ull << 46) || r.mmapOffset > (1ull << 46) || r.gpa + r.size < r.gpa ||
            r.uva + r.size < r.uva) {
          Fail("SET_MEM_TABLE region %u: size 0x%llx offset 0x%llx out of range", i, static_cast<unsigned long long>(r.size),
               static_cast<unsigned long long>(r.mmapOffset));
          ok = false;
          break;
        }
        struct stat st;
        if (::fstat(r.fd, &st) < 0 || static_cast<uint64_t>(st.st_size) < r.mmapOffset + r.size) {
          Fail("SET_MEM_TABLE region %u: the fd holds %lld bytes, the region needs %llu", i,
               static_cast<long long>(st.st_size), static_cast<unsigned long long>(r.mmapOffset + r.size));
          ok = false;
          break;
        }
        // a memfd that could still shrink would fault our accesses (SIGBUS): seal it against shrinking where the
        // memfd allows sealing (QEMU's memory-backend-memfd has sealed it already; hugetlbfs files cannot be sealed)
        ::fcntl(r.fd, F_ADD_SEALS, F_SEAL_SHRINK);
        void* m = ::mmap(nullptr, r.mmapOffset + r.size, PROT_READ | PROT_WRITE, MAP_SHARED, r.fd, 0);
        if (m == MAP_FAILED) {
          Fail("SET_MEM_TABLE region %u: mmap: %s", i, strerror(errno));
          ok = false;
          break;
        }
        r.map = static_cast<uint8_t*>(m);
        r.mapLen = r.mmapOffset + r.size;
      }
      if (!ok) {
        for (uint32_t i = 0; i < n; i++) {
          if (fresh[i].map != nullptr) ::munmap(fresh[i].map, fresh[i].mapLen);
        }
        return;  // the fds are closed with the message
      }
      // a new table replaces the old one: rings are translated again
      bool wasStarted[2] = {vq_[0].started, vq_[1].started};
      for (auto& vq : vq_) {
        vq.started = false;
        vq.desc = nullptr;
        vq.avail = nullptr;
        vq.used = nullptr;
      }
      UnmapRegions();
      for (uint32_t i = 0; i < n; i++) regions_[i] = fresh[i];
      nregions_ = n;
      fds_.clear();  // owned by regions_ now
      memSet_ = true;
      for (uint32_t i = 0; i < 2; i++) {
        if (wasStarted[i] && !StartRing(i)) return;
      }
      break;
    }
    case kSetLogBase:
    case kSetLogFd:
      Fail("request %u (dirty logging) was not offered", req);
      return;
    case kSetVringNum:
    case kSetVringBase: {
      // the state of a stopped queue: its size, or the index its avail ring continues from
      const char* what = req == kSetVringNum ? "SET_VRING_NUM" : "SET_VRING_BASE";
      uint32_t idx, v;
      if (!VringMessage(what, 8, false, &idx)) return;
      std::memcpy(&v, p + 4, 4);
      if (vq_[idx].started) {
        Fail("%s for running queue %u", what, idx);
        return;
      }
      if (req == kSetVringBase) {
        vq_[idx].lastAvail = static_cast<uint16_t>(v);
      } else if (v == 0 || v > kMaxQueueSize || (v & (v - 1)) != 0) {
        Fail("SET_VRING_NUM %u for queue %u: not a power of two in 1..%u", v, idx, kMaxQueueSize);
        return;
      } else {
        vq_[idx].num = v;
      }
      break;
    }
    case kSetVringAddr: {
      uint32_t idx;
      if (!VringMessage("SET_VRING_ADDR", 40, false, &idx)) return;
      Vring& vq = vq_[idx];
      std::memcpy(&vq.descUva, p + 8, 8);
      std::memcpy(&vq.usedUva, p + 16, 8);
      std::memcpy(&vq.availUva, p + 24, 8);
      vq.addrSet = true;
      if (vq.started) {
        vq.started = false;
        if (!StartRing(idx)) return;
      }
      break;
    }
    case kGetVringBase: {
      uint32_t idx;
      if (!VringMessage("GET_VRING_BASE", 8, false, &idx)) return;
      Vring& vq = vq_[idx];
      uint32_t st[2] = {idx, vq.lastAvail};
      StopRing(vq);
      replied = Reply(req, st, 8);
      break;
    }
    case kSetVringKick:
    case kSetVringCall:
    case kSetVringErr: {
      const char* what = req == kSetVringKick ? "SET_VRING_KICK" : req == kSetVringCall ? "SET_VRING_CALL" : "SET_VRING_ERR";
      uint32_t idx;
      if (!VringMessage(what, 8, true, &idx)) return;
      uint64_t v;
      std::memcpy(&v, p, 8);
      bool nofd = (v & kVringNoFd) != 0;
      int fd = nofd ? -1 : TakeFd();
      if (!nofd && fd < 0) {
        Fail("%s for queue %u without an fd", what, idx);
        return;
      }
      Vring& vq = vq_[idx];
      if (fd >= 0) SetNonBlocking(fd);
      if (req == kSetVringCall) {
        CloseFd(&vq.call);
        vq.call = fd;
      } else if (req == kSetVringErr) {
        CloseFd(&vq.err);
        vq.err = fd;
      } else {
        if (nofd) {
          Fail("SET_VRING_KICK without an fd (polling mode) for queue %u is not supported", idx);
          return;
        }
        StopRing(vq);
        vq.kick = fd;
        if (!StartRing(idx)) return;
      }
      break;
    }
    case kSetVringEnable: {
      uint32_t idx, on;
      if (!VringMessage("SET_VRING_ENABLE", 8, false, &idx)) return;
      std::memcpy(&on, p + 4, 4);
      vq_[idx].enabled = on != 0;
      if (idx == 1 && on != 0 && vq_[1].kick >= 0) eventfd_write(vq_[1].kick, 1);
      break;
    }
    default:
      Fail("unknown or unsupported request %u", req);
      return;
  }
  if (!broken_ && !replied && (flags & kFlagNeedReply) && (protocolFeatures_ & PF_REPLY_ACK)) ReplyU64(req, 0);
}

void VhostUserPort::StopRing(Vring& vq) {
  // out of the kick epoll before the close: the frontend holds the eventfd open, so the close alone would not remove it
  if (&vq == &vq_[1] && vq.kick >= 0 && kickEpoll_ >= 0) ::epoll_ctl(kickEpoll_, EPOLL_CTL_DEL, vq.kick, nullptr);
  FreePoll(&vq.kickPoll);
  CloseFd(&vq.kick);
  vq.started = false;
  vq.signalledValid = false;
}

void VhostUserPort::ResetRings() {
  for (auto& vq : vq_) {
    StopRing(vq);
    CloseFd(&vq.call);
    CloseFd(&vq.err);
    vq = Vring();
  }
}

void VhostUserPort::UnmapRegions() {
  for (size_t i = 0; i < nregions_; i++) {
    if (regions_[i].map != nullptr) ::munmap(regions_[i].map, regions_[i].mapLen);
    CloseFd(&regions_[i].fd);
    regions_[i] = Region();
  }
  nregions_ = 0;
  memSet_ = false;
}

// The region holding address a (a guest physical address, or with uva the frontend's own address), or nullptr.
const Region* VhostUserPort::RegionOf(uint64_t a, bool uva) const {
  for (size_t i = 0; i < nregions_; i++) {
    const Region& r = regions_[i];
    const uint64_t base = uva ? r.uva : r.gpa;
    if (a >= base && a - base < r.size) return &r;
  }
  return nullptr;
}

uint8_t* VhostUserPort::UvaToHost(uint64_t uva, uint64_t len) const {
  const Region* r = RegionOf(uva, true);
  return r != nullptr && len <= r->size - (uva - r->uva) ? r->host() + (uva - r->uva) : nullptr;
}

uint8_t* VhostUserPort::GpaToHost(uint64_t gpa, uint64_t len) const {
  const Region* r = RegionOf(gpa, false);
  return r != nullptr && len <= r->size - (gpa - r->gpa) ? r->host() + (gpa - r->gpa) : nullptr;
}

template <typename Piece>
bool VhostUserPort::GuestSpan(uint64_t gpa, uint64_t len, Piece piece) const {
  while (len > 0) {
    const Region* hit = RegionOf(gpa, false);
    if (hit == nullptr) return false;
    const uint64_t n = std::min<uint64_t>(hit->size - (gpa - hit->gpa), len);
    piece(hit->host() + (gpa - hit->gpa), static_cast<size_t>(n));
    gpa += n;
    len -= n;
  }
  return true;
}

bool VhostUserPort::GuestRead(uint8_t* dst, uint64_t gpa, uint32_t len) {
  return GuestSpan(gpa, len, [&dst](uint8_t* host, size_t n) {
    std::memcpy(dst, host, n);
    dst += n;
  });
}

bool VhostUserPort::GuestWrite(uint64_t gpa, const uint8_t* src, uint32_t len) {
  return GuestSpan(gpa, len, [&src](uint8_t* host, size_t n) {
    std::memcpy(host, src, n);
    src += n;
  });
}

bool VhostUserPort::GuestRangeOk(uint64_t gpa, uint64_t len) const {
  return GuestSpan(gpa, len, [](uint8_t*, size_t) {});
}

void VhostUserPort::DisconnectLater() {
  if (closed_) return;
  if (deferTimer_ == nullptr) {
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env_, &loop);
    deferTimer_ = new uv_timer_t;
    uv_timer_init(loop, deferTimer_);
    deferTimer_->data = this;
  }
  uv_timer_start(deferTimer_, OnDeferTimer, 0, 0);
}

void VhostUserPort::OnDeferTimer(uv_timer_t* t) {
  VhostUserPort* self = static_cast<VhostUserPort*>(t->data);
  if (self == nullptr || self->closed_ || !self->broken_) return;
  Napi::HandleScope scope(Napi::Env(self->env_));
  std::string r = self->brokenReason_;
  self->Disconnect(r);
}

bool VhostUserPort::StartRing(uint32_t index) {
  Vring& vq = vq_[index];
  if (vq.kick < 0) return true;  // starts when its kick arrives
  if (!memSet_) {
    Fail("queue %u started before SET_MEM_TABLE", index);
    return false;
  }
  if (vq.num == 0 || !vq.addrSet) {
    Fail("queue %u started before SET_VRING_NUM / SET_VRING_ADDR", index);
    return false;
  }
  const uint64_t num = vq.num;
  uint8_t* desc = UvaToHost(vq.descUva, 16 * num);
  uint8_t* avail = UvaToHost(vq.availUva, 6 + 2 * num);
  uint8_t* used = UvaToHost(vq.usedUva, 6 + 8 * num);
  if (desc == nullptr || avail == nullptr || used == nullptr) {
    Fail("queue %u: ring address outside the memory table (desc 0x%llx avail 0x%llx used 0x%llx)", index,
         static_cast<unsigned long long>(vq.descUva), static_cast<unsigned long long>(vq.availUva),
         static_cast<unsigned long long>(vq.usedUva));
    return false;
  }
  if ((vq.descUva & 15) != 0 || (vq.availUva & 1) != 0 || (vq.usedUva & 3) != 0) {
    Fail("queue %u: misaligned ring address", index);
    return false;
  }
  vq.desc = reinterpret_cast<const VringDesc*>(desc);
  vq.avail = reinterpret_cast<volatile uint16_t*>(avail);
  vq.used = used;
  // the used index continues from where the frontend's ring is (after a reconnect the rings are the guest's)
  vq.lastUsed = LoadAcquire16(vq.usedIdx());
  vq.signalledValid = false;
  vq.started = true;
  if (index == 1 && kickEpoll_ >= 0) {
    struct epoll_event ev;
    std::memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    // EEXIST: the ring is translated again with the same kick (a new memory table, new addresses)
    if (::epoll_ctl(kickEpoll_, EPOLL_CTL_ADD, vq.kick, &ev) < 0 && errno != EEXIST) {
      Fail("queue 1: epoll_ctl on the kick fd: %s", strerror(errno));
      return false;
    }
  }
  if (index == 0) {
    // queue 0's kick is never polled (send() looks at the avail ring itself): ask the guest not to kick it after
    // posting receive buffers, which saves it a syscall (a VM exit in QEMU) per refill. With EVENT_IDX: an
    // avail_event half the index space away (a kick once per 32768 buffers at most).
    if (features_ & F_EVENT_IDX) {
      StoreRelease16(vq.availEvent(), static_cast<uint16_t>(vq.lastAvail + 0x8000));
    } else {
      StoreRelease16(vq.usedFlags(), VRING_USED_F_NO_NOTIFY);
    }
  }
  if (index == 1 && vq.kickPoll == nullptr) {
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env_, &loop);
    vq.kickPoll = new uv_poll_t;
    if (uv_poll_init(loop, vq.kickPoll, vq.kick) < 0) {
      delete vq.kickPoll;
      vq.kickPoll = nullptr;
      Fail("queue 1: uv_poll_init on the kick fd failed");
      return false;
    }
    vq.kickPoll->data = this;
    if (MainReads()) uv_poll_start(vq.kickPoll, UV_READABLE, OnKickPoll);
    eventfd_write(vq.kick, 1);  // buffers posted before the kick fd arrived
  }
  return true;
}

// ---- descriptor chains ----

bool VhostUserPort::ChainBegin(Vring& vq, uint16_t head, Chain* c) {
  if (head >= vq.num) {
    Fail("head index %u >= queue size %u", head, vq.num);
    return false;
  }
  c->table = vq.desc;
  c->size = vq.num;
  c->idx = head;
  c->steps = 0;
  c->walked = 0;
  c->indirect = false;
  c->more = true;
  c->tooLong = false;
  return true;
}

bool VhostUserPort::ChainNext(Vring& vq, Chain* c, VringDesc* out, bool writable) {
  if (!c->more) return false;
  if (c->walked >= kMaxChainDescs) {
    c->tooLong = true;
    c->more = false;
    return false;
  }
  c->walked++;
  vq.descWalked++;  // the caller started this chain with vq.DescBudgetLeft()
  VringDesc d;
  std::memcpy(&d, const_cast<const VringDesc*>(c->table + c->idx), sizeof d);  // read once
  if (++c->steps > c->size) {
    Fail("descriptor chain longer than its table (%u): a loop", c->size);
    return false;
  }
  if (d.flags & VRING_DESC_F_INDIRECT) {
    if (c->indirect) {
      Fail("nested indirect descriptor");
      return false;
    }
    if (!(features_ & F_INDIRECT_DESC)) {
      Fail("indirect descriptor without INDIRECT_DESC");
      return false;
    }
    if (d.flags & VRING_DESC_F_NEXT) {
      Fail("indirect descriptor with NEXT set");
      return false;
    }
    if (d.len == 0 || (d.len & 15) != 0 || d.len / 16 > kMaxQueueSize || (d.addr & 15) != 0) {
      Fail("indirect table of %u bytes at 0x%llx", d.len, static_cast<unsigned long long>(d.addr));
      return false;
    }
    const uint8_t* t = GpaToHost(d.addr, d.len);
    if (t == nullptr) {
      Fail("indirect table at 0x%llx+%u outside the memory table", static_cast<unsigned long long>(d.addr), d.len);
      return false;
    }
    c->table = reinterpret_cast<const VringDesc*>(t);
    c->size = d.len / 16;
    c->idx = 0;
    c->steps = 1;
    c->indirect = true;
    if (c->walked >= kMaxChainDescs) {
      c->tooLong = true;
      c->more = false;
      return false;
    }
    c->walked++;
    vq.descWalked++;
    std::memcpy(&d, const_cast<const VringDesc*>(c->table), sizeof d);
    if (d.flags & VRING_DESC_F_INDIRECT) {
      Fail("nested indirect descriptor");
      return false;
    }
  }
  if (((d.flags & VRING_DESC_F_WRITE) != 0) != writable) {
    Fail("%s descriptor on the %s queue", writable ? "device-readable" : "device-writable", writable ? "RX" : "TX");
    return false;
  }
  if (d.flags & VRING_DESC_F_NEXT) {
    if (d.next >= c->size) {
      Fail("next index %u >= table size %u", d.next, c->size);
      return false;
    }
    c->idx = d.next;
  } else {
    c->more = false;
  }
  *out = d;
  return true;
}

// ---- guest TX (queue 1) -> slab ----

void VhostUserPort::OnKickPoll(uv_poll_t* h, int status, int) {
  VhostUserPort* self = static_cast<VhostUserPort*>(h->data);
  if (self == nullptr || self->closed_ || status < 0) return;
  self->HandleKick();
}

void VhostUserPort::Notify(Vring& vq) {
  uint16_t oldUsed = vq.signalledUsed;
  uint16_t newUsed = vq.lastUsed;
  bool notify;
  if (features_ & F_EVENT_IDX) {
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    notify = !vq.signalledValid || NeedEvent(vq.usedEvent(), newUsed, oldUsed);
  } else {
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    notify = !(vq.avail[0] & VRING_AVAIL_F_NO_INTERRUPT);
  }
  vq.signalledUsed = newUsed;
  vq.signalledValid = true;
  if (notify && vq.call >= 0) {
    eventfd_write(vq.call, 1);
    notifies_++;
  }
}

uint32_t VhostUserPort::ReadBatch(AddonData* d, double* ctr, ReadStop* stop) {
  Vring& vq = vq_[1];
  *stop = ReadStop::Off;
  if (!vq.started || !vq.enabled || !memSet_ || broken_ || exported_) return 0;
  *stop = ReadStop::Drained;
  uint8_t* const slab = d->slab;
  int32_t* const desc = d->rxDesc;
  const size_t slabLen = d->slabLen;
  const uint32_t maxIter = static_cast<uint32_t>(std::min<size_t>(d->budget, d->rxDescFrames));
  const uint16_t mask = static_cast<uint16_t>(vq.num - 1);
  const size_t hdrLen = guestHdrLen_;
  size_t pos = 0;
  uint32_t count = 0;
  uint32_t consumed = 0;
  // awake: the guest need not kick for chains it posts while this batch runs (cleared before going back to sleep)
  if (!(features_ & F_EVENT_IDX)) StoreRelease16(vq.usedFlags(), VRING_USED_F_NO_NOTIFY);
  for (;;) {
    uint16_t availIdx = LoadAcquire16(&vq.avail[1]);
    uint16_t pending = static_cast<uint16_t>(availIdx - vq.lastAvail);
    if (pending > vq.num) {
      Fail("queue 1: avail idx %u is %u ahead of %u (queue size %u)", availIdx, pending, vq.lastAvail, vq.num);
      break;
    }
    if (pending == 0) break;  // ServeKick looks again after the callback, then asks for kicks (ArmKick)
    if (count >= maxIter || pos + kSlot > slabLen) {
      *stop = ReadStop::Full;
      break;
    }
    if (!vq.DescBudgetLeft()) {
      // the next chain might not fit: it waits for the next wakeup
      descBudgetHits_++;
      *stop = ReadStop::Budget;
      break;
    }
    uint16_t head = vq.avail[2 + (vq.lastAvail & mask)];
    Chain c;
    if (!ChainBegin(vq, head, &c)) break;
    // [vnet hdr 10][frame]: the guest's header (10 or 12 bytes) is copied through hdrBuf
    uint8_t hdrBuf[12];
    size_t got = 0;  // bytes of header + frame seen
    bool oversize = false;  // longer than kMaxFrame
    VringDesc d;
    uint8_t* const frame = slab + pos + kVnetHdrLen;
    while (ChainNext(vq, &c, &d, false)) {
      uint64_t addr = d.addr;
      uint32_t len = d.len;
      if (got < hdrLen) {
        uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(len, hdrLen - got));
        if (!GuestRead(hdrBuf + got, addr, n)) {
          Fail("queue 1: buffer 0x%llx+%u outside the memory table", static_cast<unsigned long long>(addr), len);
          break;
        }
        got += n;
        addr += n;
        len -= n;
      }
      if (len == 0) continue;
      size_t off = got - hdrLen;
      if (oversize || off + len > kMaxFrame) {
        // the rest is only range-checked
        oversize = true;
        if (!GuestRangeOk(addr, len)) {
          Fail("queue 1: buffer 0x%llx+%u outside the memory table", static_cast<unsigned long long>(addr), len);
          break;
        }
        got += len;
        continue;
      }
      if (!GuestRead(frame + off, addr, len)) {
        Fail("queue 1: buffer 0x%llx+%u outside the memory table", static_cast<unsigned long long>(addr), len);
        break;
      }
      got += len;
    }
    if (broken_) break;
    vq.lastAvail++;
    volatile uint32_t* ue = vq.usedElem(vq.lastUsed);
    ue[0] = head;
    ue[1] = 0;
    vq.lastUsed++;
    consumed++;
    if (c.tooLong) {
      longChains_++;
      ctr[RxErrors] += 1;
      continue;
    }
    if (oversize) {
      ctr[RxTruncated] += 1;
      continue;
    }
    if (got < hdrLen + kMinFrame) {
      ctr[RxRunt] += 1;
      continue;
    }
    std::memcpy(slab + pos, hdrBuf, kVnetHdrLen);
    if (hdrBuf[1] != 0) ctr[RxGsoPackets] += 1;
    int32_t* dd = desc + 3 * count;
    dd[0] = static_cast<int32_t>(pos + kVnetHdrLen);
    dd[1] = static_cast<int32_t>(got - hdrLen);
    dd[2] = 0;
    count++;
    pos = Align16(pos + kVnetHdrLen + (got - hdrLen));
  }
  if (consumed > 0 && !broken_) {
    StoreRelease16(vq.usedIdx(), vq.lastUsed);
    Notify(vq);
  }
  return broken_ ? 0 : count;
}

// Going back to sleep: ask the guest for kicks again (avail_event with EVENT_IDX, else clear NO_NOTIFY), then look
// once more after a full barrier (virtio 2.7.10, Linux's vhost_enable_notify): the guest that posted a chain in
// between read the old flag or avail_event and did not kick, so kick ourselves and the chain is read on the reader's
// next loop iteration (the eventfd is queue 1's kick, in whichever loop polls it). The caller holds link_->q[1].
void VhostUserPort::ArmKick() {
  Vring& vq = vq_[1];
  if (!vq.started || broken_ || exported_ || vq.used == nullptr) return;
  if (features_ & F_EVENT_IDX) {
    StoreRelease16(vq.availEvent(), vq.lastAvail);
  } else {
    StoreRelease16(vq.usedFlags(), 0);
  }
  // the store above before the load below (a store followed by a load of another word is reordered otherwise)
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  if (LoadAcquire16(&vq.avail[1]) != vq.lastAvail && vq.kick >= 0) eventfd_write(vq.kick, 1);
}

// One wakeup of queue 1's reader (the main thread's HandleKick or a worker's VhostUserPeer::HandleKick): consumes
// the kick, then up to kBatchesPerWakeup batches within kDescBudgetPerWakeup descriptors. Each batch is read under
// link->q[1] and handed to deliver(count) with no lock held; deliver returns false when the reader stopped (then no
// further batch). While the engine handles a batch the guest's kicks stay off (NO_NOTIFY, or an avail_event it has
// passed) and what it posts meanwhile is read by the next batch without a wakeup. At the end, under the lock: queue 1
// found empty asks for kicks again (ArmKick); a full last batch or the budget kicks ourselves, so the rest is read on
// the next loop iteration, after the other ports; a ring that is off (not started or enabled, no memory) is left
// alone: what turns it on kicks. A port found broken: Broken (with !onMain the main thread is woken through
// failAsync_); a closed port: Gone.
template <typename Deliver>
KickEnd VhostUserPort::ServeKick(std::shared_ptr<VhostLink> link, AddonData* d, double* const& ctr, bool onMain,
                                 Deliver deliver) {
  ReadStop stop = ReadStop::Off;
  for (int round = 0; round < kBatchesPerWakeup; round++) {
    uint32_t count;
    {
      std::lock_guard<std::mutex> g(link->q[1]);
      VhostUserPort* port = link->port;
      if (port == nullptr) return KickEnd::Gone;
      Vring& vq = port->vq_[1];
      if (round == 0) {
        // no kick fd (the ring stopped): nothing to read until the next one is polled
        eventfd_t v;
        if (vq.kick < 0 || (eventfd_read(vq.kick, &v) < 0 && errno != EAGAIN)) return KickEnd::Done;
        port->kicks_++;
        vq.descWalked = 0;
        vq.descBudget = kDescBudgetPerWakeup;
      }
      count = port->ReadBatch(d, ctr, &stop);
      if (port->broken_) {
        if (!onMain) uv_async_send(port->failAsync_);
        return KickEnd::Broken;
      }
      port->maxDescPerWakeup_ = std::max(port->maxDescPerWakeup_, vq.descWalked);
      if (count > 0) port->rxBatches_++;
    }
    if (count == 0 || !deliver(count) || stop == ReadStop::Budget) break;
  }
  std::lock_guard<std::mutex> g(link->q[1]);
  VhostUserPort* port = link->port;
  if (port == nullptr) return KickEnd::Gone;
  if (port->broken_) {
    if (!onMain) uv_async_send(port->failAsync_);
    return KickEnd::Broken;
  }
  Vring& vq = port->vq_[1];
  if (stop == ReadStop::Drained) {
    port->ArmKick();
  } else if ((stop == ReadStop::Full || stop == ReadStop::Budget) && vq.kick >= 0) {
    eventfd_write(vq.kick, 1);
  }
  return KickEnd::Done;
}

void VhostUserPort::HandleKick() {
  if (vq_[1].kick < 0 || link_ == nullptr) return;
  Napi::Env env(env_);
  Napi::HandleScope scope(env);
  Ref();
  inCallback_++;
  bool delivered = false;
  KickEnd end = ServeKick(link_, data_, counters_, true, [&](uint32_t count) {
    if (onRx_.IsEmpty() || closed_) return false;
    delivered = true;
    napi_value argv[1] = {Napi::Number::New(env, count)};
    onRx_.MakeCallback(Value(), 1, argv, *asyncCtx_);
    HandlePendingException(env);
    // the callback may have stopped, held, given away, handed over or closed the port: then no further batch
    return !closed_ && MainReads();
  });
  if (end == KickEnd::Broken && !closed_) {
    std::string r = brokenReason_;
    Disconnect(r);
  }
  if (delivered) BusyPollKick();  // busy_poll_us applies to vhost-user ports as to TAPs
  inCallback_--;
  DropCallbacksIfClosed();
  Unref();
}

// ---- slab -> guest RX (queue 0) ----

int VhostUserPort::SendOne(const uint8_t* hdrIn, const struct iovec* pieces, int npieces, size_t frameLen) {
  Vring& vq = vq_[0];
  uint8_t hdr[12];
  std::memcpy(hdr, hdrIn, kVnetHdrLen);
  St16(hdr + 10, 1);
  const uint8_t gso = hdr[1] & static_cast<uint8_t>(~VNET_GSO_ECN);
  if (gso != 0) {
    bool ok = (gso == VNET_GSO_TCPV4 && (features_ & F_GUEST_TSO4)) || (gso == VNET_GSO_TCPV6 && (features_ & F_GUEST_TSO6));
    if (!ok || ((hdr[1] & VNET_GSO_ECN) && !(features_ & F_GUEST_ECN))) return TxOversize;
  }
  if (!(features_ & F_GUEST_CSUM)) hdr[0] &= static_cast<uint8_t>(~VNET_F_DATA_VALID);
  const size_t hdrLen = guestHdrLen_;
  const bool mrg = (features_ & F_MRG_RXBUF) != 0;
  const uint16_t mask = static_cast<uint16_t>(vq.num - 1);
  const uint16_t availIdx = LoadAcquire16(&vq.avail[1]);
  const uint16_t savedAvail = vq.lastAvail;
  const size_t total = hdrLen + frameLen;
  size_t done = 0;  // bytes of [hdr][frame] written
  int piece = -1;   // -1: the header
  size_t pieceOff = 0;
  uint16_t nbufs = 0;
  uint8_t* numBuffersAt[2] = {nullptr, nullptr};
  while (done < total) {
    uint16_t pending = static_cast<uint16_t>(availIdx - vq.lastAvail);
    if (pending > vq.num) {
      Fail("queue 0: avail idx %u is %u ahead of %u (queue size %u)", availIdx, pending, vq.lastAvail, vq.num);
      return TxOther;
    }
    if (pending == 0 || (!mrg && nbufs == 1)) {
      vq.lastAvail = savedAvail;
      return pending == 0 ? TxFull : TxOversize;
    }
    if (!vq.DescBudgetLeft()) {
      // this send() walked its budget: the rest of the batch is not offered to the guest
      descBudgetHits_++;
      vq.lastAvail = savedAvail;
      return TxFull;
    }
    uint16_t head = vq.avail[2 + (vq.lastAvail & mask)];
    Chain c;
    if (!ChainBegin(vq, head, &c)) return TxOther;
    vq.lastAvail++;
    uint32_t chainBytes = 0;
    VringDesc d;
    while (done < total && ChainNext(vq, &c, &d, true)) {
      uint64_t addr = d.addr;
      uint32_t room = d.len;
      while (room > 0 && done < total) {
        const uint8_t* src;
        size_t n;
        if (piece < 0) {
          src = hdr + done;
          n = hdrLen - done;
        } else {
          src = static_cast<const uint8_t*>(pieces[piece].iov_base) + pieceOff;
          n = pieces[piece].iov_len - pieceOff;
        }
        n = std::min<size_t>(n, room);
        uint8_t* dst = GpaToHost(addr, n);
        if (dst == nullptr) {
          // spans two regions, or outside: byte by byte through GuestWrite
          if (!GuestWrite(addr, src, static_cast<uint32_t>(n))) {
            Fail("queue 0: buffer 0x%llx+%u outside the memory table", static_cast<unsigned long long>(d.addr), d.len);
            return TxOther;
          }
          if (piece < 0 && done <= 10 && done + n > 10) numBuffersAt[0] = GpaToHost(addr + (10 - done), 1);
          if (piece < 0 && done <= 11 && done + n > 11) numBuffersAt[1] = GpaToHost(addr + (11 - done), 1);
        } else {
          std::memcpy(dst, src, n);
          if (piece < 0 && done <= 10 && done + n > 10) numBuffersAt[0] = dst + (10 - done);
          if (piece < 0 && done <= 11 && done + n > 11) numBuffersAt[1] = dst + (11 - done);
        }
        done += n;
        addr += n;
        room -= static_cast<uint32_t>(n);
        chainBytes += static_cast<uint32_t>(n);
        if (piece < 0) {
          if (done == hdrLen) {
            piece = 0;
            pieceOff = 0;
          }
        } else {
          pieceOff += n;
          while (piece < npieces && pieceOff == pieces[piece].iov_len) {
            piece++;
            pieceOff = 0;
          }
        }
      }
    }
    if (broken_) return TxOther;
    if (c.tooLong && done < total) {
      // a receive chain of more than kMaxChainDescs descriptors is not filled further
      longChains_++;
      vq.lastAvail = savedAvail;
      return TxOversize;
    }
    volatile uint32_t* ue = vq.usedElem(static_cast<uint16_t>(vq.lastUsed + nbufs));
    ue[0] = head;
    ue[1] = chainBytes;
    nbufs++;
  }
  if (hdrLen == 12 && nbufs > 1) {
    if (numBuffersAt[0] != nullptr) *numBuffersAt[0] = static_cast<uint8_t>(nbufs);
    if (numBuffersAt[1] != nullptr) *numBuffersAt[1] = static_cast<uint8_t>(nbufs >> 8);
  }
  vq.lastUsed = static_cast<uint16_t>(vq.lastUsed + nbufs);
  return -1;
}

Napi::Value VhostUserPort::Send(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t count;
  if (!GetSendCount(info, closed_, tx_, txCap_, &count)) return env.Undefined();
  if (count == 0) return Napi::Number::New(env, 0);
  uint32_t accepted;
  {
    std::lock_guard<std::mutex> g(link_->q[0]);
    accepted = SendBatch(data_, tx_, count, counters_);
  }
  if (broken_) DisconnectLater();
  return Napi::Number::New(env, accepted);
}

uint32_t VhostUserPort::SendBatch(AddonData* d, const uint32_t* tx, uint32_t count, double* ctr) {
  Vring& vq = vq_[0];
  if (connFd_ < 0 || broken_ || exported_ || !vq.started || !vq.enabled || !memSet_) {
    ctr[TxLinkDown] += count;
    ctr[TxLastErrno] = ENETDOWN;
    return 0;
  }
  uint8_t* const slab = d->slab;
  const size_t slabLen = d->slabLen;
  uint32_t accepted = 0;
  const uint16_t usedBefore = vq.lastUsed;
  // queue 0's own budget (a send() from inside this port's onRx leaves queue 1's receive budget alone)
  vq.descWalked = 0;
  vq.descBudget = kDescBudgetPerSend;
  for (uint32_t i = 0; i < count && !broken_; i++) {
    const uint32_t* e = tx + 4 * i;
    const size_t off = e[0], len = e[1];
    const uint32_t op = e[2], arg = e[3];
    if (!TxEntryOk(off, len, op, slabLen)) {
      ctr[TxOther] += 1;
      ctr[TxLastErrno] = EINVAL;
      continue;
    }
    const uint8_t* frame = slab + off;
    uint8_t hdr[kVnetHdrLen];
    std::memcpy(hdr, frame - kVnetHdrLen, kVnetHdrLen);
    uint8_t tag[4] = {static_cast<uint8_t>(arg >> 24), static_cast<uint8_t>(arg >> 16), static_cast<uint8_t>(arg >> 8),
                      static_cast<uint8_t>(arg)};
    struct iovec pieces[3];
    int np;
    size_t outLen;
    if (op == TX_OP_NONE) {
      pieces[0] = {const_cast<uint8_t*>(frame), len};
      np = 1;
      outLen = len;
    } else if (op == TX_OP_PUSH_TAG) {
      AdjustVnetHdr(hdr, +static_cast<int>(kTagLen));
      pieces[0] = {const_cast<uint8_t*>(frame), 12};
      pieces[1] = {tag, kTagLen};
      pieces[2] = {const_cast<uint8_t*>(frame + 12), len - 12};
      np = 3;
      outLen = len + kTagLen;
    } else if (op == TX_OP_POP_TAG) {
      AdjustVnetHdr(hdr, -static_cast<int>(kTagLen));
      pieces[0] = {const_cast<uint8_t*>(frame), 12};
      pieces[1] = {const_cast<uint8_t*>(frame + 12 + kTagLen), len - 12 - kTagLen};
      np = 2;
      outLen = len - kTagLen;
    } else {
      pieces[0] = {const_cast<uint8_t*>(frame), 12};
      pieces[1] = {tag, kTagLen};
      pieces[2] = {const_cast<uint8_t*>(frame + 12 + kTagLen), len - 12 - kTagLen};
      np = 3;
      outLen = len;
    }
    if ((hdr[0] & VNET_F_NEEDS_CSUM) && !(features_ & F_GUEST_CSUM)) {
      // the guest cannot finish the checksum: finish it here, in a copy (the slab is shared by a flood)
      if (csumScratch_.size() < kMaxFrame + kTagLen) csumScratch_.resize(kMaxFrame + kTagLen);
      size_t at = 0;
      for (int k = 0; k < np; k++) {
        std::memcpy(csumScratch_.data() + at, pieces[k].iov_base, pieces[k].iov_len);
        at += pieces[k].iov_len;
      }
      if (!CompleteCsum(hdr, csumScratch_.data(), outLen)) {
        ctr[TxOversize] += 1;
        ctr[TxLastErrno] = EINVAL;
        continue;
      }
      pieces[0] = {csumScratch_.data(), outLen};
      np = 1;
    }
    int drop = SendOne(hdr, pieces, np, outLen);
    if (drop >= 0) {
      ctr[drop] += 1;
      ctr[TxLastErrno] = drop == TxFull ? ENOBUFS : drop == TxOversize ? EMSGSIZE : EINVAL;
      continue;
    }
    accepted++;
    ctr[TxBytes] += static_cast<double>(outLen);
    if (hdr[1] != 0) ctr[TxGsoPackets] += 1;
  }
  if (broken_) return accepted;
  if (vq.lastUsed != usedBefore) {
    StoreRelease16(vq.usedIdx(), vq.lastUsed);
    Notify(vq);
  }
  return accepted;
}


// ---- takeover ----
//
// exportHandover(): the connection, region and eventfds with their roles, and everything negotiated, for the new
// daemon; from then on this port touches neither the rings nor the socket (send() counts TxLinkDown) until start().
// Roles: 0 the connection; 1 + i region i; 16 + 4 * q + k queue q's kick (k 0), call (1), err (2).
namespace {
std::string Hex(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "%llx", static_cast<unsigned long long>(v));
  return b;
}
bool ParseHex(const Napi::Value& v, uint64_t* out) {
  if (!v.IsString()) return false;
  std::string t = v.As<Napi::String>().Utf8Value();
  if (t.empty() || t.size() > 16) return false;
  uint64_t r = 0;
  for (char ch : t) {
    int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
    if (d < 0) return false;
    r = (r << 4) | static_cast<uint64_t>(d);
  }
  *out = r;
  return true;
}
}  // namespace

Napi::Value VhostUserPort::ExportHandover(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_ || connFd_ < 0 || broken_) return env.Null();
  Napi::Array fds = Napi::Array::New(env);
  uint32_t n = 0;
  auto add = [&](int role, int fd) {
    if (fd < 0) return;
    Napi::Array pair = Napi::Array::New(env, 2);
    pair.Set(0u, Napi::Number::New(env, role));
    pair.Set(1u, Napi::Number::New(env, fd));
    fds.Set(n++, pair);
  };
  add(0, connFd_);
  for (size_t i = 0; i < nregions_; i++) add(1 + static_cast<int>(i), regions_[i].fd);
  for (int q = 0; q < 2; q++) {
    add(16 + 4 * q, vq_[q].kick);
    add(16 + 4 * q + 1, vq_[q].call);
    add(16 + 4 * q + 2, vq_[q].err);
  }
  Napi::Object st = Napi::Object::New(env);
  st.Set("features", Hex(features_));
  st.Set("protocolFeatures", Hex(protocolFeatures_));
  st.Set("owner", owner_);
  st.Set("featuresSet", featuresSet_);
  Napi::Array regs = Napi::Array::New(env, nregions_);
  for (size_t i = 0; i < nregions_; i++) {
    Napi::Object r = Napi::Object::New(env);
    r.Set("gpa", Hex(regions_[i].gpa));
    r.Set("size", Hex(regions_[i].size));
    r.Set("uva", Hex(regions_[i].uva));
    r.Set("mmapOffset", Hex(regions_[i].mmapOffset));
    regs.Set(static_cast<uint32_t>(i), r);
  }
  st.Set("regions", regs);
  Napi::Array rings = Napi::Array::New(env, 2);
  for (uint32_t q = 0; q < 2; q++) {
    const Vring& vq = vq_[q];
    Napi::Object r = Napi::Object::New(env);
    r.Set("num", vq.num);
    r.Set("desc", Hex(vq.descUva));
    r.Set("avail", Hex(vq.availUva));
    r.Set("used", Hex(vq.usedUva));
    r.Set("addrSet", vq.addrSet);
    r.Set("started", vq.started);
    r.Set("enabled", vq.enabled);
    r.Set("lastAvail", vq.lastAvail);
    rings.Set(q, r);
  }
  st.Set("rings", rings);
  {
    // the peers' sends stop here too (they look at exported_ under the ring lock)
    RingsGuard g(*link_);
    exported_ = true;
  }
  reading_ = false;
  if (vq_[1].kickPoll != nullptr) uv_poll_stop(vq_[1].kickPoll);
  if (connPoll_ != nullptr) uv_poll_stop(connPoll_);
  Napi::Object o = Napi::Object::New(env);
  o.Set("fds", fds);
  o.Set("state", st);
  return o;
}

// adoptHandover(fds: [role, fd][], state): the new daemon's side. Every value is checked as a message would be (it
// crossed a process boundary); on failure the fds not yet owned are left to the caller, the port stays unconnected and
// a TypeError names the problem.
Napi::Value VhostUserPort::AdoptHandover(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsObject()) {
    ThrowType(env, "adoptHandover(fds: [role, fd][], state: object)");
    return env.Undefined();
  }
  if (closed_ || connFd_ >= 0) {
    ThrowType(env, "adoptHandover: the port is closed or connected already");
    return env.Undefined();
  }
  Napi::Array list = info[0].As<Napi::Array>();
  Napi::Object st = info[1].As<Napi::Object>();
  int conn = -1, regionFd[kMaxRegions], ringFd[2][3];
  for (auto& f : regionFd) f = -1;
  for (auto& q : ringFd) q[0] = q[1] = q[2] = -1;
  auto bad = [&](const std::string& what) {
    ThrowType(env, "adoptHandover: " + what);
    return env.Undefined();
  };
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value e = list.Get(i);
    if (!e.IsArray() || e.As<Napi::Array>().Length() != 2) return bad("fds entries are [role, fd]");
    int64_t role, fd;
    if (!GetInt(e.As<Napi::Array>().Get(0u), "role", 0, 31, &role) || !GetInt(e.As<Napi::Array>().Get(1u), "fd", 0, 0x7fffffff, &fd))
      return env.Undefined();
    if (role == 0) conn = static_cast<int>(fd);
    else if (role >= 1 && role <= static_cast<int64_t>(kMaxRegions)) regionFd[role - 1] = static_cast<int>(fd);
    else if (role >= 16 && role < 24 && (role - 16) % 4 < 3) ringFd[(role - 16) / 4][(role - 16) % 4] = static_cast<int>(fd);
    else return bad("unknown fd role " + std::to_string(role));
  }
  if (conn < 0) return bad("no connection fd");
  uint64_t feats, pfeats;
  if (!ParseHex(st.Get("features"), &feats) || (feats & ~kOfferedFeatures)) return bad("features");
  if (!ParseHex(st.Get("protocolFeatures"), &pfeats) || (pfeats & ~kOfferedProtocolFeatures)) return bad("protocolFeatures");
  Napi::Value regsV = st.Get("regions"), ringsV = st.Get("rings");
  if (!regsV.IsArray() || regsV.As<Napi::Array>().Length() > kMaxRegions) return bad("regions");
  if (!ringsV.IsArray() || ringsV.As<Napi::Array>().Length() != 2) return bad("rings");
  Napi::Array regs = regsV.As<Napi::Array>();
  Region fresh[kMaxRegions];
  size_t n = regs.Length();
  for (uint32_t i = 0; i < n; i++) {
    Napi::Value rv = regs.Get(i);
    if (!rv.IsObject()) return bad("regions[" + std::to_string(i) + "]");
    Napi::Object r = rv.As<Napi::Object>();
    Region& g = fresh[i];
    if (!ParseHex(r.Get("gpa"), &g.gpa) || !ParseHex(r.Get("size"), &g.size) || !ParseHex(r.Get("uva"), &g.uva) ||
        !ParseHex(r.Get("mmapOffset"), &g.mmapOffset) || regionFd[i] < 0 || g.size == 0 || g.size > (1ull << 46) ||
        g.mmapOffset > (1ull << 46) || g.gpa + g.size < g.gpa || g.uva + g.size < g.uva)
      return bad("regions[" + std::to_string(i) + "]");
    struct stat fst;
    if (::fstat(regionFd[i], &fst) < 0 || static_cast<uint64_t>(fst.st_size) < g.mmapOffset + g.size)
      return bad("regions[" + std::to_string(i) + "]: the fd is smaller than the region");
  }
  for (uint32_t i = 0; i < n; i++) {
    Region& g = fresh[i];
    void* m = ::mmap(nullptr, g.mmapOffset + g.size, PROT_READ | PROT_WRITE, MAP_SHARED, regionFd[i], 0);
    if (m == MAP_FAILED) {
      for (uint32_t j = 0; j < i; j++) ::munmap(fresh[j].map, fresh[j].mapLen);
      return bad("regions[" + std::to_string(i) + "]: mmap failed");
    }
    g.map = static_cast<uint8_t*>(m);
    g.mapLen = g.mmapOffset + g.size;
  }
  // from here on every fd is ours
  RingsGuard* g = new RingsGuard(*link_);
  for (uint32_t i = 0; i < n; i++) {
    fresh[i].fd = regionFd[i];
    regionFd[i] = -1;
    regions_[i] = fresh[i];
  }
  for (size_t i = n; i < kMaxRegions; i++) CloseFd(&regionFd[i]);
  nregions_ = n;
  memSet_ = n > 0;
  delete g;
  Adopt(conn);  // socket poll, 'connected'; resets the negotiated state, set below
  features_ = feats;
  featuresSet_ = st.Get("featuresSet").ToBoolean().Value();
  protocolFeatures_ = pfeats;
  guestHdrLen_ = (feats & (F_VERSION_1 | F_MRG_RXBUF)) ? 12 : 10;
  owner_ = st.Get("owner").ToBoolean().Value();
  if (connFd_ < 0) return bad("cannot poll the connection");
  Napi::Array rings = ringsV.As<Napi::Array>();
  g = new RingsGuard(*link_);
  for (uint32_t q = 0; q < 2; q++) {  // the port owns every ring fd from here on (Disconnect closes them)
    vq_[q].kick = ringFd[q][0];
    vq_[q].call = ringFd[q][1];
    vq_[q].err = ringFd[q][2];
    if (vq_[q].kick >= 0) SetNonBlocking(vq_[q].kick);
  }
  for (uint32_t q = 0; q < 2; q++) {
    Napi::Value rv = rings.Get(q);
    Vring& vq = vq_[q];
    if (!rv.IsObject()) {
      Fail("handover: rings[%u] is not an object", q);
      break;
    }
    Napi::Object r = rv.As<Napi::Object>();
    int64_t num = 0, lastAvail = 0;
    Napi::Value numV = r.Get("num"), laV = r.Get("lastAvail");
    if (!numV.IsNumber() || !laV.IsNumber()) {
      Fail("handover: rings[%u] num/lastAvail", q);
      break;
    }
    num = numV.As<Napi::Number>().Int64Value();
    lastAvail = laV.As<Napi::Number>().Int64Value();
    if (num < 0 || num > kMaxQueueSize || (num & (num - 1)) != 0 || lastAvail < 0 || lastAvail > 0xffff) {
      Fail("handover: rings[%u] size %lld", q, static_cast<long long>(num));
      break;
    }
    vq.num = static_cast<uint32_t>(num);
    vq.lastAvail = static_cast<uint16_t>(lastAvail);
    vq.addrSet = r.Get("addrSet").ToBoolean().Value();
    vq.enabled = r.Get("enabled").ToBoolean().Value();
    if (vq.addrSet && (!ParseHex(r.Get("desc"), &vq.descUva) || !ParseHex(r.Get("avail"), &vq.availUva) ||
                       !ParseHex(r.Get("used"), &vq.usedUva))) {
      Fail("handover: rings[%u] addresses", q);
      break;
    }
    if (vq.kick >= 0 && r.Get("started").ToBoolean().Value() && !StartRing(q)) break;
  }
  delete g;
  if (broken_) {
    std::string why = brokenReason_;
    Disconnect(why);
  } else {
    UpdateLink();
  }
  return env.Undefined();
}

Napi::Value VhostUserPort::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::unique_ptr<RingsGuard> g(link_ != nullptr ? new RingsGuard(*link_) : nullptr);  // the indexes a peer moves
  Napi::Object o = Napi::Object::New(env);
  o.Set("connected", Napi::Boolean::New(env, connFd_ >= 0));
  o.Set("link", Napi::Boolean::New(env, LinkUp()));
  char hex[32];
  std::snprintf(hex, sizeof hex, "0x%llx", static_cast<unsigned long long>(features_));
  o.Set("features", Napi::String::New(env, hex));
  std::snprintf(hex, sizeof hex, "0x%llx", static_cast<unsigned long long>(protocolFeatures_));
  o.Set("protocolFeatures", Napi::String::New(env, hex));
  o.Set("regions", Napi::Number::New(env, static_cast<double>(nregions_)));
  Napi::Array rings = Napi::Array::New(env, 2);
  for (uint32_t i = 0; i < 2; i++) {
    Napi::Object r = Napi::Object::New(env);
    r.Set("size", Napi::Number::New(env, vq_[i].num));
    r.Set("started", Napi::Boolean::New(env, vq_[i].started));
    r.Set("enabled", Napi::Boolean::New(env, vq_[i].enabled));
    r.Set("lastAvail", Napi::Number::New(env, vq_[i].lastAvail));
    r.Set("lastUsed", Napi::Number::New(env, vq_[i].lastUsed));
    // the guest's own indexes as they are in its memory now (-1 while the queue is not started)
    r.Set("availIdx", Napi::Number::New(env, vq_[i].started ? LoadAcquire16(&vq_[i].avail[1]) : -1));
    r.Set("usedIdx", Napi::Number::New(env, vq_[i].started ? LoadAcquire16(vq_[i].usedIdx()) : -1));
    rings.Set(i, r);
  }
  o.Set("rings", rings);
  o.Set("connects", Napi::Number::New(env, connects_));
  o.Set("protocolErrors", Napi::Number::New(env, protocolErrors_));
  o.Set("rejected", Napi::Number::New(env, rejected_));
  o.Set("kicks", Napi::Number::New(env, static_cast<double>(kicks_.load())));
  o.Set("rxBatches", Napi::Number::New(env, static_cast<double>(rxBatches_.load())));
  o.Set("notifies", Napi::Number::New(env, static_cast<double>(notifies_.load())));
  o.Set("descBudget", Napi::Number::New(env, kDescBudgetPerWakeup));
  o.Set("descBudgetHits", Napi::Number::New(env, static_cast<double>(descBudgetHits_.load())));
  o.Set("longChains", Napi::Number::New(env, static_cast<double>(longChains_.load())));
  o.Set("maxDescPerWakeup", Napi::Number::New(env, maxDescPerWakeup_));
  o.Set("lastError", Napi::String::New(env, lastError_));
  return o;
}

// ---- data workers: a port's peer in another thread ----
//
// adoptVhostUser(device, name) in a worker: the RawPort surface (setTx, setCounters, start, stop, holdRx, send, close)
// over the port's rings, with this thread's slab, tx queue and counters. send() takes queue 0's lock; start() polls a
// dup of the port's kick epoll in this thread's loop and each wakeup reads queue 1 under its lock. Once the port is
// closed (VhostLink::port null) send() counts TxLinkDown and the poll stops. Nothing here touches the socket.
class VhostUserPeer : public Napi::ObjectWrap<VhostUserPeer> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "RawVhostUserPeer",
                       {
                           InstanceAccessor<&VhostUserPeer::GetFd>("fd"),
                           InstanceAccessor<&VhostUserPeer::GetIfindex>("ifindex"),
                           InstanceAccessor<&VhostUserPeer::GetName>("name"),
                           InstanceAccessor<&VhostUserPeer::GetKind>("kind"),
                           InstanceMethod<&VhostUserPeer::SetTx>("setTx"),
                           InstanceMethod<&VhostUserPeer::SetCounters>("setCounters"),
                           InstanceMethod<&VhostUserPeer::Start>("start"),
                           InstanceMethod<&VhostUserPeer::Stop>("stop"),
                           InstanceMethod<&VhostUserPeer::HoldRx>("holdRx"),
                           InstanceMethod<&VhostUserPeer::Send>("send"),
                           InstanceMethod<&VhostUserPeer::ReadSocketDrops>("readSocketDrops"),
                           InstanceMethod<&VhostUserPeer::Close>("close"),
                       });
  }

  // (token, device, name)
  explicit VhostUserPeer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<VhostUserPeer>(info), env_(info.Env()) {
    Napi::Env env = info.Env();
    data_ = env.GetInstanceData<AddonData>();
    counters_ = dummyCounters_;
    if (!FromAddon(info, 3, "RawVhostUserPeer cannot be constructed from JS; use adoptVhostUser()")) {
      closed_ = true;
      return;
    }
    uint32_t device = info[1].As<Napi::Number>().Uint32Value();
    name_ = info[2].As<Napi::String>().Utf8Value();
    {
      std::lock_guard<std::mutex> g(gLinksLock);
      auto it = gLinks.find(device);
      if (it != gLinks.end()) link_ = it->second.lock();
    }
    if (link_ != nullptr) {
      // the port's kick epoll, dup'd under queue 1's lock (the port closes its own at close)
      std::lock_guard<std::mutex> g(link_->q[1]);
      if (link_->port != nullptr && link_->port->kickEpoll_ >= 0) epollFd_ = ::fcntl(link_->port->kickEpoll_, F_DUPFD_CLOEXEC, 0);
    }
    if (link_ == nullptr || epollFd_ < 0) {
      Napi::Error::New(env, "adoptVhostUser: no open vhost-user port with device " + std::to_string(device) + " (" + name_ + ")")
          .ThrowAsJavaScriptException();
      link_.reset();
      closed_ = true;
      return;
    }
    asyncCtx_ = std::make_unique<Napi::AsyncContext>(env, "tapbridge:vhost-user-peer", Napi::Object::New(env));
    Ref();
    refd_ = true;
  }
  ~VhostUserPeer() override { Release(); }

 private:
  Napi::Value GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), epollFd_); }
  Napi::Value GetIfindex(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), 0); }
  Napi::Value GetName(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), name_); }
  Napi::Value GetKind(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), "vhost-user"); }
  Napi::Value ReadSocketDrops(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), 0); }

  Napi::Value SetTx(const Napi::CallbackInfo& info) {
    BindTx(info, &txRef_, &tx_, &txCap_);
    return info.Env().Undefined();
  }

  Napi::Value SetCounters(const Napi::CallbackInfo& info) {
    BindCounters(info, &countersRef_, &counters_);
    return info.Env().Undefined();
  }

  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsFunction() || !info[1].IsFunction()) {
      ThrowType(env, "start(onRx: (count) => void, onError: (errno, syscall, stopped) => void)");
      return env.Undefined();
    }
    if (data_->slab == nullptr) {
      Napi::Error::New(env, "start: setup() must be called first").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (closed_) return env.Undefined();
    onRx_ = Napi::Persistent(info[0].As<Napi::Function>());
    onError_ = Napi::Persistent(info[1].As<Napi::Function>());
    if (poll_ == nullptr) {
      uv_loop_t* loop = nullptr;
      napi_get_uv_event_loop(env, &loop);
      poll_ = new uv_poll_t;
      if (uv_poll_init(loop, poll_, epollFd_) < 0) {
        delete poll_;
        poll_ = nullptr;
        Napi::Error::New(env, "start: uv_poll_init on the kick epoll failed (" + name_ + ")").ThrowAsJavaScriptException();
        return env.Undefined();
      }
      poll_->data = this;
    }
    uv_poll_start(poll_, UV_READABLE, OnPoll);
    reading_ = true;
    // frames that queued while nobody read: come back through the kick
    std::lock_guard<std::mutex> g(link_->q[1]);
    VhostUserPort* port = link_->port;
    if (port != nullptr && port->vq_[1].kick >= 0) eventfd_write(port->vq_[1].kick, 1);
    return env.Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    reading_ = false;
    if (poll_ != nullptr) uv_poll_stop(poll_);
    return info.Env().Undefined();
  }

  // QoS ports stay on the main thread (dataplane.ts); a hold here stops reading like stop()
  Napi::Value HoldRx(const Napi::CallbackInfo& info) {
    if (info.Length() >= 1 && info[0].IsBoolean() && info[0].As<Napi::Boolean>().Value()) {
      reading_ = false;
      if (poll_ != nullptr) uv_poll_stop(poll_);
    }
    return info.Env().Undefined();
  }

  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t count;
    if (!GetSendCount(info, closed_, tx_, txCap_, &count)) return env.Undefined();
    if (count == 0) return Napi::Number::New(env, 0);
    uint32_t accepted = 0;
    std::lock_guard<std::mutex> g(link_->q[0]);
    VhostUserPort* port = link_->port;
    if (port == nullptr) {
      counters_[TxLinkDown] += count;
      counters_[TxLastErrno] = ENETDOWN;
    } else {
      accepted = port->SendBatch(data_, tx_, count, counters_);
      if (port->broken_) uv_async_send(port->failAsync_);
    }
    return Napi::Number::New(env, accepted);
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Release();
    return info.Env().Undefined();
  }

  void Release() {
    if (released_) return;
    released_ = true;
    closed_ = true;
    reading_ = false;
    if (poll_ != nullptr) {
      poll_->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
    }
    CloseFd(&epollFd_);
    link_.reset();
    if (inCallback_ == 0) {
      onRx_.Reset();
      onError_.Reset();
    }
    txRef_.Reset();
    tx_ = nullptr;
    txCap_ = 0;
    countersRef_.Reset();
    counters_ = dummyCounters_;
    if (refd_) {
      refd_ = false;
      Unref();
    }
  }

  static void OnPoll(uv_poll_t* h, int status, int) {
    VhostUserPeer* self = static_cast<VhostUserPeer*>(h->data);
    if (self == nullptr || self->closed_ || status < 0) return;
    self->HandleKick();
  }

  // The same wakeup as the main thread's (VhostUserPort::ServeKick), into this thread's slab and counters.
  void HandleKick() {
    if (link_ == nullptr) return;
    Napi::Env env(env_);
    Napi::HandleScope scope(env);
    Ref();
    inCallback_++;
    bool delivered = false;
    KickEnd end = VhostUserPort::ServeKick(link_, data_, counters_, false, [&](uint32_t count) {
      if (onRx_.IsEmpty() || closed_) return false;
      delivered = true;
      napi_value argv[1] = {Napi::Number::New(env, count)};
      onRx_.MakeCallback(Value(), 1, argv, *asyncCtx_);
      HandlePendingException(env);
      // the callback may have stopped or closed this peer: then no further batch
      return !closed_ && reading_;
    });
    // the port is closed: the data plane drops this copy at its next sync
    if (end == KickEnd::Gone && poll_ != nullptr) uv_poll_stop(poll_);
    if (delivered) BusyPollKick();
    inCallback_--;
    if (closed_ && inCallback_ == 0) {
      onRx_.Reset();
      onError_.Reset();
    }
    Unref();
  }

  napi_env env_;
  AddonData* data_;
  std::string name_;
  std::shared_ptr<VhostLink> link_;
  int epollFd_ = -1;
  uv_poll_t* poll_ = nullptr;
  bool closed_ = false;
  bool reading_ = false;  // start() until stop(), holdRx(true) or close()
  bool released_ = false;
  bool refd_ = false;
  int inCallback_ = 0;
  Napi::FunctionReference onRx_;
  Napi::FunctionReference onError_;
  std::unique_ptr<Napi::AsyncContext> asyncCtx_;
  Napi::Reference<Napi::Uint32Array> txRef_;
  uint32_t* tx_ = nullptr;
  size_t txCap_ = 0;
  Napi::Reference<Napi::Float64Array> countersRef_;
  double* counters_;
  double dummyCounters_[CounterCount] = {0};
};

// ---------------------------------------------------------------------------------------------

Napi::Function InitVhostUserClass(Napi::Env env) {
  Napi::Function f = VhostUserPort::Init(env);
  env.GetInstanceData<AddonData>()->vhostPeerCtor = Napi::Persistent(VhostUserPeer::Init(env));
  return f;
}

// adoptVhostUser(device, name): a worker's peer of the vhost-user port with that device id (any thread's addon)
Napi::Value AdoptVhostUser(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsString()) {
    ThrowType(env, "adoptVhostUser(device: number, name: string)");
    return env.Undefined();
  }
  AddonData* d = env.GetInstanceData<AddonData>();
  Napi::Object o = d->vhostPeerCtor.New({Napi::External<int>::New(env, &kCtorToken), info[0], info[1]});
  if (env.IsExceptionPending() || o.IsEmpty()) return env.Undefined();
  return o;
}

// openVhostUser(name, socketPath, mode: 'client' | 'server', onState)
Napi::Value OpenVhostUser(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsString() || !info[1].IsString() || !info[2].IsString() || !info[3].IsFunction()) {
    ThrowType(env, "openVhostUser(name: string, socket: string, mode: 'client' | 'server', onState: function)");
    return env.Undefined();
  }
  std::string path = info[1].As<Napi::String>().Utf8Value();
  std::string mode = info[2].As<Napi::String>().Utf8Value();
  if (path.empty() || path.size() >= sizeof(sockaddr_un::sun_path) || path.find('\0') != std::string::npos) {
    ThrowType(env, "openVhostUser: socket must be a path of 1.." + std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes");
    return env.Undefined();
  }
  if (mode != "client" && mode != "server") {
    ThrowType(env, "openVhostUser: mode must be 'client' or 'server'");
    return env.Undefined();
  }
  AddonData* d = env.GetInstanceData<AddonData>();
  Napi::Object o = d->vhostUserCtor.New({Napi::External<int>::New(env, &kCtorToken), info[0], info[1],
                                         Napi::Boolean::New(env, mode == "server"), info[3]});
  if (env.IsExceptionPending() || o.IsEmpty()) return env.Undefined();
  return o;
}

}  // namespace tb
