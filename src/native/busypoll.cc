// tapbridge_native: adaptive busy-polling of the event loop after a receive batch.
//
// Model: a ping-pong frame pair crosses the bridge in two batches (request, then reply), and without
// busy-polling each batch costs one sleep in epoll_wait and one wakeup (on this PVM guest a wakeup is
// most of a ping's time through the bridge). After every batch that read frames, the addon arms a
// deadline `busy_poll_us` ahead and starts one uv_idle handle. While an idle handle is active libuv
// polls with a zero timeout, so the loop keeps calling epoll_wait(0) and picks up the reply as soon as
// it is queued, without sleeping. The idle callback stops the handle once the deadline has passed, and
// the loop goes back to sleeping in epoll. Every new batch pushes the deadline on.
//
// Bounds: one handle per addon instance (no allocation per batch), the window is at most 1 s, and
// 0 turns it off. The cost is CPU: up to one core for `busy_poll_us` after each batch, nothing at idle.
// Measured (scripts/bench/README.md, "Latency experiments"): a window shorter than the gap between
// requests buys nothing (100 us with ping -i 0.01: same RTT, 50% more CPU); one longer than the gap
// keeps the loop (and the caches) hot, so each request is read by a spinning loop, not a wakeup.
// Counters: spins (idle callbacks run) and windows (times the handle was started), for the benchmark.

#include "busypoll.h"

namespace tb {

namespace {

struct BusyPoll {
  uv_idle_t idle;
  bool initialized = false;
  bool active = false;
  uint64_t windowNs = 0;
  uint64_t deadlineNs = 0;
  double spins = 0;
  double windows = 0;
};

BusyPoll g_busy;

void OnIdle(uv_idle_t* h) {
  g_busy.spins += 1;
  if (uv_hrtime() >= g_busy.deadlineNs) {
    uv_idle_stop(h);
    g_busy.active = false;
  }
}

}  // namespace

void BusyPollKick() {
  if (g_busy.windowNs == 0 || !g_busy.initialized) return;
  g_busy.deadlineNs = uv_hrtime() + g_busy.windowNs;
  if (!g_busy.active) {
    if (uv_idle_start(&g_busy.idle, OnIdle) == 0) {
      g_busy.active = true;
      g_busy.windows += 1;
    }
  }
}

// setBusyPoll(us: number): 0 = off, else 1..1000000 microseconds.
static Napi::Value SetBusyPoll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t us;
  if (info.Length() < 1 || !GetInt(info[0], "busy_poll_us", 0, 1000000, &us)) {
    if (!env.IsExceptionPending()) ThrowType(env, "setBusyPoll(us: 0..1000000)");
    return env.Undefined();
  }
  if (!g_busy.initialized) {
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
      ThrowType(env, "setBusyPoll: no event loop");
      return env.Undefined();
    }
    uv_idle_init(loop, &g_busy.idle);
    // The idle handle must never keep the process alive by itself.
    uv_unref(reinterpret_cast<uv_handle_t*>(&g_busy.idle));
    g_busy.initialized = true;
  }
  g_busy.windowNs = static_cast<uint64_t>(us) * 1000;
  if (us == 0 && g_busy.active) {
    uv_idle_stop(&g_busy.idle);
    g_busy.active = false;
  }
  return env.Undefined();
}

// busyPollStats(): [spins, windows]
static Napi::Value BusyPollStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array a = Napi::Array::New(env, 2);
  a.Set(0u, Napi::Number::New(env, g_busy.spins));
  a.Set(1u, Napi::Number::New(env, g_busy.windows));
  return a;
}

void InitBusyPoll(Napi::Env env, Napi::Object exports) {
  exports.Set("setBusyPoll", Napi::Function::New(env, SetBusyPoll, "setBusyPoll"));
  exports.Set("busyPollStats", Napi::Function::New(env, BusyPollStats, "busyPollStats"));
}

}  // namespace tb
