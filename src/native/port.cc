// tapbridge_native: TAP and AF_PACKET ports. See native-notes/addon.md.
#include "port.h"
#include "busypoll.h"
#include "directpoll.h"
#include "vnet.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <net/if.h>
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace tb {

namespace {

constexpr int kMaxPollErrors = 8;    // consecutive POLLERR wakeups before giving up
constexpr int kMaxReadErrors = 64;   // consecutive failed reads without a frame before giving up

}  // namespace

Napi::Function Port::Init(Napi::Env env) {
  return DefineClass(env, "RawPort",
                     {
                         InstanceAccessor<&Port::GetFd>("fd"),
                         InstanceAccessor<&Port::GetIfindex>("ifindex"),
                         InstanceAccessor<&Port::GetName>("name"),
                         InstanceAccessor<&Port::GetKind>("kind"),
                         InstanceMethod<&Port::SetTx>("setTx"),
                         InstanceMethod<&Port::SetCounters>("setCounters"),
                         InstanceMethod<&Port::Start>("start"),
                         InstanceMethod<&Port::Stop>("stop"),
                         InstanceMethod<&Port::Send>("send"),
                         InstanceMethod<&Port::ReadSocketDrops>("readSocketDrops"),
                         InstanceMethod<&Port::RingInfo>("ringInfo"),
                         InstanceMethod<&Port::Close>("close"),
                     });
}

Napi::Function InitPort(Napi::Env env) { return Port::Init(env); }

Port::Port(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Port>(info), env_(info.Env()) {
  Napi::Env env = info.Env();
  data_ = env.GetInstanceData<AddonData>();
  counters_ = dummyCounters_;
  if (!FromAddon(info, 5, "RawPort cannot be constructed from JS; use openTap() or openPacket()")) {
    closed_ = true;
    return;
  }
  fd_ = info[1].As<Napi::Number>().Int32Value();
  ifindex_ = info[2].As<Napi::Number>().Int32Value();
  name_ = info[3].As<Napi::String>().Utf8Value();
  kind_ = info[4].As<Napi::Number>().Int32Value() == kPacket ? kPacket : kTap;
}

Port::~Port() { DoClose(true); }

Napi::Value Port::GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_); }
Napi::Value Port::GetIfindex(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), ifindex_); }
Napi::Value Port::GetName(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), name_); }
Napi::Value Port::GetKind(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), kind_ == kTap ? "tap" : "packet");
}

Napi::Value Port::SetTx(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!BindTx(info, &txRef_, &tx_, &txCap_)) return env.Undefined();
  const size_t cap = txCap_;
  txScratch_.assign(cap * 16, 0);
  txIov_.assign(cap * 4, iovec{nullptr, 0});
  txMsgs_.assign(cap, mmsghdr{});
  return env.Undefined();
}

Napi::Value Port::SetCounters(const Napi::CallbackInfo& info) {
  BindCounters(info, &countersRef_, &counters_);
  return info.Env().Undefined();
}

Napi::Value Port::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsFunction() || !info[1].IsFunction()) {
    ThrowType(env, "start(onRx: (count) => void, onError: (errno, syscall, stopped) => void)");
    return env.Undefined();
  }
  if (closed_) {
    ThrowSysError(env, EBADF, "start", name_);
    return env.Undefined();
  }
  if (data_->slab == nullptr) {
    Napi::Error::New(env, "start: setup() must be called first").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  onRx_ = Napi::Persistent(info[0].As<Napi::Function>());
  onError_ = Napi::Persistent(info[1].As<Napi::Function>());
  if (!asyncCtx_) {
    asyncCtx_ = std::make_unique<Napi::AsyncContext>(env, kind_ == kTap ? "tapbridge:tap" : "tapbridge:packet",
                                                     Napi::Object::New(env));
  }
  if (poll_ == nullptr) {
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
      Napi::Error::New(env, "start: no uv loop").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    poll_ = new uv_poll_t;
    int r = uv_poll_init(loop, poll_, fd_);
    if (r < 0) {
      delete poll_;
      poll_ = nullptr;
      ThrowSysError(env, -r, "uv_poll_init", name_);
      return env.Undefined();
    }
    poll_->data = this;
  }
  if (!polling_) {
    int r = uv_poll_start(poll_, UV_READABLE, OnPoll);
    if (r < 0) {
      ThrowSysError(env, -r, "uv_poll_start", name_);
      return env.Undefined();
    }
    polling_ = true;
    pollErrors_ = 0;
    readErrors_ = 0;
    DirectPollAdd(data_, fd_, this);
  }
  if (!refd_) {
    Ref();
    refd_ = true;
  }
  return env.Undefined();
}

void Port::StopPolling() {
  if (polling_ && poll_ != nullptr) uv_poll_stop(poll_);
  polling_ = false;
  DirectPollRemove(data_, fd_);
  if (refd_) {
    refd_ = false;
    Unref();
  }
}

Napi::Value Port::Stop(const Napi::CallbackInfo& info) {
  StopPolling();
  return info.Env().Undefined();
}

void Port::CloseFd() { DoClose(false); }

Napi::Value Port::Close(const Napi::CallbackInfo& info) {
  DoClose(false);
  return info.Env().Undefined();
}

void Port::ReleaseJsRefs() {
  onRx_.Reset();
  onError_.Reset();
  asyncCtx_.reset();
  txRef_.Reset();
  tx_ = nullptr;
  txCap_ = 0;
  countersRef_.Reset();
  counters_ = dummyCounters_;
}

void Port::DoClose(bool fromDestructor) {
  if (closed_) return;
  closed_ = true;
  if (poll_ != nullptr) {
    // uv_close stops the watcher (epoll_ctl DEL happens now); the handle memory is freed in the
    // close callback on a later loop phase, so an OnPoll already on the stack stays valid.
    poll_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    poll_ = nullptr;
  }
  polling_ = false;
  // Not from the destructor: a port is referenced while it polls, so one being collected has
  // already left the table, and at env teardown the addon's data may be gone before the port.
  if (!fromDestructor) DirectPollRemove(data_, fd_);
  UnmapRing();
  CloseTxSocket();
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (fromDestructor) {
    refd_ = false;
    ReleaseJsRefs();
    return;
  }
  // Inside onRx/onError the callbacks and async context stay alive until HandlePoll returns.
  if (inCallback_ == 0) ReleaseJsRefs();
  if (refd_) {
    refd_ = false;
    Unref();
  }
}

void Port::OnPoll(uv_poll_t* handle, int status, int /*events*/) {
  Port* p = static_cast<Port*>(handle->data);
  if (p != nullptr) p->HandlePoll(status);
}

uint32_t Port::ReadBatch(int* err, const char** syscall) {
  uint8_t* const slab = data_->slab;
  int32_t* const desc = data_->rxDesc;
  const size_t slabLen = data_->slabLen;
  const uint32_t maxIter = static_cast<uint32_t>(std::min<size_t>(data_->budget, data_->rxDescFrames));
  double* const ctr = counters_;
  size_t pos = 0;
  uint32_t count = 0;

  if (kind_ == kTap) {
    constexpr size_t bufLen = kVnetHdrLen + kMaxFrame;
    static_assert(bufLen + 1 <= kSlot, "a TAP read of bufLen + 1 must fit in a slot");
    for (uint32_t it = 0; it < maxIter && pos + kSlot <= slabLen; it++) {
      // tun copies what fits and returns the copied length (measured, kernel 6.18): one byte more than the
      // largest frame tells a frame that was cut off from one that fitted exactly
      ssize_t n = ::read(fd_, slab + pos, bufLen + 1);
      if (n < 0) {
        int e = errno;
        if (e == EINTR) continue;
        if (e == EAGAIN || e == EWOULDBLOCK) break;
        ctr[RxErrors] += 1;
        // EINVAL: the kernel dequeued a frame it cannot describe in a vnet header; skip it, go on
        if (e == EINVAL) continue;
        *err = e;
        *syscall = "read";
        break;
      }
      if (static_cast<size_t>(n) > bufLen) {
        ctr[RxTruncated] += 1;
        continue;
      }
      if (static_cast<size_t>(n) < kVnetHdrLen + kMinFrame) {
        ctr[RxRunt] += 1;
        continue;
      }
      if (slab[pos + 1] != 0) ctr[RxGsoPackets] += 1;
      int32_t* d = desc + 3 * count;
      d[0] = static_cast<int32_t>(pos + kVnetHdrLen);
      d[1] = static_cast<int32_t>(n - kVnetHdrLen);
      d[2] = 0;
      count++;
      pos = Align16(pos + static_cast<size_t>(n));
    }
    return count;
  }

  if (ringMap_ != nullptr) return RingReadBatch(err, syscall);
  for (uint32_t it = 0; it < maxIter && pos + kSlot <= slabLen; it++) {
    int32_t* d = desc + 3 * count;
    ssize_t used = RecvFrame(pos, d, err, syscall);
    if (used == -1 || used == -2) break;
    if (used == 0) continue;
    count++;
    pos += static_cast<size_t>(used);
  }
  return count;
}

ssize_t Port::RecvFrame(size_t pos, int32_t* d, int* err, const char** syscall) {
  constexpr size_t bufLen = kVnetHdrLen + kMaxFrame;
  double* const ctr = counters_;
  uint8_t* base = data_->slab + pos;
  struct iovec iov;
  struct msghdr mh;
  iov.iov_base = base + kTagLen;
  iov.iov_len = bufLen;
  std::memset(&mh, 0, sizeof mh);
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = cmsgBuf_;
  mh.msg_controllen = sizeof cmsgBuf_;
  ssize_t n;
  do {
    n = ::recvmsg(fd_, &mh, MSG_TRUNC | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    int e = errno;
    if (e == EAGAIN || e == EWOULDBLOCK) return -1;
    ctr[RxErrors] += 1;
    // EINVAL: a frame the kernel cannot describe in a vnet header (e.g. UFO); it was dequeued
    // and freed, so skip it and go on with the batch (the caller's loop is bounded)
    if (e == EINVAL) return 0;
    *err = e;
    *syscall = "recvmsg";
    return -2;
  }
  if ((mh.msg_flags & MSG_TRUNC) || static_cast<size_t>(n) > bufLen) {
    ctr[RxTruncated] += 1;
    return 0;
  }
  if (static_cast<size_t>(n) < kVnetHdrLen + kMinFrame) {
    ctr[RxRunt] += 1;
    return 0;
  }
  if (base[kTagLen + 1] != 0) ctr[RxGsoPackets] += 1;
  const struct tpacket_auxdata* aux = nullptr;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level == SOL_PACKET && c->cmsg_type == PACKET_AUXDATA &&
        c->cmsg_len >= CMSG_LEN(sizeof(struct tpacket_auxdata))) {
      aux = reinterpret_cast<const struct tpacket_auxdata*>(CMSG_DATA(c));
      break;
    }
  }
  uint16_t tci = 0;
  uint32_t status = 0;
  uint16_t tpid = 0;
  if (aux != nullptr) {
    // CMSG_DATA may be unaligned in theory; copy the fields out.
    std::memcpy(&status, &aux->tp_status, sizeof status);
    std::memcpy(&tci, &aux->tp_vlan_tci, sizeof tci);
    std::memcpy(&tpid, &aux->tp_vlan_tpid, sizeof tpid);
  }
  return static_cast<ssize_t>(StoreFrame(pos, static_cast<size_t>(n), d, status, tci, tpid));
}

size_t Port::StoreFrame(size_t pos, size_t n, int32_t* d, uint32_t status, uint16_t tci, uint16_t tpid) {
  uint8_t* base = data_->slab + pos;
  if ((status & TP_STATUS_VLAN_VALID) || tci != 0) {
    // [pad 4][vnet 10][dst 6][src 6][type...] -> [vnet 10][dst 6][src 6][tpid 2][tci 2][type...]
    std::memmove(base, base + kTagLen, kVnetHdrLen + 12);
    if (!(status & TP_STATUS_VLAN_TPID_VALID) || tpid == 0) tpid = ETH_P_8021Q;
    uint8_t* tag = base + kVnetHdrLen + 12;
    tag[0] = static_cast<uint8_t>(tpid >> 8);
    tag[1] = static_cast<uint8_t>(tpid);
    tag[2] = static_cast<uint8_t>(tci >> 8);
    tag[3] = static_cast<uint8_t>(tci);
    AdjustVnetHdr(base, +static_cast<int>(kTagLen));
    d[0] = static_cast<int32_t>(pos + kVnetHdrLen);
    d[1] = static_cast<int32_t>(n - kVnetHdrLen + kTagLen);
    d[2] = RX_F_TAG_RESTORED;
  } else {
    d[0] = static_cast<int32_t>(pos + kTagLen + kVnetHdrLen);
    d[1] = static_cast<int32_t>(n - kVnetHdrLen);
    d[2] = 0;
  }
  return Align16(kTagLen + n);
}

void Port::HandlePoll(int status) {
  if (closed_) return;
  Napi::Env env(env_);
  Napi::HandleScope scope(env);
  Ref();  // the wrapper must survive the JS callbacks even if JS closes and drops it
  inCallback_++;

  int err = 0;
  const char* syscall = nullptr;
  bool stopped = false;
  uint32_t count = 0;

  if (status < 0) {
    // libuv reports POLLERR as UV_EBADF and has stopped the watcher.
    polling_ = false;
    pollErrors_++;
    int e = -status;
    if (kind_ == kPacket) {
      int soerr = 0;
      socklen_t l = sizeof soerr;
      if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &soerr, &l) == 0 && soerr > 0) e = soerr;  // clears sk_err
    } else {
      // A TAP signals POLLERR when its netdev is gone; read() tells which errno.
      count = ReadBatch(&err, &syscall);
      if (err != 0) stopped = IsFatalRxErrno(err);
    }
    if (err == 0) {
      err = e;
      syscall = "poll";
    }
    if (!stopped && pollErrors_ > kMaxPollErrors) stopped = true;
    if (!stopped) {
      int r = uv_poll_start(poll_, UV_READABLE, OnPoll);
      if (r < 0) {
        stopped = true;
      } else {
        polling_ = true;
      }
    }
  } else {
    pollErrors_ = 0;
    count = ReadBatch(&err, &syscall);
    if (err != 0) {
      stopped = IsFatalRxErrno(err);
      if (count == 0) {
        if (++readErrors_ > kMaxReadErrors) stopped = true;
      } else {
        readErrors_ = 0;
      }
    } else {
      readErrors_ = 0;
    }
  }
  if (stopped) StopPolling();

  if (count > 0 && !onRx_.IsEmpty()) {
    napi_value argv[1] = {Napi::Number::New(env, count)};
    onRx_.MakeCallback(Value(), 1, argv, *asyncCtx_);
    HandlePendingException(env);
    BusyPollKick();
  }
  if (err != 0 && !closed_ && !onError_.IsEmpty()) {
    napi_value argv[3] = {Napi::Number::New(env, err), Napi::String::New(env, syscall),
                          Napi::Boolean::New(env, stopped)};
    onError_.MakeCallback(Value(), 3, argv, *asyncCtx_);
    HandlePendingException(env);
  }

  inCallback_--;
  if (closed_ && inCallback_ == 0) ReleaseJsRefs();
  Unref();  // last: after this the wrapper (and this object) may be collected
}

uint32_t Port::DirectRead(bool* failed) {
  int err = 0;
  const char* syscall = nullptr;
  uint32_t count = ReadBatch(&err, &syscall);
  *failed = err != 0;
  if (count > 0) BusyPollKick();
  return count;
}

void Port::CountTxError(int e) {
  double* c = counters_;
  switch (e) {
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
    case ENOBUFS:
    case ENOMEM:
      c[TxFull] += 1;
      break;
    case EIO:
    case ENETDOWN:
    case ENXIO:
    case ENODEV:
    case EBADFD:
      c[TxLinkDown] += 1;
      break;
    case EMSGSIZE:
    case EINVAL:
      c[TxOversize] += 1;
      break;
    default:
      c[TxOther] += 1;
      break;
  }
  c[TxLastErrno] = e;
}

Napi::Value Port::Send(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t count;
  if (!GetSendCount(info, closed_, tx_, txCap_, &count)) return env.Undefined();
  if (count == 0) return Napi::Number::New(env, 0);
  uint8_t* const slab = data_->slab;
  const size_t slabLen = data_->slabLen;
  if (slab == nullptr) {
    Napi::Error::New(env, "send: setup() must be called first").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  double* const ctr = counters_;

  // Build one message per valid entry; frame bytes are referenced in place.
  uint32_t m = 0;
  for (uint32_t i = 0; i < count; i++) {
    const uint32_t* e = tx_ + 4 * i;
    const size_t off = e[0], len = e[1];
    const uint32_t op = e[2], arg = e[3];
    if (!TxEntryOk(off, len, op, slabLen)) {
      ctr[TxOther] += 1;
      ctr[TxLastErrno] = EINVAL;
      continue;
    }
    uint8_t* frame = slab + off;
    struct iovec* iov = &txIov_[4 * m];
    size_t niov;
    if (op == TX_OP_NONE) {
      iov[0] = {frame - kVnetHdrLen, len + kVnetHdrLen};
      niov = 1;
    } else if (op == TX_OP_SET_TAG) {
      // Same length: header and MACs as they are, new tag from scratch, rest of the frame.
      uint8_t* scr = &txScratch_[16 * m];
      scr[10] = static_cast<uint8_t>(arg >> 24);
      scr[11] = static_cast<uint8_t>(arg >> 16);
      scr[12] = static_cast<uint8_t>(arg >> 8);
      scr[13] = static_cast<uint8_t>(arg);
      iov[0] = {frame - kVnetHdrLen, kVnetHdrLen + 12};
      iov[1] = {scr + 10, kTagLen};
      iov[2] = {frame + 12 + kTagLen, len - 12 - kTagLen};
      niov = 3;
    } else {
      uint8_t* scr = &txScratch_[16 * m];
      std::memcpy(scr, frame - kVnetHdrLen, kVnetHdrLen);
      if (op == TX_OP_PUSH_TAG) {
        AdjustVnetHdr(scr, +static_cast<int>(kTagLen));
        scr[10] = static_cast<uint8_t>(arg >> 24);
        scr[11] = static_cast<uint8_t>(arg >> 16);
        scr[12] = static_cast<uint8_t>(arg >> 8);
        scr[13] = static_cast<uint8_t>(arg);
        iov[0] = {scr, kVnetHdrLen};
        iov[1] = {frame, 12};
        iov[2] = {scr + 10, kTagLen};
        iov[3] = {frame + 12, len - 12};
        niov = 4;
      } else {
        AdjustVnetHdr(scr, -static_cast<int>(kTagLen));
        iov[0] = {scr, kVnetHdrLen};
        iov[1] = {frame, 12};
        iov[2] = {frame + 12 + kTagLen, len - 12 - kTagLen};
        niov = 3;
      }
    }
    struct msghdr& mh = txMsgs_[m].msg_hdr;
    std::memset(&mh, 0, sizeof mh);
    mh.msg_iov = iov;
    mh.msg_iovlen = niov;
    m++;
  }

  uint32_t accepted = 0;
  if (kind_ == kTap) {
    // A TAP takes exactly one frame per write (two frames in one writev become one frame).
    for (uint32_t j = 0; j < m; j++) {
      const struct msghdr& mh = txMsgs_[j].msg_hdr;
      ssize_t r;
      do {
        r = ::writev(fd_, mh.msg_iov, static_cast<int>(mh.msg_iovlen));
      } while (r < 0 && errno == EINTR);
      if (r < 0) {
        CountTxError(errno);
      } else {
        accepted++;
        ctr[TxBytes] += static_cast<double>(r) - kVnetHdrLen;
        if (static_cast<const uint8_t*>(mh.msg_iov[0].iov_base)[1] != 0) ctr[TxGsoPackets] += 1;
      }
    }
  } else if (ringMap_ != nullptr && txFrames_ > 0) {
    accepted = RingSend(m);
  } else {
    uint32_t j = 0;
    while (j < m) {
      int r = ::sendmmsg(txFd_ >= 0 ? txFd_ : fd_, &txMsgs_[j], m - j, MSG_DONTWAIT);
      if (r < 0) {
        int e = errno;
        if (e == EINTR) continue;
        CountTxError(e);  // message j failed: drop it and go on with the next
        j++;
      } else if (r == 0) {
        // Not expected from Linux; avoid spinning.
        for (; j < m; j++) CountTxError(EAGAIN);
      } else {
        for (uint32_t k = j; k < j + static_cast<uint32_t>(r); k++) {
          const struct msghdr& mh = txMsgs_[k].msg_hdr;
          size_t bytes = 0;
          for (size_t v = 0; v < mh.msg_iovlen; v++) bytes += mh.msg_iov[v].iov_len;
          ctr[TxBytes] += static_cast<double>(bytes) - kVnetHdrLen;
          if (static_cast<const uint8_t*>(mh.msg_iov[0].iov_base)[1] != 0) ctr[TxGsoPackets] += 1;
        }
        j += static_cast<uint32_t>(r);
        accepted += static_cast<uint32_t>(r);
      }
    }
  }
  return Napi::Number::New(env, accepted);
}

Napi::Value Port::ReadSocketDrops(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_ || kind_ != kPacket) return Napi::Number::New(env, 0);
  struct tpacket_stats st;
  socklen_t l = sizeof st;
  std::memset(&st, 0, sizeof st);
  if (getsockopt(fd_, SOL_PACKET, PACKET_STATISTICS, &st, &l) < 0) {
    ThrowSysError(env, errno, "getsockopt(PACKET_STATISTICS)", name_);
    return env.Undefined();
  }
  counters_[RxSocketDrops] += st.tp_drops;
  CheckRxWedge(st.tp_drops);
  return Napi::Number::New(env, st.tp_drops);
}

// The send socket of an AF_PACKET port: AF_PACKET bound to the port's ifindex with protocol 0 (it
// receives nothing), PACKET_VNET_HDR, the receiving socket's sndbuf and PACKET_QDISC_BYPASS. sendmmsg
// (and, with a tx ring, frames larger than a slot) go through it instead of the receiving socket,
// because that one is registered in the event loop's epoll set: a socket with a waiter on its wait
// queue has every sent skb's destructor (sock_wfree -> sock_def_write_space) take that queue's lock
// and run the epoll callback, for an EPOLLOUT nobody asked for. This socket is never polled, so the
// destructor finds no waiter (measured: native-notes/packet-mmap.md section 8). Each process that
// holds the port (a takeover, a data worker) opens its own; it holds no state.
void Port::CloseTxSocket() {
  if (txFd_ >= 0) {
    ::close(txFd_);
    txFd_ = -1;
  }
}

int Port::OpenTxSocket(const char** syscall) {
  if (txFd_ >= 0) return 0;
  int s = ::socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s < 0) {
    *syscall = "socket(AF_PACKET send socket)";
    return errno;
  }
  auto fail = [&](const char* sc) {
    int e = errno;
    ::close(s);
    *syscall = sc;
    return e;
  };
  int one = 1;
  if (setsockopt(s, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) < 0) return fail("setsockopt(PACKET_VNET_HDR send socket)");
  int bypass = 0;
  socklen_t l = sizeof bypass;
  if (getsockopt(fd_, SOL_PACKET, PACKET_QDISC_BYPASS, &bypass, &l) == 0 && bypass != 0 &&
      setsockopt(s, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one) < 0)
    return fail("setsockopt(PACKET_QDISC_BYPASS send socket)");
  int sndbuf = 0;
  l = sizeof sndbuf;
  if (getsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &sndbuf, &l) == 0 && sndbuf > 0) {
    int half = sndbuf / 2;  // the kernel reports twice what was set
    if (setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &half, sizeof half) < 0) return fail("setsockopt(SO_SNDBUFFORCE send socket)");
  }
  struct sockaddr_ll sll;
  std::memset(&sll, 0, sizeof sll);
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = 0;  // receives nothing
  sll.sll_ifindex = ifindex_;
  if (bind(s, reinterpret_cast<struct sockaddr*>(&sll), sizeof sll) < 0) return fail("bind(send socket)");
  txFd_ = s;
  return 0;
}

// ---------------------------------------------------------------------------------------------
// openTap / openPacket

namespace {

bool GetOptBool(Napi::Env env, Napi::Object o, const char* key, bool dflt, bool* out) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) {
    *out = dflt;
    return true;
  }
  if (!v.IsBoolean()) {
    ThrowType(env, std::string("option ") + key + " must be a boolean");
    return false;
  }
  *out = v.As<Napi::Boolean>().Value();
  return true;
}

bool GetOptInt(Napi::Object o, const char* key, int64_t dflt, int64_t min, int64_t max, int64_t* out) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) {
    *out = dflt;
    return true;
  }
  return GetInt(v, (std::string("option ") + key).c_str(), min, max, out);
}

}  // namespace

Napi::Value NewPort(Napi::Env env, int fd, int ifindex, const std::string& name, Port::Kind kind) {
  AddonData* d = env.GetInstanceData<AddonData>();
  Napi::Object o = d->portCtor.New({Napi::External<int>::New(env, &kCtorToken), Napi::Number::New(env, fd),
                                    Napi::Number::New(env, ifindex), Napi::String::New(env, name),
                                    Napi::Number::New(env, kind)});
  if (env.IsExceptionPending() || o.IsEmpty()) {
    ::close(fd);
    return env.Undefined();
  }
  return o;
}


// openTap(name, { persist, owner, group })
Napi::Value OpenTap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name;
  if (!GetIfName(info, 0, &name)) return env.Undefined();
  bool persist = false;
  int64_t owner = -1, group = -1;
  if (info.Length() >= 2 && !info[1].IsUndefined()) {
    if (!info[1].IsObject()) {
      ThrowType(env, "openTap: options must be an object");
      return env.Undefined();
    }
    Napi::Object o = info[1].As<Napi::Object>();
    if (!GetOptBool(env, o, "persist", false, &persist)) return env.Undefined();
    if (!GetOptInt(o, "owner", -1, -1, 0xfffffffe, &owner)) return env.Undefined();
    if (!GetOptInt(o, "group", -1, -1, 0xfffffffe, &group)) return env.Undefined();
  }

  int fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    ThrowSysError(env, errno, "open(/dev/net/tun)", name);
    return env.Undefined();
  }
  auto fail = [&](const char* syscall, const std::string& ifn) {
    int e = errno;
    ::close(fd);
    ThrowSysError(env, e, syscall, ifn);
    return env.Undefined();
  };
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  std::memcpy(ifr.ifr_name, name.data(), name.size());
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) return fail("ioctl(TUNSETIFF)", name);
  std::string real(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));
  int hdrsz = static_cast<int>(kVnetHdrLen);
  if (ioctl(fd, TUNSETVNETHDRSZ, &hdrsz) < 0) return fail("ioctl(TUNSETVNETHDRSZ)", real);
  unsigned long offl = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
  if (ioctl(fd, TUNSETOFFLOAD, offl) < 0) return fail("ioctl(TUNSETOFFLOAD)", real);
  if (owner >= 0 && ioctl(fd, TUNSETOWNER, static_cast<unsigned long>(owner)) < 0)
    return fail("ioctl(TUNSETOWNER)", real);
  if (group >= 0 && ioctl(fd, TUNSETGROUP, static_cast<unsigned long>(group)) < 0)
    return fail("ioctl(TUNSETGROUP)", real);
  if (persist && ioctl(fd, TUNSETPERSIST, 1UL) < 0) return fail("ioctl(TUNSETPERSIST)", real);
  int e = 0;
  int ifindex = IfIndex(real, &e);
  if (ifindex <= 0) {
    errno = e;
    return fail("ioctl(SIOCGIFINDEX)", real);
  }
  return NewPort(env, fd, ifindex, real, Port::kTap);
}

// openPacket(name, { rcvbuf, sndbuf })
Napi::Value OpenPacket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name;
  if (!GetIfName(info, 0, &name)) return env.Undefined();
  int64_t rcvbuf = 0, sndbuf = 0;
  if (info.Length() >= 2 && !info[1].IsUndefined()) {
    if (!info[1].IsObject()) {
      ThrowType(env, "openPacket: options must be an object");
      return env.Undefined();
    }
    Napi::Object o = info[1].As<Napi::Object>();
    if (!GetOptInt(o, "rcvbuf", 0, 0, 0x3fffffff, &rcvbuf)) return env.Undefined();
    if (!GetOptInt(o, "sndbuf", 0, 0, 0x3fffffff, &sndbuf)) return env.Undefined();
  }
  int e = 0;
  int ifindex = IfIndex(name, &e);
  if (ifindex <= 0) {
    ThrowSysError(env, e, "ioctl(SIOCGIFINDEX)", name);
    return env.Undefined();
  }
  // Protocol 0: the socket receives nothing until bind() sets ETH_P_ALL on the one ifindex, so no
  // frame of another interface can be queued before the bind.
  int fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ThrowSysError(env, errno, "socket(AF_PACKET)", name);
    return env.Undefined();
  }
  auto fail = [&](const char* syscall) {
    int err = errno;
    ::close(fd);
    ThrowSysError(env, err, syscall, name);
    return env.Undefined();
  };
  int one = 1;
  if (setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) < 0) return fail("setsockopt(PACKET_VNET_HDR)");
  if (setsockopt(fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof one) < 0) return fail("setsockopt(PACKET_AUXDATA)");
  if (setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) < 0)
    return fail("setsockopt(PACKET_IGNORE_OUTGOING)");
  if (rcvbuf > 0) {
    int v = static_cast<int>(rcvbuf);
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v) < 0) return fail("setsockopt(SO_RCVBUFFORCE)");
  }
  if (sndbuf > 0) {
    int v = static_cast<int>(sndbuf);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof v) < 0) return fail("setsockopt(SO_SNDBUFFORCE)");
  }
  struct sockaddr_ll sll;
  std::memset(&sll, 0, sizeof sll);
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = ifindex;
  // Rings before bind(): until then the socket (protocol 0) has queued nothing that a ring reader
  // could mistake for the full copy of a frame that did not fit a slot (TP_STATUS_COPY).
  Napi::Value port = NewPort(env, fd, ifindex, name, Port::kPacket);
  if (port.IsUndefined()) return port;  // NewPort closed fd
  Port* p = Port::Unwrap(port.As<Napi::Object>());
  const char* ringSyscall = nullptr;
  int ringErr = p->SetupRing(&ringSyscall);
  auto failPort = [&](int err, const char* syscall) {
    p->CloseFd();
    ThrowSysError(env, err, syscall, name);
    return env.Undefined();
  };
  if (ringErr != 0) return failPort(ringErr, ringSyscall);
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&sll), sizeof sll) < 0) return failPort(errno, "bind");
  struct packet_mreq mr;
  std::memset(&mr, 0, sizeof mr);
  mr.mr_ifindex = ifindex;
  mr.mr_type = PACKET_MR_PROMISC;
  if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) < 0)
    return failPort(errno, "setsockopt(PACKET_ADD_MEMBERSHIP)");
  const char* txSyscall = nullptr;
  int txErr = p->OpenTxSocket(&txSyscall);
  if (txErr != 0) return failPort(txErr, txSyscall);
  return port;
}

}  // namespace tb
