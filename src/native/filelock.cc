// tapbridge_native: flock(2) for the daemon's state file lock (Node has no flock).
//
//   flockExclusive(fd) -> true when this open file description now holds LOCK_EX, false when another
//   one holds it (EWOULDBLOCK). Non-blocking: a second daemon on the same state file fails at start-up
//   instead of waiting. The lock lives as long as the fd (and any dup or SCM_RIGHTS copy of it) stays open.
#include "common.h"

#include <sys/file.h>

#include <cerrno>

namespace tb {

namespace {

Napi::Value FlockExclusive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t fd = 0;
  if (info.Length() < 1 || !GetInt(info[0], "fd", 0, 0x7fffffff, &fd)) {
    if (!env.IsExceptionPending()) ThrowType(env, "fd must be a number");
    return env.Undefined();
  }
  for (;;) {
    if (::flock(static_cast<int>(fd), LOCK_EX | LOCK_NB) == 0) return Napi::Boolean::New(env, true);
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK) return Napi::Boolean::New(env, false);
    ThrowSysError(env, errno, "flock", "fd " + std::to_string(fd));
    return env.Undefined();
  }
}

}  // namespace

void InitFileLock(Napi::Env env, Napi::Object exports) {
  exports.Set("flockExclusive", Napi::Function::New(env, FlockExclusive, "flockExclusive"));
}

}  // namespace tb
