// tapbridge_native: interface control through ioctl on an AF_INET datagram socket.
#include "common.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <linux/ethtool.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace tb {

namespace {

// RAII for the control socket.
struct Ctl {
  int fd;
  Ctl() : fd(CtlSocket()) {}
  ~Ctl() {
    if (fd >= 0) ::close(fd);
  }
};

void PrepIfr(struct ifreq* ifr, const std::string& name) {
  std::memset(ifr, 0, sizeof *ifr);
  std::memcpy(ifr->ifr_name, name.data(), name.size());
}

Napi::Value IfInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name;
  if (!GetIfName(info, 0, &name)) return env.Undefined();
  Ctl c;
  if (c.fd < 0) {
    ThrowSysError(env, errno, "socket(AF_INET)", name);
    return env.Undefined();
  }
  struct ifreq ifr;
  // one SIOCGIF* query; false when it failed (JS gets null for ENODEV: the interface vanished, else an exception)
  bool gone = false;
  auto query = [&](unsigned long request, const char* syscall) -> bool {
    PrepIfr(&ifr, name);
    if (ioctl(c.fd, request, &ifr) == 0) return true;
    if (errno == ENODEV) gone = true;
    else ThrowSysError(env, errno, syscall, name);
    return false;
  };
  auto fail = [&]() -> Napi::Value { return gone ? env.Null() : env.Undefined(); };
  if (!query(SIOCGIFINDEX, "ioctl(SIOCGIFINDEX)")) return fail();
  int ifindex = ifr.ifr_ifindex;
  if (!query(SIOCGIFFLAGS, "ioctl(SIOCGIFFLAGS)")) return fail();
  int flags = static_cast<unsigned short>(ifr.ifr_flags);
  if (!query(SIOCGIFMTU, "ioctl(SIOCGIFMTU)")) return fail();
  int mtu = ifr.ifr_mtu;
  if (!query(SIOCGIFHWADDR, "ioctl(SIOCGIFHWADDR)")) return fail();
  const unsigned char* m = reinterpret_cast<const unsigned char*>(ifr.ifr_hwaddr.sa_data);
  char mac[18];
  std::snprintf(mac, sizeof mac, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  if (!query(SIOCGIFTXQLEN, "ioctl(SIOCGIFTXQLEN)")) return fail();
  int qlen = ifr.ifr_qlen;
  Napi::Object o = Napi::Object::New(env);
  o.Set("ifindex", Napi::Number::New(env, ifindex));
  o.Set("flags", Napi::Number::New(env, flags));
  o.Set("mtu", Napi::Number::New(env, mtu));
  o.Set("mac", Napi::String::New(env, mac));
  o.Set("txqueuelen", Napi::Number::New(env, qlen));
  return o;
}

Napi::Value SetLinkUp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name;
  if (!GetIfName(info, 0, &name)) return env.Undefined();
  if (info.Length() < 2 || !info[1].IsBoolean()) {
    ThrowType(env, "setLinkUp(name: string, up: boolean)");
    return env.Undefined();
  }
  bool up = info[1].As<Napi::Boolean>().Value();
  Ctl c;
  if (c.fd < 0) {
    ThrowSysError(env, errno, "socket(AF_INET)", name);
    return env.Undefined();
  }
  struct ifreq ifr;
  PrepIfr(&ifr, name);
  if (ioctl(c.fd, SIOCGIFFLAGS, &ifr) < 0) {
    ThrowSysError(env, errno, "ioctl(SIOCGIFFLAGS)", name);
    return env.Undefined();
  }
  short want = up ? static_cast<short>(ifr.ifr_flags | IFF_UP) : static_cast<short>(ifr.ifr_flags & ~IFF_UP);
  if (want == ifr.ifr_flags) return env.Undefined();
  ifr.ifr_flags = want;
  if (ioctl(c.fd, SIOCSIFFLAGS, &ifr) < 0) {
    ThrowSysError(env, errno, "ioctl(SIOCSIFFLAGS)", name);
    return env.Undefined();
  }
  return env.Undefined();
}

// One SIOCSIF* ioctl on `name`: fill(ifr) writes the value into a zeroed ifreq named `name`. Throws
// (and returns false) when the control socket or the ioctl fails.
template <typename Fill>
bool SetIfreq(Napi::Env env, const std::string& name, unsigned long request, const char* syscall, Fill fill) {
  Ctl c;
  if (c.fd < 0) {
    ThrowSysError(env, errno, "socket(AF_INET)", name);
    return false;
  }
  struct ifreq ifr;
  PrepIfr(&ifr, name);
  fill(&ifr);
  if (ioctl(c.fd, request, &ifr) < 0) {
    ThrowSysError(env, errno, syscall, name);
    return false;
  }
  return true;
}

// setMtu / setTxQueueLen: one integer argument written into the ifreq and set with one ioctl.
template <typename Apply>
Napi::Value SetIntIoctl(const Napi::CallbackInfo& info, const char* usage, const char* what, int64_t min, int64_t max,
                        unsigned long request, const char* syscall, Apply apply) {
  Napi::Env env = info.Env();
  std::string name;
  if (!GetIfName(info, 0, &name)) return env.Undefined();
  int64_t value;
  if (info.Length() < 2) {
    ThrowType(env, usage);
    return env.Undefined();
  }
  if (!GetInt(info[1], what, min, max, &value)) return env.Undefined();
  SetIfreq(env, name, request, syscall, [&](struct ifreq* ifr) { apply(ifr, static_cast<int>(value)); });
  return env.Undefined();
}

Napi::Value SetMtu(const Napi::CallbackInfo& info) {
  return SetIntIoctl(info, "setMtu(name: string, mtu: number)", "mtu", 68, 65535, SIOCSIFMTU, "ioctl(SIOCSIFMTU)",
                     [](struct ifreq* ifr, int v) { ifr->ifr_mtu = v; });
}

Napi::Value SetTxQueueLen(const Napi::CallbackInfo& info) {
  return SetIntIoctl(info, "setTxQueueLen(name: string, len: number)", "len", 0, 0x7fffffff, SIOCSIFTXQLEN,
                     "ioctl(SIOCSIFTXQLEN)", [](struct ifreq* ifr, int v) { ifr->ifr_qlen = v; });
}

int EthtoolFlags(int fd, const std::string& name, uint32_t cmd, uint32_t* data) {
  struct ethtool_value ev;
  std::memset(&ev, 0, sizeof ev);
  ev.cmd = cmd;
  ev.data = *data;
  struct ifreq ifr;
  PrepIfr(&ifr, name);
  ifr.ifr_data = reinterpret_cast<char*>(&ev);
  if (ioctl(fd, SIOCETHTOOL, &ifr) < 0) return errno;
  *data = ev.data;
  return 0;
}

// Sets or clears ETH_FLAG_LRO. Returns "changed" (verified by reading the flags back), `already`
// (the flag was already as wanted) or "unsupported" (EOPNOTSUPP, or fixed by the driver).
Napi::Value SetLro(const Napi::CallbackInfo& info, bool on, const char* already) {
  Napi::Env env = info.Env();
  std::string name;
  if (!GetIfName(info, 0, &name)) return env.Undefined();
  Ctl c;
  if (c.fd < 0) {
    ThrowSysError(env, errno, "socket(AF_INET)", name);
    return env.Undefined();
  }
  uint32_t flags = 0;
  int e = EthtoolFlags(c.fd, name, ETHTOOL_GFLAGS, &flags);
  if (e == EOPNOTSUPP) return Napi::String::New(env, "unsupported");
  if (e != 0) {
    ThrowSysError(env, e, "ioctl(SIOCETHTOOL,ETHTOOL_GFLAGS)", name);
    return env.Undefined();
  }
  if (((flags & ETH_FLAG_LRO) != 0) == on) return Napi::String::New(env, already);
  uint32_t want = on ? (flags | static_cast<uint32_t>(ETH_FLAG_LRO)) : (flags & ~static_cast<uint32_t>(ETH_FLAG_LRO));
  e = EthtoolFlags(c.fd, name, ETHTOOL_SFLAGS, &want);
  if (e == EOPNOTSUPP || e == EINVAL) return Napi::String::New(env, "unsupported");
  if (e != 0) {
    ThrowSysError(env, e, "ioctl(SIOCETHTOOL,ETHTOOL_SFLAGS)", name);
    return env.Undefined();
  }
  flags = 0;
  e = EthtoolFlags(c.fd, name, ETHTOOL_GFLAGS, &flags);
  if (e != 0) {
    ThrowSysError(env, e, "ioctl(SIOCETHTOOL,ETHTOOL_GFLAGS)", name);
    return env.Undefined();
  }
  return Napi::String::New(env, ((flags & ETH_FLAG_LRO) != 0) == on ? "changed" : "unsupported");
}

Napi::Value DisableLro(const Napi::CallbackInfo& info) {
  return SetLro(info, false, "off");
}

// enableLro(name): turns large receive offload back on (undoing disableLro when a port is removed).
// Returns "changed", "on" (already on) or "unsupported".
Napi::Value EnableLro(const Napi::CallbackInfo& info) {
  return SetLro(info, true, "on");
}

// deleteTap(name): attach to the existing TAP, clear persist, close (the netdev goes away).
Napi::Value DeleteTap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name;
  if (!GetIfName(info, 0, &name)) return env.Undefined();
  int e = 0;
  if (IfIndex(name, &e) <= 0) {  // TUNSETIFF would create it
    ThrowSysError(env, e, "ioctl(SIOCGIFINDEX)", name);
    return env.Undefined();
  }
  int fd = ::open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    ThrowSysError(env, errno, "open(/dev/net/tun)", name);
    return env.Undefined();
  }
  struct ifreq ifr;
  PrepIfr(&ifr, name);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    e = errno;
    ::close(fd);
    ThrowSysError(env, e, "ioctl(TUNSETIFF)", name);
    return env.Undefined();
  }
  if (ioctl(fd, TUNSETPERSIST, 0UL) < 0) {
    e = errno;
    ::close(fd);
    ThrowSysError(env, e, "ioctl(TUNSETPERSIST)", name);
    return env.Undefined();
  }
  ::close(fd);
  return env.Undefined();
}

// setMac(name, "aa:bb:cc:dd:ee:ff"): SIOCSIFHWADDR (the host port's stable MAC).
Napi::Value SetMac(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name;
  if (!GetIfName(info, 0, &name)) return env.Undefined();
  if (info.Length() < 2 || !info[1].IsString()) {
    ThrowType(env, "setMac(name, mac: string)");
    return env.Undefined();
  }
  std::string text = info[1].As<Napi::String>().Utf8Value();
  unsigned b[6];
  char tail;
  if (text.size() != 17 ||
      std::sscanf(text.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6) {
    ThrowType(env, "setMac: mac must look like aa:bb:cc:dd:ee:ff, got '" + text + "'");
    return env.Undefined();
  }
  SetIfreq(env, name, SIOCSIFHWADDR, "ioctl(SIOCSIFHWADDR)", [&](struct ifreq* ifr) {
    ifr->ifr_hwaddr.sa_family = ARPHRD_ETHER;
    for (int i = 0; i < 6; i++) ifr->ifr_hwaddr.sa_data[i] = static_cast<char>(b[i]);
  });
  return env.Undefined();
}

}  // namespace

void InitIfctl(Napi::Env env, Napi::Object exports) {
  exports.Set("ifInfo", Napi::Function::New(env, IfInfo, "ifInfo"));
  exports.Set("setLinkUp", Napi::Function::New(env, SetLinkUp, "setLinkUp"));
  exports.Set("setMtu", Napi::Function::New(env, SetMtu, "setMtu"));
  exports.Set("setTxQueueLen", Napi::Function::New(env, SetTxQueueLen, "setTxQueueLen"));
  exports.Set("disableLro", Napi::Function::New(env, DisableLro, "disableLro"));
  exports.Set("deleteTap", Napi::Function::New(env, DeleteTap, "deleteTap"));
  exports.Set("enableLro", Napi::Function::New(env, EnableLro, "enableLro"));
  exports.Set("setMac", Napi::Function::New(env, SetMac, "setMac"));
}

}  // namespace tb
