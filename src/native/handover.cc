// tapbridge_native: fd handover between two daemons (SCM_RIGHTS over a Unix stream socket), adopting
// an inherited fd as a port, and classifying inherited fds. See native-notes/handover.md.
//
// Wire format of one handover, old daemon -> new daemon, on the control connection the new daemon
// opened (after its one JSON request line):
//
//   [header 16: "TBHO" | version u32 | nfds u32 | payload_len u32]   (host byte order: same host)
//   [1 byte per chunk of <= kFdsPerChunk fds, each byte sent with its chunk as SCM_RIGHTS]
//   [payload_len bytes of JSON]
//
// Anything else first (a JSON-RPC error line from a daemon that refuses or does not know the
// method) is returned to JS as text. Every count and length is range-checked against a cap before
// anything is read or allocated; every wait has a deadline.
#include "common.h"
#include "port.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <net/if.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>

#include <cstring>
#include <string>
#include <vector>

namespace tb {

namespace {

constexpr char kMagic[4] = {'T', 'B', 'H', 'O'};
constexpr size_t kHeaderLen = 16;
constexpr uint32_t kFdsPerChunk = 64;
constexpr uint32_t kMaxFds = 4096;
constexpr uint32_t kMaxPayload = 128u << 20;  // 128 MiB: an FDB of 1M entries as JSON fits
constexpr size_t kMaxTextReply = 64 * 1024;
constexpr int64_t kMaxTimeoutMs = 120000;

int64_t NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// Waits until fd is ready for `events` or the deadline passes. 0 ok, else errno (ETIMEDOUT).
int WaitFd(int fd, short events, int64_t deadlineMs) {
  for (;;) {
    int64_t left = deadlineMs - NowMs();
    if (left <= 0) return ETIMEDOUT;
    struct pollfd p = {fd, events, 0};
    int r = ::poll(&p, 1, static_cast<int>(left));
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (r == 0) return ETIMEDOUT;
    if (p.revents & (POLLERR | POLLNVAL)) return EPIPE;
    return 0;  // readable/writable, or POLLHUP: the read or write says what happened
  }
}

// sendmsg of all of buf (with fds on the first byte when nfds > 0); 0 or errno.
int SendAll(int sock, const uint8_t* buf, size_t len, const int* fds, uint32_t nfds, int64_t deadlineMs) {
  alignas(struct cmsghdr) uint8_t cbuf[CMSG_SPACE(sizeof(int) * kFdsPerChunk)];
  size_t done = 0;
  while (done < len) {
    struct iovec iov = {const_cast<uint8_t*>(buf + done), len - done};
    struct msghdr mh;
    std::memset(&mh, 0, sizeof mh);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    if (nfds > 0 && done == 0) {
      std::memset(cbuf, 0, sizeof cbuf);
      mh.msg_control = cbuf;
      mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
      struct cmsghdr* c = CMSG_FIRSTHDR(&mh);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
      std::memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    ssize_t n = ::sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      int e = errno;
      if (e == EINTR) continue;
      if (e == EAGAIN || e == EWOULDBLOCK) {
        int w = WaitFd(sock, POLLOUT, deadlineMs);
        if (w != 0) return w;
        continue;
      }
      return e;
    }
    done += static_cast<size_t>(n);
  }
  return 0;
}

// Reads exactly len bytes; fds arriving with them are appended to *fds (CLOEXEC). 0 or errno
// (ECONNRESET when the peer closed early, EPROTO on truncated ancillary data or too many fds).
int RecvAll(int sock, uint8_t* buf, size_t len, std::vector<int>* fds, int64_t deadlineMs) {
  alignas(struct cmsghdr) uint8_t cbuf[CMSG_SPACE(sizeof(int) * kFdsPerChunk)];
  size_t done = 0;
  while (done < len) {
    int w = WaitFd(sock, POLLIN, deadlineMs);
    if (w != 0) return w;
    struct iovec iov = {buf + done, len - done};
    struct msghdr mh;
    std::memset(&mh, 0, sizeof mh);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf;
    mh.msg_controllen = sizeof cbuf;
    ssize_t n = ::recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0) {
      int e = errno;
      if (e == EINTR || e == EAGAIN || e == EWOULDBLOCK) continue;
      return e;
    }
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0)) continue;
      size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < k; i++) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        fds->push_back(fd);
      }
    }
    if (mh.msg_flags & MSG_CTRUNC) return EPROTO;
    if (fds->size() > kMaxFds) return EPROTO;
    if (n == 0) return ECONNRESET;
    done += static_cast<size_t>(n);
  }
  return 0;
}

void CloseAll(const std::vector<int>& fds) {
  for (int fd : fds) ::close(fd);
}

bool GetFdArg(const Napi::CallbackInfo& info, size_t idx, int* out) {
  int64_t v;
  if (info.Length() <= idx) {
    ThrowType(info.Env(), "fd argument missing");
    return false;
  }
  if (!GetInt(info[idx], "fd", 0, 0x7fffffff, &v)) return false;
  *out = static_cast<int>(v);
  return true;
}

bool GetTimeout(const Napi::CallbackInfo& info, size_t idx, int64_t* deadlineMs) {
  int64_t t;
  if (info.Length() <= idx) {
    ThrowType(info.Env(), "timeoutMs argument missing");
    return false;
  }
  if (!GetInt(info[idx], "timeoutMs", 1, kMaxTimeoutMs, &t)) return false;
  *deadlineMs = NowMs() + t;
  return true;
}

void SetNonblockCloexec(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  int fdf = fcntl(fd, F_GETFD);
  if (fdf >= 0) fcntl(fd, F_SETFD, fdf | FD_CLOEXEC);
}

int SockOpt(int fd, int opt) {
  int v = -1;
  socklen_t l = sizeof v;
  if (getsockopt(fd, SOL_SOCKET, opt, &v, &l) < 0) return -1;
  return v;
}

}  // namespace

// handoverSend(sock, fds: number[], payload: Uint8Array, version, timeoutMs): old daemon side.
// The socket may be non-blocking (a Node connection's fd); the call waits with poll() up to the
// deadline, so the caller's event loop is blocked for at most timeoutMs.
static Napi::Value HandoverSend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sock;
  if (!GetFdArg(info, 0, &sock)) return env.Undefined();
  if (info.Length() < 5 || !info[1].IsArray() || !info[2].IsTypedArray() ||
      info[2].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowType(env, "handoverSend(sock, fds: number[], payload: Uint8Array, version, timeoutMs)");
    return env.Undefined();
  }
  Napi::Array arr = info[1].As<Napi::Array>();
  if (arr.Length() > kMaxFds) {
    ThrowType(env, "handoverSend: at most " + std::to_string(kMaxFds) + " fds");
    return env.Undefined();
  }
  std::vector<int> fds;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    int64_t v;
    if (!GetInt(arr.Get(i), "fds[i]", 0, 0x7fffffff, &v)) return env.Undefined();
    fds.push_back(static_cast<int>(v));
  }
  Napi::Uint8Array payload = info[2].As<Napi::Uint8Array>();
  if (payload.ByteLength() > kMaxPayload) {
    ThrowType(env, "handoverSend: payload larger than " + std::to_string(kMaxPayload) + " bytes");
    return env.Undefined();
  }
  int64_t version;
  if (!GetInt(info[3], "version", 1, 0x7fffffff, &version)) return env.Undefined();
  int64_t deadline;
  if (!GetTimeout(info, 4, &deadline)) return env.Undefined();

  uint8_t hdr[kHeaderLen];
  uint32_t v32 = static_cast<uint32_t>(version), n32 = static_cast<uint32_t>(fds.size()),
           p32 = static_cast<uint32_t>(payload.ByteLength());
  std::memcpy(hdr, kMagic, 4);
  std::memcpy(hdr + 4, &v32, 4);
  std::memcpy(hdr + 8, &n32, 4);
  std::memcpy(hdr + 12, &p32, 4);
  int e = SendAll(sock, hdr, kHeaderLen, nullptr, 0, deadline);
  for (size_t i = 0; e == 0 && i < fds.size(); i += kFdsPerChunk) {
    uint32_t k = static_cast<uint32_t>(std::min<size_t>(kFdsPerChunk, fds.size() - i));
    uint8_t one = 'F';
    e = SendAll(sock, &one, 1, fds.data() + i, k, deadline);
  }
  if (e == 0 && p32 > 0) e = SendAll(sock, payload.Data(), p32, nullptr, 0, deadline);
  if (e != 0) ThrowSysError(env, e, "sendmsg(handover)", "control socket");
  return env.Undefined();
}

// handoverReceive(path, request: string, timeoutMs): new daemon side. Connects to the control socket,
// writes the request, reads the answer. Returns {sock, version, fds, payload} for a handover or
// {sock, text} for any other answer (a JSON-RPC error line). The caller closes sock (closeFd).
static Napi::Value HandoverReceive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsString()) {
    ThrowType(env, "handoverReceive(path: string, request: string, timeoutMs: number)");
    return env.Undefined();
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  std::string request = info[1].As<Napi::String>().Utf8Value();
  struct sockaddr_un sa;
  if (path.empty() || path.size() >= sizeof sa.sun_path || path.find('\0') != std::string::npos) {
    ThrowType(env, "handoverReceive: path must be 1.." + std::to_string(sizeof sa.sun_path - 1) + " bytes");
    return env.Undefined();
  }
  if (request.size() > kMaxTextReply) {
    ThrowType(env, "handoverReceive: request too long");
    return env.Undefined();
  }
  int64_t deadline;
  if (!GetTimeout(info, 2, &deadline)) return env.Undefined();

  int sock = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (sock < 0) {
    ThrowSysError(env, errno, "socket(AF_UNIX)", path);
    return env.Undefined();
  }
  std::vector<int> fds;
  auto fail = [&](int e, const char* what) {
    CloseAll(fds);
    ::close(sock);
    ThrowSysError(env, e, what, path);
    return env.Undefined();
  };
  std::memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, path.data(), path.size());
  if (::connect(sock, reinterpret_cast<struct sockaddr*>(&sa), sizeof sa) < 0) {
    if (errno != EINPROGRESS && errno != EAGAIN) return fail(errno, "connect");
    int w = WaitFd(sock, POLLOUT, deadline);
    if (w != 0) return fail(w, "connect");
  }
  int e = SendAll(sock, reinterpret_cast<const uint8_t*>(request.data()), request.size(), nullptr, 0, deadline);
  if (e != 0) return fail(e, "write(handover request)");

  uint8_t hdr[kHeaderLen];
  e = RecvAll(sock, hdr, 4, &fds, deadline);
  if (e != 0) return fail(e, "recvmsg(handover)");
  if (std::memcmp(hdr, kMagic, 4) != 0) {
    // A text answer: read up to its newline.
    std::string text(reinterpret_cast<char*>(hdr), 4);
    while (text.find('\n') == std::string::npos && text.size() < kMaxTextReply) {
      uint8_t c;
      e = RecvAll(sock, &c, 1, &fds, deadline);
      if (e != 0) break;
      text.push_back(static_cast<char>(c));
    }
    CloseAll(fds);  // nobody sends fds with a text answer
    Napi::Object o = Napi::Object::New(env);
    o.Set("sock", Napi::Number::New(env, sock));
    o.Set("text", Napi::String::New(env, text));
    return o;
  }
  e = RecvAll(sock, hdr + 4, kHeaderLen - 4, &fds, deadline);
  if (e != 0) return fail(e, "recvmsg(handover header)");
  uint32_t version, nfds, plen;
  std::memcpy(&version, hdr + 4, 4);
  std::memcpy(&nfds, hdr + 8, 4);
  std::memcpy(&plen, hdr + 12, 4);
  if (nfds > kMaxFds || plen > kMaxPayload) return fail(EPROTO, "handover header (fd count or payload length out of range)");
  uint32_t chunks = (nfds + kFdsPerChunk - 1) / kFdsPerChunk;
  std::vector<uint8_t> marks(chunks);
  if (chunks > 0) {
    e = RecvAll(sock, marks.data(), chunks, &fds, deadline);
    if (e != 0) return fail(e, "recvmsg(handover fds)");
  }
  if (fds.size() != nfds) return fail(EPROTO, "handover fds (count differs from the header)");
  Napi::Buffer<uint8_t> payload = Napi::Buffer<uint8_t>::New(env, plen);
  if (plen > 0) {
    e = RecvAll(sock, payload.Data(), plen, &fds, deadline);
    if (e != 0) return fail(e, "recvmsg(handover payload)");
    if (fds.size() != nfds) return fail(EPROTO, "handover payload (fds arrived with it)");
  }
  Napi::Object o = Napi::Object::New(env);
  Napi::Array fa = Napi::Array::New(env, fds.size());
  for (uint32_t i = 0; i < fds.size(); i++) fa.Set(i, Napi::Number::New(env, fds[i]));
  o.Set("sock", Napi::Number::New(env, sock));
  o.Set("version", Napi::Number::New(env, version));
  o.Set("fds", fa);
  o.Set("payload", payload);
  return o;
}

// handoverWrite(sock, text, timeoutMs): writes all of text (the new daemon's answer line).
static Napi::Value HandoverWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sock;
  if (!GetFdArg(info, 0, &sock)) return env.Undefined();
  if (info.Length() < 3 || !info[1].IsString()) {
    ThrowType(env, "handoverWrite(sock, text, timeoutMs)");
    return env.Undefined();
  }
  std::string text = info[1].As<Napi::String>().Utf8Value();
  int64_t deadline;
  if (!GetTimeout(info, 2, &deadline)) return env.Undefined();
  int e = SendAll(sock, reinterpret_cast<const uint8_t*>(text.data()), text.size(), nullptr, 0, deadline);
  if (e != 0) ThrowSysError(env, e, "write(handover answer)", "control socket");
  return env.Undefined();
}

// closeFd(fd): closes an fd this process received and does not use.
static Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  int fd;
  if (!GetFdArg(info, 0, &fd)) return info.Env().Undefined();
  ::close(fd);
  return info.Env().Undefined();
}

// fdInfo(fd): what an inherited fd is.
//   {type: "tap", ifname, ifindex}         a TAP fd (TUNGETIFF); ifindex 0 when not in this namespace
//   {type: "packet", ifname, ifindex}      an AF_PACKET SOCK_RAW socket (getsockname)
//   {type: "unix", listening, path}        an AF_UNIX stream socket
//   {type: "other"}                        anything else; {type: "closed"} for EBADF
static Napi::Value FdInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!GetFdArg(info, 0, &fd)) return env.Undefined();
  Napi::Object o = Napi::Object::New(env);
  if (fcntl(fd, F_GETFD) < 0) {
    o.Set("type", "closed");
    return o;
  }
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  if (ioctl(fd, TUNGETIFF, &ifr) == 0) {
    std::string name(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));
    int e = 0;
    int ifindex = IfIndex(name, &e);
    o.Set("type", (ifr.ifr_flags & IFF_TAP) ? "tap" : "tun");
    o.Set("ifname", name);
    o.Set("ifindex", ifindex);
    o.Set("vnetHdr", (ifr.ifr_flags & IFF_VNET_HDR) != 0);
    return o;
  }
  int domain = SockOpt(fd, SO_DOMAIN);
  int type = SockOpt(fd, SO_TYPE);
  if (domain == AF_PACKET && type == SOCK_RAW) {
    struct sockaddr_ll sll;
    socklen_t l = sizeof sll;
    std::memset(&sll, 0, sizeof sll);
    char name[IF_NAMESIZE] = {0};
    if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&sll), &l) == 0 && sll.sll_ifindex > 0) {
      if (if_indextoname(static_cast<unsigned>(sll.sll_ifindex), name) == nullptr) name[0] = '\0';
    }
    o.Set("type", "packet");
    o.Set("ifname", std::string(name));
    o.Set("ifindex", sll.sll_ifindex);
    return o;
  }
  if (domain == AF_UNIX && type == SOCK_STREAM) {
    struct sockaddr_un sa;
    socklen_t l = sizeof sa;
    std::memset(&sa, 0, sizeof sa);
    std::string path;
    if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&sa), &l) == 0 && l > offsetof(struct sockaddr_un, sun_path) &&
        sa.sun_path[0] != '\0') {
      path.assign(sa.sun_path, strnlen(sa.sun_path, sizeof sa.sun_path));
    }
    o.Set("type", "unix");
    o.Set("listening", SockOpt(fd, SO_ACCEPTCONN) == 1);
    o.Set("path", path);
    return o;
  }
  o.Set("type", "other");
  return o;
}

// adoptFd(fd, kind: "tap" | "packet", name, ifindex): wraps an inherited fd as a RawPort after
// checking that it is what the caller says (a TAP with vnet headers / an AF_PACKET raw socket).
// The fd is made non-blocking and close-on-exec; TUNSETVNETHDRSZ 10 and TUNSETOFFLOAD are set
// again on a TAP (harmless when they already are). On failure the fd is NOT closed (the caller
// decides). For a packet socket, ifindex is taken from getsockname.
static Napi::Value AdoptFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!GetFdArg(info, 0, &fd)) return env.Undefined();
  if (info.Length() < 4 || !info[1].IsString()) {
    ThrowType(env, "adoptFd(fd, kind: 'tap' | 'packet', name, ifindex)");
    return env.Undefined();
  }
  std::string kind = info[1].As<Napi::String>().Utf8Value();
  std::string name;
  if (!GetIfName(info, 2, &name)) return env.Undefined();
  int64_t ifindex64;
  if (!GetInt(info[3], "ifindex", 0, 0x7fffffff, &ifindex64)) return env.Undefined();
  int ifindex = static_cast<int>(ifindex64);
  if (kind == "tap") {
    struct ifreq ifr;
    std::memset(&ifr, 0, sizeof ifr);
    if (ioctl(fd, TUNGETIFF, &ifr) < 0) {
      ThrowSysError(env, errno, "ioctl(TUNGETIFF) on inherited fd", name);
      return env.Undefined();
    }
    if (!(ifr.ifr_flags & IFF_TAP) || !(ifr.ifr_flags & IFF_NO_PI) || !(ifr.ifr_flags & IFF_VNET_HDR)) {
      ThrowSysError(env, EPROTO, "inherited fd is not a TAP with IFF_NO_PI | IFF_VNET_HDR", name);
      return env.Undefined();
    }
    int hdrsz = static_cast<int>(kVnetHdrLen);
    if (ioctl(fd, TUNSETVNETHDRSZ, &hdrsz) < 0) {
      ThrowSysError(env, errno, "ioctl(TUNSETVNETHDRSZ)", name);
      return env.Undefined();
    }
    unsigned long offl = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
    if (ioctl(fd, TUNSETOFFLOAD, offl) < 0) {
      ThrowSysError(env, errno, "ioctl(TUNSETOFFLOAD)", name);
      return env.Undefined();
    }
    SetNonblockCloexec(fd);
    return NewPort(env, fd, ifindex, name, Port::kTap);
  }
  if (kind == "packet") {
    if (SockOpt(fd, SO_DOMAIN) != AF_PACKET || SockOpt(fd, SO_TYPE) != SOCK_RAW) {
      ThrowSysError(env, EPROTO, "inherited fd is not an AF_PACKET SOCK_RAW socket", name);
      return env.Undefined();
    }
    struct sockaddr_ll sll;
    socklen_t l = sizeof sll;
    std::memset(&sll, 0, sizeof sll);
    if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&sll), &l) < 0) {
      ThrowSysError(env, errno, "getsockname(inherited AF_PACKET)", name);
      return env.Undefined();
    }
    char bound[IF_NAMESIZE] = {0};
    if (sll.sll_ifindex <= 0 || if_indextoname(static_cast<unsigned>(sll.sll_ifindex), bound) == nullptr ||
        name != bound) {
      ThrowSysError(env, ENODEV, "inherited AF_PACKET socket is bound to ifindex " + std::to_string(sll.sll_ifindex) +
                                     " (" + bound + "), not to", name);
      return env.Undefined();
    }
    SetNonblockCloexec(fd);
    Napi::Value port = NewPort(env, fd, sll.sll_ifindex, name, Port::kPacket);
    if (port.IsUndefined()) return port;
    Port* p = Port::Unwrap(port.As<Napi::Object>());
    const char* syscall = nullptr;
    int e = p->AdoptRing(&syscall);
    if (e == 0) e = p->OpenTxSocket(&syscall);
    if (e != 0) {
      p->Abandon();
      ThrowSysError(env, e, syscall, name);
      return env.Undefined();
    }
    return port;
  }
  ThrowType(env, "adoptFd: kind must be 'tap' or 'packet'");
  return env.Undefined();
}

void InitHandover(Napi::Env env, Napi::Object exports) {
  exports.Set("handoverSend", Napi::Function::New(env, HandoverSend, "handoverSend"));
  exports.Set("handoverReceive", Napi::Function::New(env, HandoverReceive, "handoverReceive"));
  exports.Set("handoverWrite", Napi::Function::New(env, HandoverWrite, "handoverWrite"));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
  exports.Set("fdInfo", Napi::Function::New(env, FdInfo, "fdInfo"));
  exports.Set("adoptFd", Napi::Function::New(env, AdoptFd, "adoptFd"));
}

}  // namespace tb
