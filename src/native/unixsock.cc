// The control socket's listening fd, owned here so the daemon can stop accepting without
// closing it: a Node server handle gets a dup() of the fd; closing that handle (over the client
// cap) leaves the socket listening, so the kernel's backlog queues new clients until a new handle
// on another dup() accepts again. Node cannot dup an fd, and a Node-bound Unix socket is unlinked
// when its handle closes, hence these three small calls.
//
//   listenUnix(path, backlog) -> fd   socket(AF_UNIX, SOCK_STREAM|CLOEXEC), bind under umask 0177,
//                                      chmod 0600, listen. The path must not exist.
//   dupFd(fd) -> fd                   fcntl(F_DUPFD_CLOEXEC)
//   closeFd(fd)                       close
#include "common.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tb {
namespace {

bool GetFd(const Napi::CallbackInfo& info, size_t idx, int* out) {
  int64_t v;
  if (info.Length() <= idx) {
    ThrowType(info.Env(), "fd must be a number");
    return false;
  }
  if (!GetInt(info[idx], "fd", 0, 0x7fffffff, &v)) return false;
  *out = static_cast<int>(v);
  return true;
}

Napi::Value ListenUnix(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString()) {
    ThrowType(env, "listenUnix(path: string, backlog: number)");
    return env.Undefined();
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int64_t backlog;
  if (!GetInt(info[1], "backlog", 1, 65535, &backlog)) return env.Undefined();
  struct sockaddr_un sa;
  std::memset(&sa, 0, sizeof sa);
  if (path.empty() || path.size() >= sizeof sa.sun_path || path.find('\0') != std::string::npos) {
    ThrowType(env, "listenUnix: path must be 1.." + std::to_string(sizeof sa.sun_path - 1) + " bytes");
    return env.Undefined();
  }
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, path.data(), path.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ThrowSysError(env, errno, "socket(AF_UNIX)", path);
    return env.Undefined();
  }
  mode_t old = umask(0177);
  int r = bind(fd, reinterpret_cast<struct sockaddr*>(&sa), sizeof sa);
  int e = errno;
  umask(old);
  if (r < 0) {
    close(fd);
    ThrowSysError(env, e, "bind", path);
    return env.Undefined();
  }
  if (chmod(path.c_str(), 0600) < 0 || listen(fd, static_cast<int>(backlog)) < 0) {
    e = errno;
    unlink(path.c_str());
    close(fd);
    ThrowSysError(env, e, "listen", path);
    return env.Undefined();
  }
  return Napi::Number::New(env, fd);
}

Napi::Value DupFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!GetFd(info, 0, &fd)) return env.Undefined();
  int n = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (n < 0) {
    ThrowSysError(env, errno, "fcntl(F_DUPFD_CLOEXEC)", std::to_string(fd));
    return env.Undefined();
  }
  return Napi::Number::New(env, n);
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!GetFd(info, 0, &fd)) return env.Undefined();
  if (close(fd) < 0 && errno != EINTR) ThrowSysError(env, errno, "close", std::to_string(fd));
  return env.Undefined();
}

}  // namespace

void InitUnixSock(Napi::Env env, Napi::Object exports) {
  exports.Set("listenUnix", Napi::Function::New(env, ListenUnix, "listenUnix"));
  exports.Set("dupFd", Napi::Function::New(env, DupFd, "dupFd"));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
}

}  // namespace tb
