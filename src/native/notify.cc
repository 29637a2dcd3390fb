// tapbridge_native: sd_notify(3) datagrams to the service manager (Node has no unix datagram sockets).
//
//   sdNotify(path: string, state: string, fds?: number[]): void
//
// `path` is $NOTIFY_SOCKET: a filesystem path ("/run/systemd/notify") or an abstract-namespace name written with a
// leading "@" (the "@" becomes the NUL byte, and the address length covers only the name, as sd_notify does). `state`
// is newline-separated assignments ("READY=1\nSTATUS=..."). `fds` are passed along with SCM_RIGHTS (the restarts
// issue's "FDSTORE=1"); the kernel duplicates them into the receiver, ours stay open.
//
// One short-lived SOCK_DGRAM socket per call: a few messages every few seconds, never on the per-frame path.
// Errors throw with errno and the syscall (ifname holds the socket path); EAGAIN is reported, not retried (the
// receiver's queue is full: the caller counts it and goes on).
#include "common.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace tb {

namespace {

// SCM_RIGHTS carries at most SCM_MAX_FD (253) descriptors per message.
constexpr uint32_t kMaxNotifyFds = 253;
// A notify message is a handful of short lines; systemd itself reads at most a page-ish per datagram (NOTIFY_BUFFER_MAX
// 4096 in systemd 252).
constexpr size_t kMaxNotifyState = 4096;

Napi::Value SdNotify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) {
    ThrowType(env, "sdNotify(path: string, state: string, fds?: number[])");
    return env.Undefined();
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  std::string state = info[1].As<Napi::String>().Utf8Value();

  struct sockaddr_un addr;
  std::memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (path.size() < 2 || (path[0] != '/' && path[0] != '@')) {
    ThrowType(env, "sdNotify: path must be absolute (/...) or abstract (@...), got '" + path + "'");
    return env.Undefined();
  }
  if (path.size() > sizeof addr.sun_path - (path[0] == '/' ? 1 : 0) || path.find('\0') != std::string::npos) {
    ThrowType(env, "sdNotify: path longer than " + std::to_string(sizeof addr.sun_path - 1) + " bytes or holds a NUL: '" + path + "'");
    return env.Undefined();
  }
  if (state.empty() || state.size() > kMaxNotifyState) {
    ThrowType(env, "sdNotify: state must be 1.." + std::to_string(kMaxNotifyState) + " bytes");
    return env.Undefined();
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (path[0] == '@') addr.sun_path[0] = '\0';
  socklen_t addrLen = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + path.size() + (path[0] == '/' ? 1 : 0));

  std::vector<int> fds;
  if (info.Length() >= 3 && !info[2].IsUndefined() && !info[2].IsNull()) {
    if (!info[2].IsArray()) {
      ThrowType(env, "sdNotify: fds must be an array of file descriptors");
      return env.Undefined();
    }
    Napi::Array list = info[2].As<Napi::Array>();
    if (list.Length() > kMaxNotifyFds) {
      ThrowType(env, "sdNotify: at most " + std::to_string(kMaxNotifyFds) + " fds per message");
      return env.Undefined();
    }
    for (uint32_t i = 0; i < list.Length(); i++) {
      int64_t fd;
      if (!GetInt(list.Get(i), "sdNotify: fd", 0, 0x7fffffff, &fd)) return env.Undefined();
      fds.push_back(static_cast<int>(fd));
    }
  }

  int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0) {
    ThrowSysError(env, errno, "socket(AF_UNIX)", path);
    return env.Undefined();
  }
  struct iovec iov;
  iov.iov_base = const_cast<char*>(state.data());
  iov.iov_len = state.size();
  struct msghdr msg;
  std::memset(&msg, 0, sizeof msg);
  msg.msg_name = &addr;
  msg.msg_namelen = addrLen;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control;
  if (!fds.empty()) {
    control.assign(CMSG_SPACE(sizeof(int) * fds.size()), 0);
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n;
  do {
    n = sendmsg(s, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  int err = errno;
  ::close(s);
  if (n < 0) {
    ThrowSysError(env, err, "sendmsg(NOTIFY_SOCKET)", path);
    return env.Undefined();
  }
  return env.Undefined();
}

}  // namespace

void InitNotify(Napi::Env env, Napi::Object exports) {
  exports.Set("sdNotify", Napi::Function::New(env, SdNotify, "sdNotify"));
}

}  // namespace tb
