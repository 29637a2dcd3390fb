// tapbridge_native: module init, setup(), version(), error helpers.
#include "common.h"
#include "busypoll.h"
#include "directpoll.h"
#include "vhost-user.h"

#include <sys/ioctl.h>
#include <sys/socket.h>
#include <net/if.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace tb {

int kCtorToken = 0;

bool FromAddon(const Napi::CallbackInfo& info, size_t argc, const char* usage) {
  if (info.Length() == argc && info[0].IsExternal() && info[0].As<Napi::External<int>>().Data() == &kCtorToken) return true;
  ThrowType(info.Env(), usage);
  return false;
}

AddonData::~AddonData() { FreeDirectPoll(directPoll); }

const char* ErrnoName(int err) {
  const char* n = strerrorname_np(err);  // glibc >= 2.32
  return n != nullptr ? n : "EUNKNOWN";
}

Napi::Error MakeSysError(Napi::Env env, int err, const std::string& syscall, const std::string& ifname) {
  char buf[256];
  const char* code = ErrnoName(err);
  std::snprintf(buf, sizeof buf, "%s %s: %s (%s)", syscall.c_str(), ifname.c_str(), strerror(err), code);
  Napi::Error e = Napi::Error::New(env, buf);
  Napi::Object o = e.Value();
  o.Set("code", Napi::String::New(env, code));
  o.Set("errno", Napi::Number::New(env, err));
  o.Set("syscall", Napi::String::New(env, syscall));
  o.Set("ifname", Napi::String::New(env, ifname));
  return e;
}

void ThrowSysError(Napi::Env env, int err, const std::string& syscall, const std::string& ifname) {
  MakeSysError(env, err, syscall, ifname).ThrowAsJavaScriptException();
}

void ThrowType(Napi::Env env, const std::string& msg) {
  Napi::TypeError::New(env, msg).ThrowAsJavaScriptException();
}

bool GetIfName(const Napi::CallbackInfo& info, size_t idx, std::string* out) {
  if (info.Length() <= idx || !info[idx].IsString()) {
    ThrowType(info.Env(), "interface name must be a string");
    return false;
  }
  std::string s = info[idx].As<Napi::String>().Utf8Value();
  if (s.empty() || s.size() >= IFNAMSIZ || s.find('\0') != std::string::npos) {
    ThrowType(info.Env(), "interface name must be 1.." + std::to_string(IFNAMSIZ - 1) + " bytes: '" + s + "'");
    return false;
  }
  *out = std::move(s);
  return true;
}

bool GetInt(const Napi::Value& v, const char* what, int64_t min, int64_t max, int64_t* out) {
  if (!v.IsNumber()) {
    ThrowType(v.Env(), std::string(what) + " must be a number");
    return false;
  }
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= static_cast<double>(min) && d <= static_cast<double>(max)) || d != static_cast<double>(static_cast<int64_t>(d))) {
    ThrowType(v.Env(), std::string(what) + " must be an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
    return false;
  }
  *out = static_cast<int64_t>(d);
  return true;
}

bool BindTx(const Napi::CallbackInfo& info, Napi::Reference<Napi::Uint32Array>* ref, uint32_t** data, size_t* entries) {
  if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array ||
      info[0].As<Napi::TypedArray>().ElementLength() < 4) {
    ThrowType(info.Env(), "setTx(tx: Uint32Array) with at least one entry (4 uint32)");
    return false;
  }
  Napi::Uint32Array tx = info[0].As<Napi::Uint32Array>();
  *ref = Napi::Persistent(tx);
  *data = tx.Data();
  *entries = tx.ElementLength() / 4;
  return true;
}

bool BindCounters(const Napi::CallbackInfo& info, Napi::Reference<Napi::Float64Array>* ref, double** data) {
  if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
      info[0].As<Napi::TypedArray>().ElementLength() < static_cast<size_t>(CounterCount)) {
    ThrowType(info.Env(), "setCounters(counters: Float64Array) with length >= " + std::to_string(CounterCount));
    return false;
  }
  Napi::Float64Array c = info[0].As<Napi::Float64Array>();
  *ref = Napi::Persistent(c);
  *data = c.Data();
  return true;
}

bool GetSendCount(const Napi::CallbackInfo& info, bool closed, const uint32_t* tx, size_t entries, uint32_t* count) {
  Napi::Env env = info.Env();
  *count = 0;
  if (info.Length() < 1 || !info[0].IsNumber()) {
    ThrowType(env, "send(count: number)");
    return false;
  }
  if (closed) return true;
  if (tx == nullptr) {
    Napi::Error::New(env, "send: setTx() must be called first").ThrowAsJavaScriptException();
    return false;
  }
  int64_t count64;
  if (!GetInt(info[0], "send: count", 0, static_cast<int64_t>(entries), &count64)) return false;
  *count = static_cast<uint32_t>(count64);
  return true;
}

void HandlePendingException(Napi::Env env) {
  if (env.IsExceptionPending()) {
    Napi::Error e = env.GetAndClearPendingException();
    napi_fatal_exception(env, e.Value());
  }
}

int CtlSocket() {
  return socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
}

int IfIndex(const std::string& name, int* err) {
  int s = CtlSocket();
  if (s < 0) {
    *err = errno;
    return 0;
  }
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  std::memcpy(ifr.ifr_name, name.data(), name.size());
  int r = ioctl(s, SIOCGIFINDEX, &ifr);
  int e = errno;
  close(s);
  if (r < 0) {
    *err = e;
    return 0;
  }
  return ifr.ifr_ifindex;
}

// setup(slab: ArrayBuffer, rxDesc: Int32Array, budget: number)
static Napi::Value Setup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonData* d = env.GetInstanceData<AddonData>();
  if (info.Length() < 3 || !info[0].IsArrayBuffer()) {
    ThrowType(env, "setup(slab: ArrayBuffer, rxDesc: Int32Array, budget: number)");
    return env.Undefined();
  }
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    ThrowType(env, "setup: rxDesc must be an Int32Array");
    return env.Undefined();
  }
  Napi::ArrayBuffer slab = info[0].As<Napi::ArrayBuffer>();
  Napi::Int32Array desc = info[1].As<Napi::Int32Array>();
  int64_t budget;
  if (!GetInt(info[2], "budget", 1, 1 << 20, &budget)) return env.Undefined();
  if (slab.ByteLength() < kMinSlab) {
    ThrowType(env, "setup: slab must be at least 1 MiB");
    return env.Undefined();
  }
  if (slab.ByteLength() > 0x7fffffffu) {
    ThrowType(env, "setup: slab must be smaller than 2 GiB (offsets are int32)");
    return env.Undefined();
  }
  if (desc.ElementLength() < 3) {
    ThrowType(env, "setup: rxDesc must hold at least one descriptor (3 int32)");
    return env.Undefined();
  }
  d->slabRef = Napi::Persistent(slab);
  d->rxDescRef = Napi::Persistent(desc);
  d->slab = static_cast<uint8_t*>(slab.Data());
  d->slabLen = slab.ByteLength();
  d->rxDesc = desc.Data();
  d->rxDescFrames = desc.ElementLength() / 3;
  d->budget = static_cast<uint32_t>(budget);
  return env.Undefined();
}

static Napi::Value Version(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), kVersion);
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  AddonData* d = new AddonData();
  env.SetInstanceData<AddonData>(d);  // deleted by node-addon-api when the env goes away
  d->portCtor = Napi::Persistent(InitPort(env));
  d->linkMonCtor = Napi::Persistent(InitLinkMonitor(env));
  d->vhostUserCtor = Napi::Persistent(InitVhostUserClass(env));
  exports.Set("setup", Napi::Function::New(env, Setup, "setup"));
  exports.Set("version", Napi::Function::New(env, Version, "version"));
  exports.Set("openTap", Napi::Function::New(env, OpenTap, "openTap"));
  exports.Set("openPacket", Napi::Function::New(env, OpenPacket, "openPacket"));
  exports.Set("openVhostUser", Napi::Function::New(env, OpenVhostUser, "openVhostUser"));
  exports.Set("adoptVhostUser", Napi::Function::New(env, AdoptVhostUser, "adoptVhostUser"));
  exports.Set("linkMonitor", Napi::Function::New(env, LinkMonitorNew, "linkMonitor"));
  InitIfctl(env, exports);
  InitBusyPoll(env, exports);
  InitDirectPoll(env, exports);
  InitHandover(env, exports);
  InitNetns(env, exports);
  InitNotify(env, exports);
  InitVxlan(env, exports);
  InitFileLock(env, exports);
  InitUnixSock(env, exports);
  InitPacketRing(env, exports);
  return exports;
}

}  // namespace tb

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return tb::Init(env, exports); }

NODE_API_MODULE(tapbridge_native, InitModule)
