// tapbridge_native: direct polling. While only frames move, the data path runs as a JS loop that
// waits for frames itself (epoll_wait on libuv's own fd), instead of going round the libuv loop and
// entering JS from C for every batch.
//
// Why (measured 2026-12-01, scripts/bench/README.md "Latency experiments"): 1000 pings through two
// TAPs and a trivial forwarder cost the forwarder 111 ms of CPU in C, 159 ms in a JS loop blocking in
// a native wait, 183 ms in a C loop calling JS per batch, 210 ms as a uv_poll callback, and 270 ms
// through this addon's uv_poll path; the RTT followed (0.16, 0.20, 0.22, 0.24, 0.30 ms). On this PVM
// guest each of those layers runs with cold caches after every sleep.
//
// How: every started port stays registered in libuv (its uv_poll, unchanged: the fallback path).
// A uv_prepare handle runs right before libuv would block in epoll_wait on its backend fd L. When
// libuv has nothing else to do, it calls the JS pump (src/io/native.ts) once; the pump loops on
// directPollWait(), which waits in epoll_wait(L) itself, with the timeout of libuv's next timer, and
// looks at what is ready. libuv's watchers are level-triggered, so an event seen here is not consumed:
// libuv sees it again in its own poll. The ports' events it serves itself: it reads one port's batch
// into the slab, exactly as the uv_poll path does, and returns it to the pump, which hands it to that
// port's onBatch (so the port is drained and libuv never sees it ready). It returns < 0 (the pump
// returns) when:
//   - an fd other than one of our ports is ready: a control client, a signal, a thread-pool
//     completion, netlink (after the ports that were ready with it have been served);
//   - a timer is due, an idle or closing handle or a pending callback exists (uv_backend_timeout 0),
//     or a watcher change is queued (a socket write that now waits for POLLOUT);
//   - a port reports EPOLLERR/EPOLLHUP or a read fails: the uv_poll path reads the fd again and
//     reports the error (one place that counts and stops);
//   - the pump has run for kMaxPumpNs without sleeping, so timers and ticks are never held up longer.
// libuv's clock (uv_now, which Node's timers start from) is updated after every wait.
// (A first version kept the ports in an epoll set of its own that also held L; that set at times
// reported L without the port that made L ready, so the loop spun. Waiting on L alone has one set
// of events and no nesting.)
//
// The one rule this puts on the frame path (src/bridge/, src/observe/): it must not leave
// process.nextTick callbacks or promise reactions behind, because those run only when the pump
// returns. Work to do after a batch uses setImmediate (capture does), which starts an idle handle, so
// the next directPollWait returns to libuv at once. Logging is synchronous (src/log.ts).
//
// Bounds: one prepare handle and one fixed event array per addon instance; a port table indexed by
// fd (fds >= kMaxFd stay on the libuv path). Busy-polling (busypoll.cc) keeps its uv_idle handle:
// while a window is open uv_backend_timeout is 0, so the pump is not called and libuv spins as before.

#include "directpoll.h"
#include "port.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <cstring>
#include <vector>

namespace tb {

namespace {

constexpr int kMaxFd = 1 << 16;
constexpr int kEvents = 64;
constexpr uint64_t kMaxPumpNs = 2'000'000;  // 2 ms
constexpr uint64_t kSleptNs = 200'000;      // a wait this long slept: nothing ran meanwhile
// directPollWait's result when the pump must return (native-types.ts).
constexpr int32_t kYieldLoop = -1;

// The prepare handle and the env cleanup hook that waits for its close. Heap: freed by the close
// callback, which touches nothing else (the DirectPoll may be gone by then).
struct Prepare {
  uv_prepare_t handle;  // first member: the close callback gets &handle
  napi_async_cleanup_hook_handle hook = nullptr;
};

struct DirectPoll {
  uv_loop_t* loop = nullptr;
  Prepare* prepare = nullptr;
  bool enabled = false;
  std::vector<Port*> ports;  // by fd; nullptr = not a registered port
  Napi::FunctionReference pump;
  std::unique_ptr<Napi::AsyncContext> asyncCtx;
  Napi::Reference<Napi::Int32Array> outRef;  // registered with setDirectPoll: [fd, count] of a batch
  int32_t* out = nullptr;
  struct epoll_event ev[kEvents];
  int evCount = 0;           // events of the last epoll_wait(L) not yet looked at
  int evNext = 0;
  bool otherReady = false;   // that wait saw an fd of libuv's own: return once its ports are served
  uint64_t pumpStart = 0;
  double waits = 0;          // epoll_wait(L) calls
  double served = 0;         // batches handed to the pump
  double yields = 0;         // pump returns
  double pumps = 0;          // pump calls from the prepare callback
};

DirectPoll* Get(AddonData* d) {
  if (d->directPoll == nullptr) d->directPoll = new DirectPoll();
  return static_cast<DirectPoll*>(d->directPoll);
}

inline bool QueueEmpty(const uv__queue* q) { return q->next == q; }

inline Port* PortOf(DirectPoll* dp, int fd) {
  return fd >= 0 && static_cast<size_t>(fd) < dp->ports.size() ? dp->ports[fd] : nullptr;
}

// Why the loop may not block now (libuv's own reasons), as uv_run would see them.
bool LoopNeedsTurn(DirectPoll* dp, int* timeout) {
  if (!QueueEmpty(&dp->loop->watcher_queue)) return true;
  *timeout = uv_backend_timeout(dp->loop);  // 0: idle/pending/closing handles, a timer due, uv_stop
  return *timeout == 0;
}

void OnPrepare(uv_prepare_t* h) {
  DirectPoll* dp = static_cast<DirectPoll*>(h->data);
  if (dp == nullptr || !dp->enabled || dp->pump.IsEmpty()) return;
  int timeout;
  if (LoopNeedsTurn(dp, &timeout)) return;
  Napi::Env env = dp->pump.Env();
  Napi::HandleScope scope(env);
  dp->pumps += 1;
  dp->pumpStart = uv_hrtime();
  dp->evCount = dp->evNext = 0;
  dp->otherReady = false;
  // MakeCallback runs process.nextTick callbacks and microtasks when the pump returns.
  dp->pump.MakeCallback(env.Global(), {}, *dp->asyncCtx);
  HandlePendingException(env);
}

void Disable(DirectPoll* dp) {
  dp->enabled = false;
  if (dp->prepare != nullptr) uv_prepare_stop(&dp->prepare->handle);
  dp->evCount = dp->evNext = 0;
}

// The env is going away (napi_add_async_cleanup_hook): the prepare handle is closed, and the env
// waits, running its loop, until the close callback has run and removed the hook. A plain env
// cleanup hook does not wait: the close callback would then run in the worker's last loop turns
// (Worker::Run), after Node has dlclose()d this addon when no other thread holds it: a call into
// unmapped code, SIGSEGV at worker exit (test/unit/direct-poll.test.ts).
void CloseHandle(napi_async_cleanup_hook_handle hook, void* arg) {
  DirectPoll* dp = static_cast<DirectPoll*>(arg);
  Disable(dp);
  dp->pump.Reset();
  dp->asyncCtx.reset();
  dp->outRef.Reset();
  dp->out = nullptr;
  Prepare* p = dp->prepare;
  dp->prepare = nullptr;
  if (p == nullptr) {
    napi_remove_async_cleanup_hook(hook);
    return;
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&p->handle), [](uv_handle_t* h) {
    Prepare* closed = reinterpret_cast<Prepare*>(h);
    napi_remove_async_cleanup_hook(closed->hook);  // the env may now finish its teardown
    delete closed;
  });
}

bool Enable(Napi::Env env, DirectPoll* dp) {
  if (dp->prepare == nullptr) {
    if (napi_get_uv_event_loop(env, &dp->loop) != napi_ok || dp->loop == nullptr) {
      ThrowType(env, "setDirectPoll: no event loop");
      return false;
    }
    Prepare* p = new Prepare;
    if (napi_add_async_cleanup_hook(env, CloseHandle, dp, &p->hook) != napi_ok) {
      delete p;
      ThrowType(env, "setDirectPoll: napi_add_async_cleanup_hook failed");
      return false;
    }
    uv_prepare_init(dp->loop, &p->handle);
    p->handle.data = dp;
    uv_unref(reinterpret_cast<uv_handle_t*>(&p->handle));  // never keeps the process alive
    dp->prepare = p;
  }
  dp->enabled = true;
  uv_prepare_start(&dp->prepare->handle, OnPrepare);
  return true;
}

// setDirectPoll(false) | setDirectPoll(true, pump: () => void, out: Int32Array(>= 2))
Napi::Value SetDirectPoll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* usage = "setDirectPoll(on: boolean, pump?: () => void, out?: Int32Array with length >= 2)";
  if (info.Length() < 1 || !info[0].IsBoolean()) {
    ThrowType(env, usage);
    return env.Undefined();
  }
  DirectPoll* dp = Get(env.GetInstanceData<AddonData>());
  if (!info[0].As<Napi::Boolean>().Value()) {
    Disable(dp);
    return env.Undefined();
  }
  if (info.Length() < 3 || !info[1].IsFunction() || !info[2].IsTypedArray() ||
      info[2].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array ||
      info[2].As<Napi::TypedArray>().ElementLength() < 2) {
    ThrowType(env, usage);
    return env.Undefined();
  }
  if (!Enable(env, dp)) return env.Undefined();
  dp->pump = Napi::Persistent(info[1].As<Napi::Function>());
  Napi::Int32Array out = info[2].As<Napi::Int32Array>();
  dp->outRef = Napi::Persistent(out);
  dp->out = out.Data();
  if (!dp->asyncCtx) dp->asyncCtx = std::make_unique<Napi::AsyncContext>(env, "tapbridge:directpoll", Napi::Object::New(env));
  return env.Undefined();
}

// directPollWait(): > 0: that many frames of the port with fd out[0] are in the slab (out: the array
// given to setDirectPoll; out[1] = the count too); kYieldLoop: the pump must return. Only meaningful
// inside the pump. Called once per batch, so it takes no argument to check: its state is the
// function's data.
Napi::Value DirectPollWait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DirectPoll* dp = static_cast<DirectPoll*>(info.Data());
  int32_t* out = dp->out;
  auto yield = [&]() {
    dp->yields += 1;
    dp->evCount = dp->evNext = 0;
    dp->otherReady = false;
    return Napi::Number::New(env, kYieldLoop);
  };
  if (!dp->enabled || dp->loop == nullptr || out == nullptr) return yield();
  for (;;) {
    // The ports that were ready in the last wait first (one wait may report several).
    while (dp->evNext < dp->evCount) {
      const struct epoll_event& e = dp->ev[dp->evNext++];
      // Looked up again for every event: a batch handed to JS may have closed any port.
      Port* p = PortOf(dp, e.data.fd);
      if (p == nullptr) continue;  // libuv's own fd: counted in otherReady when the wait returned
      if ((e.events & (EPOLLERR | EPOLLHUP)) != 0) return yield();  // the uv_poll path reports it
      bool failed = false;
      uint32_t count = p->DirectRead(&failed);
      if (failed) dp->otherReady = true;  // after this batch, back to libuv for the error
      if (count > 0) {
        dp->served += 1;
        out[0] = e.data.fd;
        out[1] = static_cast<int32_t>(count);
        return Napi::Number::New(env, static_cast<int32_t>(count));
      }
    }
    if (dp->otherReady) return yield();
    int timeout;
    if (LoopNeedsTurn(dp, &timeout)) return yield();
    uint64_t now = uv_hrtime();
    if (now - dp->pumpStart > kMaxPumpNs) return yield();
    dp->waits += 1;
    int n = epoll_wait(uv_backend_fd(dp->loop), dp->ev, kEvents, timeout);
    if (n < 0 && errno != EINTR) return yield();
    uv_update_time(dp->loop);
    if (n == 0 && timeout != 0) return yield();  // the timer is due
    // Time asleep is not pump time: the bound is on running without returning, not on waiting.
    uint64_t after = uv_hrtime();
    if (after - now > kSleptNs) dp->pumpStart = after;
    dp->evCount = n < 0 ? 0 : n;
    dp->evNext = 0;
    for (int i = 0; i < dp->evCount; i++) {
      if (PortOf(dp, dp->ev[i].data.fd) == nullptr) dp->otherReady = true;
    }
  }
}

// directPollStats(): [enabled 0/1, waits, served, yields, pumps]
Napi::Value DirectPollStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DirectPoll* dp = Get(env.GetInstanceData<AddonData>());
  Napi::Array a = Napi::Array::New(env, 5);
  a.Set(0u, Napi::Number::New(env, dp->enabled ? 1 : 0));
  a.Set(1u, Napi::Number::New(env, dp->waits));
  a.Set(2u, Napi::Number::New(env, dp->served));
  a.Set(3u, Napi::Number::New(env, dp->yields));
  a.Set(4u, Napi::Number::New(env, dp->pumps));
  return a;
}

}  // namespace

void DirectPollAdd(AddonData* d, int fd, Port* port) {
  if (fd < 0 || fd >= kMaxFd) return;  // stays on the libuv path
  DirectPoll* dp = Get(d);
  if (static_cast<size_t>(fd) >= dp->ports.size()) dp->ports.resize(static_cast<size_t>(fd) + 1, nullptr);
  dp->ports[fd] = port;
}

void DirectPollRemove(AddonData* d, int fd) {
  DirectPoll* dp = static_cast<DirectPoll*>(d->directPoll);
  if (dp == nullptr || fd < 0 || static_cast<size_t>(fd) >= dp->ports.size()) return;
  dp->ports[fd] = nullptr;
}

void FreeDirectPoll(void* p) {
  DirectPoll* dp = static_cast<DirectPoll*>(p);
  if (dp == nullptr) return;
  Disable(dp);  // the prepare handle, if any, was closed by the env's async cleanup hook
  delete dp;
}

void InitDirectPoll(Napi::Env env, Napi::Object exports) {
  exports.Set("setDirectPoll", Napi::Function::New(env, SetDirectPoll, "setDirectPoll"));
  exports.Set("directPollWait",
              Napi::Function::New(env, DirectPollWait, "directPollWait", Get(env.GetInstanceData<AddonData>())));
  exports.Set("directPollStats", Napi::Function::New(env, DirectPollStats, "directPollStats"));
}

}  // namespace tb
