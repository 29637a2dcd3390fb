// tapbridge_native: rtnetlink link monitor (RawLinkMonitor in src/io/native-types.ts).
#include "common.h"

#include <sys/socket.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

namespace tb {

namespace {

constexpr size_t kNlBuf = 64 * 1024;
constexpr int kNlRcvBuf = 4 * 1024 * 1024;
constexpr int kMaxPollErrors = 8;

class LinkMonitor : public Napi::ObjectWrap<LinkMonitor> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "RawLinkMonitor",
                       {
                           InstanceMethod<&LinkMonitor::Dump>("dump"),
                           InstanceMethod<&LinkMonitor::Close>("close"),
                       });
  }

  // (token, cb, rcvbuf)
  explicit LinkMonitor(const Napi::CallbackInfo& info) : Napi::ObjectWrap<LinkMonitor>(info), env_(info.Env()) {
    Napi::Env env = info.Env();
    if (!FromAddon(info, 3, "RawLinkMonitor cannot be constructed from JS; use linkMonitor(cb)")) {
      closed_ = true;
      return;
    }
    if (!info[1].IsFunction() || !info[2].IsNumber()) {
      ThrowType(env, "RawLinkMonitor cannot be constructed from JS; use linkMonitor(cb)");
      closed_ = true;
      return;
    }
    fd_ = ::socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd_ < 0) {
      ThrowSysError(env, errno, "socket(AF_NETLINK)", "");
      closed_ = true;
      return;
    }
    // A bigger receive buffer makes ENOBUFS overruns rare during link storms; failing is harmless.
    // rcvbuf > 0 replaces the default (tests force overruns with a tiny buffer).
    int rb = info[2].As<Napi::Number>().Int32Value();
    if (rb <= 0) rb = kNlRcvBuf;
    if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &rb, sizeof rb) < 0)
      (void)setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rb, sizeof rb);
    struct sockaddr_nl sa;
    std::memset(&sa, 0, sizeof sa);
    sa.nl_family = AF_NETLINK;
    sa.nl_groups = RTMGRP_LINK;
    if (bind(fd_, reinterpret_cast<struct sockaddr*>(&sa), sizeof sa) < 0) {
      int e = errno;
      ::close(fd_);
      fd_ = -1;
      closed_ = true;
      ThrowSysError(env, e, "bind(NETLINK_ROUTE)", "");
      return;
    }
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
      DoClose(true);
      Napi::Error::New(env, "linkMonitor: no uv loop").ThrowAsJavaScriptException();
      return;
    }
    poll_ = new uv_poll_t;
    int r = uv_poll_init(loop, poll_, fd_);
    if (r < 0) {
      delete poll_;
      poll_ = nullptr;
      DoClose(true);
      ThrowSysError(env, -r, "uv_poll_init", "");
      return;
    }
    poll_->data = this;
    r = uv_poll_start(poll_, UV_READABLE, OnPoll);
    if (r < 0) {
      DoClose(true);
      ThrowSysError(env, -r, "uv_poll_start", "");
      return;
    }
    cb_ = Napi::Persistent(info[1].As<Napi::Function>());
    asyncCtx_ = std::make_unique<Napi::AsyncContext>(env, "tapbridge:linkmonitor", Napi::Object::New(env));
    buf_.resize(kNlBuf);
    Ref();  // alive while open
    refd_ = true;
  }

  ~LinkMonitor() override { DoClose(true); }

 private:
  Napi::Value Dump(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (closed_) {
      ThrowSysError(env, EBADF, "dump", "");
      return env.Undefined();
    }
    // dump(true): the caller gave up waiting for the dump in flight (its request or its error answer may
    // have been lost: an answer that does not fit in a full receive buffer is dropped): send a new one now
    const bool force = info.Length() >= 1 && info[0].IsBoolean() && info[0].As<Napi::Boolean>().Value();
    if (force) {
      dumping_ = false;
      redump_ = false;
    }
    if (dumping_ || redump_) {  // the kernel allows one dump per socket at a time (EBUSY): queue it
      redump_ = true;
      return env.Undefined();
    }
    int e = SendDump();
    if (e != 0) {
      ThrowSysError(env, e, "sendto(RTM_GETLINK)", "");
      return env.Undefined();
    }
    return env.Undefined();
  }

  int SendDump() {
    struct {
      struct nlmsghdr nh;
      struct ifinfomsg ifi;
    } req;
    std::memset(&req, 0, sizeof req);
    req.nh.nlmsg_len = sizeof req;
    req.nh.nlmsg_type = RTM_GETLINK;
    req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.nh.nlmsg_seq = ++seq_;
    req.ifi.ifi_family = AF_UNSPEC;
    struct sockaddr_nl sa;
    std::memset(&sa, 0, sizeof sa);
    sa.nl_family = AF_NETLINK;
    ssize_t r;
    do {
      r = sendto(fd_, &req, sizeof req, 0, reinterpret_cast<struct sockaddr*>(&sa), sizeof sa);
    } while (r < 0 && errno == EINTR);
    if (r < 0) return errno;
    dumping_ = true;
    dumpIntr_ = false;
    return 0;
  }

  // Sends a queued dump request; a failure is reported as an overrun (JS dumps again).
  bool Resend(Napi::Env env) {
    int e = SendDump();
    if (e != 0) return Emit(env, "dump_error", e, "", 0, 0, 0);
    return true;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    DoClose(false);
    return info.Env().Undefined();
  }

  void DoClose(bool fromDestructor) {
    if (fd_ < 0 && poll_ == nullptr && closed_) return;
    closed_ = true;
    if (poll_ != nullptr) {
      poll_->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
    }
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
    if (fromDestructor || inCallback_ == 0) {
      cb_.Reset();
      asyncCtx_.reset();
    }
    if (refd_ && !fromDestructor) {
      refd_ = false;
      Unref();
    }
  }

  static void OnPoll(uv_poll_t* h, int status, int /*events*/) {
    LinkMonitor* m = static_cast<LinkMonitor*>(h->data);
    if (m != nullptr) m->HandlePoll(status);
  }

  // Emits one event; returns false when the monitor got closed by the callback.
  // newNsid / newIfindex: IFLA_NEW_NETNSID / IFLA_NEW_IFINDEX of an RTM_DELLINK for a netdev that
  // moved into another namespace (the handover's moved TAPs), else -1.
  bool Emit(Napi::Env env, const char* type, int ifindex, const char* name, size_t nameLen, uint32_t flags,
            uint32_t mtu, int32_t newNsid = -1, int32_t newIfindex = -1) {
    napi_value argv[7] = {Napi::String::New(env, type), Napi::Number::New(env, ifindex),
                          Napi::String::New(env, name, nameLen), Napi::Number::New(env, flags),
                          Napi::Number::New(env, mtu), Napi::Number::New(env, newNsid),
                          Napi::Number::New(env, newIfindex)};
    cb_.MakeCallback(Value(), 7, argv, *asyncCtx_);
    HandlePendingException(env);
    return !closed_;
  }

  void HandlePoll(int status) {
    if (closed_) return;
    Napi::Env env(env_);
    Napi::HandleScope scope(env);
    Ref();
    inCallback_++;
    bool alive = true;
    if (status < 0) {
      // POLLERR: libuv stopped the watcher. On netlink the error is sk_err, usually ENOBUFS.
      int soerr = 0;
      socklen_t l = sizeof soerr;
      getsockopt(fd_, SOL_SOCKET, SO_ERROR, &soerr, &l);
      if (++pollErrors_ > kMaxPollErrors || uv_poll_start(poll_, UV_READABLE, OnPoll) < 0) {
        // Give up; report it as an overrun so JS re-dumps / notices. Polling stays stopped.
        uv_poll_stop(poll_);
        alive = Emit(env, "overrun", 0, "", 0, 0, 0);
      } else if (soerr == ENOBUFS) {
        // Multicast events were lost. A dump in progress is flow-controlled (its messages are never
        // dropped) and goes on: the dump() JS asks for now is queued and sent after its DONE.
        alive = Emit(env, "overrun", 0, "", 0, 0, 0);
      }
    } else {
      pollErrors_ = 0;
      alive = ReadAll(env);
    }
    inCallback_--;
    if (closed_ && inCallback_ == 0) {
      cb_.Reset();
      asyncCtx_.reset();
    }
    (void)alive;
    Unref();
  }

  bool ReadAll(Napi::Env env) {
    for (int loops = 0; loops < 256; loops++) {
      struct sockaddr_nl sa;
      struct iovec iov = {buf_.data(), buf_.size()};
      struct msghdr mh;
      std::memset(&mh, 0, sizeof mh);
      mh.msg_name = &sa;
      mh.msg_namelen = sizeof sa;
      mh.msg_iov = &iov;
      mh.msg_iovlen = 1;
      ssize_t n = recvmsg(fd_, &mh, MSG_DONTWAIT);
      if (n < 0) {
        int e = errno;
        if (e == EINTR) continue;
        if (e == EAGAIN || e == EWOULDBLOCK) return true;
        if (e == ENOBUFS) {
          // events lost; a running dump goes on (see HandlePoll)
          if (!Emit(env, "overrun", 0, "", 0, 0, 0)) return false;
          continue;
        }
        return true;  // unexpected; try again on the next wakeup
      }
      if (sa.nl_pid != 0) continue;  // only the kernel
      if (mh.msg_flags & MSG_TRUNC) {
        if (!Emit(env, "overrun", 0, "", 0, 0, 0)) return false;
        continue;
      }
      size_t len = static_cast<size_t>(n);
      for (struct nlmsghdr* nh = reinterpret_cast<struct nlmsghdr*>(buf_.data()); NLMSG_OK(nh, len);
           nh = NLMSG_NEXT(nh, len)) {
        const bool current = nh->nlmsg_seq == seq_;
        if (current && (nh->nlmsg_flags & NLM_F_DUMP_INTR)) dumpIntr_ = true;
        if (nh->nlmsg_type == NLMSG_DONE) {
          if (!current) {
            // The end of an older dump (one whose request we re-sent, or that made ours fail with
            // EBUSY): the kernel is free again, so send the queued request now. No 'done' for it.
            if (redump_ && !dumping_) {
              redump_ = false;
              if (!Resend(env)) return false;
            }
            continue;
          }
          dumping_ = false;
          bool intr = dumpIntr_;
          dumpIntr_ = false;
          if (redump_) {
            // a dump() was asked for while this one ran (after an overrun): its state is stale
            redump_ = false;
            if (!Resend(env)) return false;
            continue;
          }
          // An interrupted dump is inconsistent: tell JS to dump again.
          if (!Emit(env, intr ? "overrun" : "done", 0, "", 0, 0, 0)) return false;
          continue;
        }
        if (nh->nlmsg_type == NLMSG_ERROR) {
          if (!current || nh->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr))) continue;
          const struct nlmsgerr* ne = static_cast<const struct nlmsgerr*>(NLMSG_DATA(nh));
          if (ne->error == 0) continue;
          int e = ne->error < 0 ? -ne->error : ne->error;
          if (e == EBUSY) {
            // the kernel still runs an earlier dump on this socket: re-send after its DONE
            dumping_ = false;
            redump_ = true;
          } else {
            dumping_ = false;
          }
          if (!Emit(env, "dump_error", e, "", 0, 0, 0)) return false;
          continue;
        }
        if (nh->nlmsg_type != RTM_NEWLINK && nh->nlmsg_type != RTM_DELLINK) continue;
        if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifinfomsg))) continue;
        const struct ifinfomsg* ifi = static_cast<const struct ifinfomsg*>(NLMSG_DATA(nh));
        // AF_BRIDGE (and other families) report a device's membership of a kernel bridge: an
        // RTM_DELLINK with ifi_family AF_BRIDGE means it left the bridge, not that it was deleted.
        if (ifi->ifi_family != AF_UNSPEC) continue;
        const char* name = "";
        size_t nameLen = 0;
        uint32_t mtu = 0;
        int32_t newNsid = -1, newIfindex = -1;
        int alen = static_cast<int>(nh->nlmsg_len - NLMSG_LENGTH(sizeof(struct ifinfomsg)));
        for (const struct rtattr* a = IFLA_RTA(ifi); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
          if (a->rta_type == IFLA_IFNAME) {
            name = static_cast<const char*>(RTA_DATA(a));
            nameLen = strnlen(name, RTA_PAYLOAD(a));
          } else if (a->rta_type == IFLA_MTU && RTA_PAYLOAD(a) >= sizeof(uint32_t)) {
            std::memcpy(&mtu, RTA_DATA(a), sizeof mtu);
          } else if (a->rta_type == IFLA_NEW_NETNSID && RTA_PAYLOAD(a) >= sizeof(int32_t)) {
            std::memcpy(&newNsid, RTA_DATA(a), sizeof newNsid);
          } else if (a->rta_type == IFLA_NEW_IFINDEX && RTA_PAYLOAD(a) >= sizeof(int32_t)) {
            std::memcpy(&newIfindex, RTA_DATA(a), sizeof newIfindex);
          }
        }
        if (!Emit(env, nh->nlmsg_type == RTM_NEWLINK ? "new" : "del", ifi->ifi_index, name, nameLen, ifi->ifi_flags,
                  mtu, newNsid < 0 ? -1 : newNsid, newIfindex <= 0 ? -1 : newIfindex))
          return false;
      }
    }
    return true;
  }

  napi_env env_;
  int fd_ = -1;
  uv_poll_t* poll_ = nullptr;
  bool closed_ = false;
  bool refd_ = false;
  bool dumping_ = false;
  bool redump_ = false;
  bool dumpIntr_ = false;
  int inCallback_ = 0;
  int pollErrors_ = 0;
  uint32_t seq_ = 0;
  Napi::FunctionReference cb_;
  std::unique_ptr<Napi::AsyncContext> asyncCtx_;
  std::vector<uint8_t> buf_;
};

}  // namespace

Napi::Function InitLinkMonitor(Napi::Env env) { return LinkMonitor::Init(env); }

// linkMonitor(cb)
Napi::Value LinkMonitorNew(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsFunction()) {
    ThrowType(env, "linkMonitor(cb: (type, ifindex, name, flags, mtu) => void, rcvbuf?: number)");
    return env.Undefined();
  }
  int64_t rcvbuf = 0;
  if (info.Length() >= 2 && !info[1].IsUndefined() && !GetInt(info[1], "linkMonitor: rcvbuf", 0, 0x3fffffff, &rcvbuf))
    return env.Undefined();
  AddonData* d = env.GetInstanceData<AddonData>();
  Napi::Object o = d->linkMonCtor.New({Napi::External<int>::New(env, &kCtorToken), info[0],
                                       Napi::Number::New(env, static_cast<double>(rcvbuf))});
  if (env.IsExceptionPending()) return env.Undefined();
  return o;
}

}  // namespace tb
