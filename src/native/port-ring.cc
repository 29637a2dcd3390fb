// tapbridge_native: PACKET_MMAP rings for AF_PACKET ports. See native-notes/packet-mmap.md.
//
// Model: one TPACKET_V2 rx ring and, when tx_frames > 0, one tx ring per socket, mapped once (rx
// blocks, then tx blocks).
//
//   rx  the kernel fills slots in order and hands each to us with TP_STATUS_USER; a batch copies
//       [vnet header][frame] of each ready slot into the shared slab (as recvmsg did) and gives the
//       slot back (TP_STATUS_KERNEL). A frame larger than a slot (GSO) arrives as a truncated slot
//       marked TP_STATUS_COPY whose full copy is queued on the socket (PACKET_COPY_THRESH): it is
//       read with recvmsg, in order. A slot truncated without a copy is counted as RxTruncated.
//   tx  (tx_frames > 0; else sendmmsg as without rings) send() copies each frame into the next
//       free slot (TP_STATUS_SEND_REQUEST) and ends with one sendto(); slots the kernel did not take
//       by then are given back and counted as drops. A frame larger than a slot goes through the
//       port's send socket (Port::OpenTxSocket in port.cc), after the ring is flushed, so the order
//       holds.
//
// A wedged rx ring (a kernel bug) is found and rebuilt by CheckRxWedge, below.
//
// Why V2 and not V3 (measured, native-notes/packet-mmap.md): V3 accepts PACKET_VNET_HDR on this
// kernel, but it wakes the reader only when a block is retired (full, or after the block timeout,
// >= 1 ms), which is a millisecond added to every ping; V2 wakes the reader per frame.
//
// Every value read from a ring slot is treated as hostile: offsets and lengths are checked against
// the slot before any byte is copied.
//
// Geometry is process-wide (setPacketRing, from the daemon's config) and stamped into the socket
// (SO_RCVLOWAT, which AF_PACKET never reads) so that a daemon adopting the socket (takeover, fd
// store, a data worker) maps it with the geometry it was made with.
#include "port.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>

namespace tb {

namespace {

constexpr uint32_t kBlockBytes = 1u << 16;   // one ring block; a frame never spans blocks
constexpr uint32_t kMaxBlocks = 511;         // per ring (9 bits of the stamp): 32 MiB at most
constexpr uint32_t kMinFrameBytes = 256;
constexpr uint32_t kMaxFrameBytes = 65520;   // 12 bits of frameBytes / 16 in the stamp
constexpr size_t kTxDataOff = TPACKET_ALIGN(sizeof(struct tpacket2_hdr));  // 32: where tpacket_snd reads
constexpr int kStampMark = 1 << 30;
constexpr size_t kMinFrame = 14;  // Ethernet header

struct RingConfig {
  bool enabled = true;
  uint32_t rxFrames = 4096;
  uint32_t txFrames = 0;
  uint32_t frameBytes = 2048;
  bool qdiscBypass = false;
};

std::mutex gConfigMu;
RingConfig gConfig;

RingConfig CurrentConfig() {
  std::lock_guard<std::mutex> l(gConfigMu);
  return gConfig;
}

uint32_t BlocksFor(uint32_t frames, uint32_t framesPerBlock) {
  return (frames + framesPerBlock - 1) / framesPerBlock;
}

int Stamp(uint32_t frameBytes, uint32_t rxBlocks, uint32_t txBlocks) {
  return kStampMark | static_cast<int>(((frameBytes / 16) << 18) | (rxBlocks << 9) | txBlocks);
}

inline uint32_t LoadStatus(const uint8_t* slot) {
  return __atomic_load_n(&reinterpret_cast<const struct tpacket2_hdr*>(slot)->tp_status, __ATOMIC_ACQUIRE);
}
inline void StoreStatus(uint8_t* slot, uint32_t v) {
  __atomic_store_n(&reinterpret_cast<struct tpacket2_hdr*>(slot)->tp_status, v, __ATOMIC_RELEASE);
}
inline uint64_t SlotStamp(const struct tpacket2_hdr* h) {
  return (static_cast<uint64_t>(h->tp_sec) << 32) | h->tp_nsec;
}

// setPacketRing({ enabled, rx_frames, tx_frames, frame_bytes, qdisc_bypass }): the geometry of rings
// on sockets opened from now on (every thread of the process).
Napi::Value SetPacketRing(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) {
    ThrowType(env, "setPacketRing({ enabled, rx_frames, tx_frames, frame_bytes, qdisc_bypass })");
    return env.Undefined();
  }
  Napi::Object o = info[0].As<Napi::Object>();
  RingConfig c;
  Napi::Value en = o.Get("enabled"), qb = o.Get("qdisc_bypass");
  if (!en.IsBoolean() || !qb.IsBoolean()) {
    ThrowType(env, "setPacketRing: enabled and qdisc_bypass must be booleans");
    return env.Undefined();
  }
  c.enabled = en.As<Napi::Boolean>().Value();
  c.qdiscBypass = qb.As<Napi::Boolean>().Value();
  int64_t rx, tx, fb;
  if (!GetInt(o.Get("frame_bytes"), "setPacketRing: frame_bytes", kMinFrameBytes, kMaxFrameBytes, &fb)) return env.Undefined();
  if (fb % 16 != 0) {
    ThrowType(env, "setPacketRing: frame_bytes must be a multiple of 16");
    return env.Undefined();
  }
  const uint32_t fpb = kBlockBytes / static_cast<uint32_t>(fb);
  const int64_t maxFrames = static_cast<int64_t>(fpb) * kMaxBlocks;
  if (!GetInt(o.Get("rx_frames"), "setPacketRing: rx_frames", 1, maxFrames, &rx)) return env.Undefined();
  if (!GetInt(o.Get("tx_frames"), "setPacketRing: tx_frames", 0, maxFrames, &tx)) return env.Undefined();
  c.rxFrames = static_cast<uint32_t>(rx);
  c.txFrames = static_cast<uint32_t>(tx);
  c.frameBytes = static_cast<uint32_t>(fb);
  std::lock_guard<std::mutex> l(gConfigMu);
  gConfig = c;
  return env.Undefined();
}

}  // namespace

void InitPacketRing(Napi::Env env, Napi::Object exports) {
  exports.Set("setPacketRing", Napi::Function::New(env, SetPacketRing, "setPacketRing"));
}

uint8_t* Port::RxSlot(uint32_t i) const {
  return ringMap_ + static_cast<size_t>(i / ringFramesPerBlock_) * ringBlockBytes_ +
         static_cast<size_t>(i % ringFramesPerBlock_) * ringFrameBytes_;
}

uint8_t* Port::TxSlot(uint32_t i) const {
  const size_t rxBytes = static_cast<size_t>(rxFrames_ / ringFramesPerBlock_) * ringBlockBytes_;
  return ringMap_ + rxBytes + static_cast<size_t>(i / ringFramesPerBlock_) * ringBlockBytes_ +
         static_cast<size_t>(i % ringFramesPerBlock_) * ringFrameBytes_;
}

int Port::MapRing(const char** syscall) {
  const size_t len = static_cast<size_t>((rxFrames_ + txFrames_) / ringFramesPerBlock_) * ringBlockBytes_;
  void* m = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd_, 0);
  if (m == MAP_FAILED) {
    *syscall = "mmap(PACKET_RX_RING)";
    return errno;
  }
  ringMap_ = static_cast<uint8_t*>(m);
  ringMapLen_ = len;
  return 0;
}

int Port::SetupRing(const char** syscall) {
  const RingConfig c = CurrentConfig();
  if (kind_ != kPacket) return 0;
  // qdisc_bypass is a property of the send path, rings or not (sendmmsg goes through the same
  // packet_xmit choice as the tx ring; native-notes/packet-mmap.md section 8)
  int one = 1;
  if (c.qdiscBypass && setsockopt(fd_, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one) < 0) {
    *syscall = "setsockopt(PACKET_QDISC_BYPASS)";
    return errno;
  }
  if (!c.enabled) return 0;
  ringFrameBytes_ = c.frameBytes;
  ringBlockBytes_ = kBlockBytes;
  ringFramesPerBlock_ = kBlockBytes / c.frameBytes;
  const uint32_t rxBlocks = BlocksFor(c.rxFrames, ringFramesPerBlock_);
  const uint32_t txBlocks = BlocksFor(c.txFrames, ringFramesPerBlock_);
  rxFrames_ = rxBlocks * ringFramesPerBlock_;
  txFrames_ = txBlocks * ringFramesPerBlock_;
  auto opt = [&](int level, int name, int v, const char* sc) {
    if (setsockopt(fd_, level, name, &v, sizeof v) < 0) {
      *syscall = sc;
      return errno;
    }
    return 0;
  };
  int e;
  if ((e = opt(SOL_PACKET, PACKET_VERSION, TPACKET_V2, "setsockopt(PACKET_VERSION)")) != 0) return e;
  // a frame the kernel cannot send from a slot is skipped instead of stopping the ring
  if ((e = opt(SOL_PACKET, PACKET_LOSS, 1, "setsockopt(PACKET_LOSS)")) != 0) return e;
  if ((e = opt(SOL_PACKET, PACKET_COPY_THRESH, 1, "setsockopt(PACKET_COPY_THRESH)")) != 0) return e;
  if ((e = opt(SOL_SOCKET, SO_RCVLOWAT, Stamp(c.frameBytes, rxBlocks, txBlocks), "setsockopt(SO_RCVLOWAT stamp)")) != 0)
    return e;
  struct tpacket_req req;
  req.tp_block_size = kBlockBytes;
  req.tp_frame_size = c.frameBytes;
  req.tp_block_nr = rxBlocks;
  req.tp_frame_nr = rxFrames_;
  if (setsockopt(fd_, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0) {
    *syscall = "setsockopt(PACKET_RX_RING)";
    return errno;
  }
  if (txBlocks > 0) {
    req.tp_block_nr = txBlocks;
    req.tp_frame_nr = txFrames_;
    if (setsockopt(fd_, SOL_PACKET, PACKET_TX_RING, &req, sizeof req) < 0) {
      *syscall = "setsockopt(PACKET_TX_RING)";
      return errno;
    }
  }
  if ((e = MapRing(syscall)) != 0) return e;
  rxHead_ = txHead_ = 0;
  txSeq_ = 0;
  return 0;
}

int Port::AdoptRing(const char** syscall) {
  int version = 0;
  socklen_t l = sizeof version;
  if (getsockopt(fd_, SOL_PACKET, PACKET_VERSION, &version, &l) < 0) {
    *syscall = "getsockopt(PACKET_VERSION)";
    return errno;
  }
  if (version == TPACKET_V1) return 0;  // no rings: the recvmsg path (a socket of an older daemon)
  int stamp = 0;
  l = sizeof stamp;
  if (version != TPACKET_V2 || getsockopt(fd_, SOL_SOCKET, SO_RCVLOWAT, &stamp, &l) < 0 || !(stamp & kStampMark)) {
    *syscall = "inherited AF_PACKET socket has rings without a tapbridge TPACKET_V2 geometry stamp";
    return EPROTO;
  }
  const uint32_t frameBytes = ((static_cast<uint32_t>(stamp) >> 18) & 0xfff) * 16;
  const uint32_t rxBlocks = (static_cast<uint32_t>(stamp) >> 9) & 0x1ff;
  const uint32_t txBlocks = static_cast<uint32_t>(stamp) & 0x1ff;
  if (frameBytes < kMinFrameBytes || rxBlocks == 0) {
    *syscall = "inherited AF_PACKET socket: bad ring geometry stamp";
    return EPROTO;
  }
  ringFrameBytes_ = frameBytes;
  ringBlockBytes_ = kBlockBytes;
  ringFramesPerBlock_ = kBlockBytes / frameBytes;
  rxFrames_ = rxBlocks * ringFramesPerBlock_;
  txFrames_ = txBlocks * ringFramesPerBlock_;
  int e = MapRing(syscall);
  if (e != 0) return e;
  // rx: the oldest slot still handed to user space, else the slot after the newest one written
  // (the kernel stamps each rx slot with the frame's time). tx: the slot after the highest
  // sequence number a daemon stamped (given-back slots have theirs cleared).
  bool anyUser = false;
  uint64_t best = 0, newest = 0, seq = 0;
  uint32_t oldestUser = 0, afterNewest = 0, afterSeq = 0;
  for (uint32_t i = 0; i < rxFrames_; i++) {
    const auto* h = reinterpret_cast<const struct tpacket2_hdr*>(RxSlot(i));
    const uint64_t t = SlotStamp(h);
    if (LoadStatus(RxSlot(i)) & TP_STATUS_USER) {
      if (!anyUser || t < best) {
        best = t;
        oldestUser = i;
      }
      anyUser = true;
    }
    if (t > newest) {
      newest = t;
      afterNewest = (i + 1) % rxFrames_;
    }
  }
  rxHead_ = anyUser ? oldestUser : afterNewest;
  for (uint32_t i = 0; i < txFrames_; i++) {
    const uint64_t s = SlotStamp(reinterpret_cast<const struct tpacket2_hdr*>(TxSlot(i)));
    if (s > seq) {
      seq = s;
      afterSeq = (i + 1) % txFrames_;
    }
  }
  txHead_ = afterSeq;
  txSeq_ = seq;
  return 0;
}

void Port::UnmapRing() {
  if (ringMap_ != nullptr) {
    ::munmap(ringMap_, ringMapLen_);
    ringMap_ = nullptr;
    ringMapLen_ = 0;
  }
}

uint32_t Port::RingReadBatch(int* err, const char** syscall) {
  uint8_t* const slab = data_->slab;
  int32_t* const desc = data_->rxDesc;
  const size_t slabLen = data_->slabLen;
  const uint32_t maxIter = static_cast<uint32_t>(std::min<size_t>(data_->budget, data_->rxDescFrames));
  double* const ctr = counters_;
  const uint32_t frameBytes = ringFrameBytes_;
  size_t pos = 0;
  uint32_t count = 0;
  for (uint32_t it = 0; it < maxIter && pos + kSlot <= slabLen; it++) {
    uint8_t* const f = RxSlot(rxHead_);
    const uint32_t st = LoadStatus(f);
    if (!(st & TP_STATUS_USER)) break;
    const auto* h = reinterpret_cast<const struct tpacket2_hdr*>(f);
    const uint32_t len = h->tp_len, snap = h->tp_snaplen, mac = h->tp_mac;
    const uint16_t tci = h->tp_vlan_tci, tpid = h->tp_vlan_tpid;
    rxHead_ = rxHead_ + 1 == rxFrames_ ? 0 : rxHead_ + 1;
    rxSlotsSinceCheck_++;
    int32_t* d = desc + 3 * count;
    if (st & TP_STATUS_COPY) {
      // the slot holds a truncated copy; the whole frame waits on the socket, in slot order
      StoreStatus(f, TP_STATUS_KERNEL);
      ssize_t used = RecvFrame(pos, d, err, syscall);
      if (used == -2) break;
      if (used > 0) {
        count++;
        pos += static_cast<size_t>(used);
      }
      continue;
    }
    if (mac < kTxDataOff + kVnetHdrLen || mac > frameBytes || snap > frameBytes - mac) {
      StoreStatus(f, TP_STATUS_KERNEL);
      ctr[RxErrors] += 1;
      continue;
    }
    if (snap < len) {
      StoreStatus(f, TP_STATUS_KERNEL);
      ctr[RxTruncated] += 1;
      continue;
    }
    if (snap < kMinFrame) {
      StoreStatus(f, TP_STATUS_KERNEL);
      ctr[RxRunt] += 1;
      continue;
    }
    uint8_t* base = slab + pos;
    std::memcpy(base + kTagLen, f + mac - kVnetHdrLen, kVnetHdrLen + snap);
    StoreStatus(f, TP_STATUS_KERNEL);
    if (base[kTagLen + 1] != 0) ctr[RxGsoPackets] += 1;
    pos += StoreFrame(pos, kVnetHdrLen + snap, d, st, tci, tpid);
    count++;
  }
  return count;
}

// Sends what the ring holds; gives back the slots the kernel did not take (counted as drops) and
// returns how many that were.
uint32_t Port::RingFlush() {
  ssize_t r;
  do {
    r = ::sendto(fd_, nullptr, 0, MSG_DONTWAIT, nullptr, 0);
  } while (r < 0 && errno == EINTR);
  const int e = r < 0 ? errno : EAGAIN;
  // The kernel takes SEND_REQUEST slots in order from its head and stops at the first it cannot
  // send; those left are the newest ones, just behind our head.
  uint32_t back = 0;
  while (back < txFrames_) {
    const uint32_t prev = txHead_ == 0 ? txFrames_ - 1 : txHead_ - 1;
    uint8_t* f = TxSlot(prev);
    if (LoadStatus(f) != TP_STATUS_SEND_REQUEST) break;
    auto* h = reinterpret_cast<struct tpacket2_hdr*>(f);
    counters_[TxBytes] -= static_cast<double>(h->tp_len) - kVnetHdrLen;
    if (f[kTxDataOff + 1] != 0) counters_[TxGsoPackets] -= 1;
    h->tp_sec = 0;
    h->tp_nsec = 0;
    StoreStatus(f, TP_STATUS_AVAILABLE);
    CountTxError(e);
    txHead_ = prev;
    txSeq_--;
    back++;
  }
  return back;
}

uint32_t Port::RingSend(uint32_t m) {
  double* const ctr = counters_;
  const size_t slotData = ringFrameBytes_ - kTxDataOff;
  uint32_t accepted = 0, dropped = 0;
  bool pending = false;
  for (uint32_t j = 0; j < m; j++) {
    const struct msghdr& mh = txMsgs_[j].msg_hdr;
    size_t total = 0;
    for (size_t v = 0; v < mh.msg_iovlen; v++) total += mh.msg_iov[v].iov_len;
    const bool gso = static_cast<const uint8_t*>(mh.msg_iov[0].iov_base)[1] != 0;
    if (total > slotData) {
      if (pending) {
        dropped += RingFlush();
        pending = false;
      }
      ssize_t r;
      do {
        r = ::sendmsg(txFd_, &mh, MSG_DONTWAIT);
      } while (r < 0 && errno == EINTR);
      if (r < 0) {
        CountTxError(errno);
      } else {
        accepted++;
        ctr[TxBytes] += static_cast<double>(total) - kVnetHdrLen;
        if (gso) ctr[TxGsoPackets] += 1;
      }
      continue;
    }
    uint8_t* f = TxSlot(txHead_);
    if (LoadStatus(f) != TP_STATUS_AVAILABLE && pending) {
      dropped += RingFlush();
      pending = false;
      f = TxSlot(txHead_);
    }
    if (LoadStatus(f) != TP_STATUS_AVAILABLE) {
      // still in flight (TP_STATUS_SENDING until the device frees the frame): the ring is full
      CountTxError(EAGAIN);
      continue;
    }
    uint8_t* p = f + kTxDataOff;
    for (size_t v = 0; v < mh.msg_iovlen; v++) {
      std::memcpy(p, mh.msg_iov[v].iov_base, mh.msg_iov[v].iov_len);
      p += mh.msg_iov[v].iov_len;
    }
    auto* h = reinterpret_cast<struct tpacket2_hdr*>(f);
    h->tp_len = static_cast<uint32_t>(total);
    txSeq_++;
    h->tp_sec = static_cast<uint32_t>(txSeq_ >> 32);
    h->tp_nsec = static_cast<uint32_t>(txSeq_);
    StoreStatus(f, TP_STATUS_SEND_REQUEST);
    txHead_ = txHead_ + 1 == txFrames_ ? 0 : txHead_ + 1;
    pending = true;
    accepted++;
    ctr[TxBytes] += static_cast<double>(total) - kVnetHdrLen;
    if (gso) ctr[TxGsoPackets] += 1;
  }
  if (pending) dropped += RingFlush();
  return accepted - dropped;
}

// A wedged rx ring (kernel 6.18, net/packet/af_packet.c tpacket_rcv, TPACKET_V1/V2): when
// virtio_net_hdr_from_skb() refuses a frame (a GSO type a vnet header cannot describe, e.g. UFO
// written into a TAP by a guest), the kernel has already marked the head slot in rx_owner_map and
// jumps to drop_n_account without clearing the mark or moving the head; every later frame then
// finds the mark and is dropped too. No slot becomes ready, so the reader is never woken.
//
// Seen from here: the kernel counted drops since the last check, we consumed no slot in that time
// and the slot at our head is the kernel's. A ring that was merely full would have had ready slots
// for us to consume. The ring is then rebuilt: the socket is unbound (nothing arrives), unmapped,
// the rx ring freed and made anew (a fresh rx_owner_map, head 0), anything queued meanwhile
// discarded, mapped again and bound again. Frames dropped while it was wedged are lost (counted as
// socket drops). It cannot be rebuilt while another mapping of the socket exists (a data worker's
// and the main thread's with data_workers > 1): counted as a failure, the ring stays wedged.
void Port::CheckRxWedge(unsigned drops) {
  const uint64_t consumed = rxSlotsSinceCheck_;
  rxSlotsSinceCheck_ = 0;
  if (ringMap_ == nullptr || !polling_ || drops == 0 || consumed != 0) return;
  if (LoadStatus(RxSlot(rxHead_)) & TP_STATUS_USER) return;
  const char* syscall = nullptr;
  if (RebuildRxRing(&syscall) == 0) {
    ringResets_ += 1;
  } else {
    ringResetFailures_ += 1;
  }
}

int Port::RebuildRxRing(const char** syscall) {
  struct sockaddr_ll sll;
  std::memset(&sll, 0, sizeof sll);
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = 0;
  sll.sll_ifindex = ifindex_;
  if (bind(fd_, reinterpret_cast<struct sockaddr*>(&sll), sizeof sll) < 0) {
    *syscall = "bind(0)";
    return errno;
  }
  int e = 0;
  ::munmap(ringMap_, ringMapLen_);
  ringMap_ = nullptr;
  struct tpacket_req req;
  std::memset(&req, 0, sizeof req);
  if (setsockopt(fd_, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0) {
    e = errno;
    *syscall = "setsockopt(PACKET_RX_RING, none)";
  }
  // copies queued for slots of the old ring
  uint8_t scratch[64];
  for (int i = 0; i < 100000 && ::recv(fd_, scratch, sizeof scratch, MSG_DONTWAIT | MSG_TRUNC) >= 0; i++) counters_[RxErrors] += 1;
  if (e == 0) {
    req.tp_block_size = ringBlockBytes_;
    req.tp_frame_size = ringFrameBytes_;
    req.tp_block_nr = rxFrames_ / ringFramesPerBlock_;
    req.tp_frame_nr = rxFrames_;
    if (setsockopt(fd_, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0) {
      e = errno;
      *syscall = "setsockopt(PACKET_RX_RING)";
    }
  }
  const int me = MapRing(syscall);  // the same size as before (the tx ring is still there)
  if (e == 0) e = me;
  rxHead_ = 0;
  sll.sll_protocol = htons(ETH_P_ALL);
  if (bind(fd_, reinterpret_cast<struct sockaddr*>(&sll), sizeof sll) < 0 && e == 0) {
    e = errno;
    *syscall = "bind";
  }
  return e;
}

Napi::Value Port::RingInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (ringMap_ == nullptr) return env.Null();
  Napi::Object o = Napi::Object::New(env);
  o.Set("version", 2);
  o.Set("frame_bytes", ringFrameBytes_);
  o.Set("block_bytes", ringBlockBytes_);
  o.Set("rx_frames", rxFrames_);
  o.Set("tx_frames", txFrames_);
  o.Set("mapped_bytes", static_cast<double>(ringMapLen_));
  o.Set("rx_resets", ringResets_);
  o.Set("rx_reset_failures", ringResetFailures_);
  return o;
}

}  // namespace tb
