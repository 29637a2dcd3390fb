// tapbridge_native: kernel VXLAN netdevs over rtnetlink (RawAddon.vxlan* in src/io/native-types.ts).
//
//   vxlanCreate(opts)            RTM_NEWLINK, IFLA_LINKINFO { IFLA_INFO_KIND "vxlan", IFLA_INFO_DATA { IFLA_VXLAN_* } }
//   vxlanFdb(name, op, dst)      RTM_NEWNEIGH (NLM_F_CREATE|NLM_F_APPEND) / RTM_DELNEIGH on AF_BRIDGE for the
//                                vxlan device: the all-zeros MAC with NDA_DST = one remote VTEP (head-end replication),
//                                exactly what `bridge fdb append 00:00:00:00:00:00 dev vxN dst B` does
//   vxlanRemotes(name)           RTM_GETNEIGH dump (AF_BRIDGE): the NDA_DST of every all-zeros entry of the device
//   linkKind(name)               RTM_GETLINK: { kind, vni, port, local, group, link } of an existing netdev (kind ""
//                                when it has no IFLA_LINKINFO; the vxlan fields are 0 / "" unless it is a vxlan)
//   vxlanList()                  RTM_GETLINK dump: the same object, with its name, for every vxlan netdev of the
//                                namespace (who holds a VNI, when RTM_NEWLINK says EEXIST)
//   linkDelete(name)             RTM_DELLINK by name
//
// Every request is one synchronous netlink round trip with NLM_F_ACK on a fresh NETLINK_ROUTE socket (control path
// only, never per frame). Addresses arrive as strings and are parsed here with inet_pton: v4 or v6, nothing else.
// Errors carry errno, the message type and the interface name.
#include "common.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <cerrno>
#include <cstring>

namespace tb {

namespace {

constexpr size_t kReqBuf = 1024;
constexpr size_t kRespBuf = 16 * 1024;

// A netlink request under construction in a fixed buffer; Put* fail (return false) instead of overflowing.
struct NlReq {
  alignas(NLMSG_ALIGNTO) uint8_t buf[kReqBuf];
  struct nlmsghdr* hdr;
  bool overflow = false;

  NlReq(uint16_t type, uint16_t flags, const void* body, size_t bodyLen) {
    std::memset(buf, 0, sizeof buf);
    hdr = reinterpret_cast<struct nlmsghdr*>(buf);
    hdr->nlmsg_type = type;
    hdr->nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | NLM_F_ACK | flags);
    hdr->nlmsg_seq = 1;
    hdr->nlmsg_len = static_cast<uint32_t>(NLMSG_LENGTH(bodyLen));
    std::memcpy(NLMSG_DATA(hdr), body, bodyLen);
  }

  struct rtattr* Put(uint16_t type, const void* data, size_t len) {
    size_t at = NLMSG_ALIGN(hdr->nlmsg_len);
    size_t need = RTA_SPACE(len);
    if (at + need > sizeof buf) {
      overflow = true;
      return nullptr;
    }
    struct rtattr* rta = reinterpret_cast<struct rtattr*>(buf + at);
    rta->rta_type = type;
    rta->rta_len = static_cast<uint16_t>(RTA_LENGTH(len));
    if (len > 0) std::memcpy(RTA_DATA(rta), data, len);
    hdr->nlmsg_len = static_cast<uint32_t>(at + need);
    return rta;
  }
  void PutU8(uint16_t type, uint8_t v) { Put(type, &v, 1); }
  void PutU16(uint16_t type, uint16_t v) { Put(type, &v, 2); }
  void PutU32(uint16_t type, uint32_t v) { Put(type, &v, 4); }
  void PutStr(uint16_t type, const std::string& s) { Put(type, s.c_str(), s.size() + 1); }
  struct rtattr* Nest(uint16_t type) { return Put(type, nullptr, 0); }
  void End(struct rtattr* nest) {
    if (nest != nullptr) nest->rta_len = static_cast<uint16_t>(buf + hdr->nlmsg_len - reinterpret_cast<uint8_t*>(nest));
  }
};

// An RTM_NEWLINK / RTM_GETLINK / RTM_DELLINK request addressed by name (ifinfomsg AF_UNSPEC, IFLA_IFNAME).
struct LinkReq : NlReq {
  static constexpr struct ifinfomsg kIfi = {};  // ifi_family AF_UNSPEC (0), no index: the kernel looks the name up
  LinkReq(uint16_t type, uint16_t flags, const std::string& name) : NlReq(type, flags, &kIfi, sizeof kIfi) {
    PutStr(IFLA_IFNAME, name);
  }
};

// ifindex of `name`, or 0 with a system error thrown naming `syscall`.
int IfIndexOrThrow(Napi::Env env, const std::string& name, const char* syscall) {
  int e = 0;
  int ifindex = IfIndex(name, &e);
  if (ifindex <= 0) ThrowSysError(env, e, syscall, name);
  return ifindex > 0 ? ifindex : 0;
}

// One request, one answer. Returns 0 or an errno. With `reply`, the first non-error message is copied there.
int Transact(NlReq* req, uint8_t* reply, size_t replyLen, size_t* gotLen) {
  if (req->overflow) return EMSGSIZE;
  int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return errno;
  struct timeval tv = {5, 0};  // the kernel answers at once; never hang the daemon's loop on a lost reply
  (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_nl sa;
  std::memset(&sa, 0, sizeof sa);
  sa.nl_family = AF_NETLINK;
  if (::sendto(fd, req->buf, req->hdr->nlmsg_len, 0, reinterpret_cast<struct sockaddr*>(&sa), sizeof sa) < 0) {
    int e = errno;
    ::close(fd);
    return e;
  }
  alignas(NLMSG_ALIGNTO) static uint8_t resp[kRespBuf];
  for (int rounds = 0; rounds < 16; rounds++) {
    ssize_t n = ::recv(fd, resp, sizeof resp, 0);
    if (n < 0) {
      int e = errno;
      if (e == EINTR) continue;
      ::close(fd);
      return e == EAGAIN ? ETIMEDOUT : e;
    }
    size_t left = static_cast<size_t>(n);
    for (struct nlmsghdr* h = reinterpret_cast<struct nlmsghdr*>(resp); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_seq != req->hdr->nlmsg_seq) continue;
      if (h->nlmsg_type == NLMSG_ERROR) {
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr))) {
          ::close(fd);
          return EPROTO;
        }
        int err = -reinterpret_cast<struct nlmsgerr*>(NLMSG_DATA(h))->error;
        ::close(fd);
        return err;  // 0 = the ACK
      }
      if (reply != nullptr && *gotLen == 0 && h->nlmsg_len <= replyLen) {
        std::memcpy(reply, h, h->nlmsg_len);
        *gotLen = h->nlmsg_len;
      }
    }
  }
  ::close(fd);
  return EPROTO;
}

// One dump request (NLM_F_DUMP, no ACK: it ends with NLMSG_DONE): `each(h)` sees every message that is neither DONE
// nor ERROR. Returns 0 once NLMSG_DONE arrived, else an errno (EOVERFLOW when 4096 datagrams of up to 64 KiB did not
// reach it: a namespace with an absurd table cannot keep the daemon here for long). `*what` names the failed call:
// "socket(AF_NETLINK)", or nullptr for the request itself.
template <typename Each>
int Dump(NlReq* req, const char** what, Each each) {
  *what = nullptr;
  req->hdr->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) {
    *what = "socket(AF_NETLINK)";
    return errno;
  }
  struct timeval tv = {5, 0};
  (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_nl sa;
  std::memset(&sa, 0, sizeof sa);
  sa.nl_family = AF_NETLINK;
  int err = 0;
  bool done = false;
  if (::sendto(fd, req->buf, req->hdr->nlmsg_len, 0, reinterpret_cast<struct sockaddr*>(&sa), sizeof sa) < 0) err = errno;
  alignas(NLMSG_ALIGNTO) static uint8_t resp[kRespBuf * 4];
  for (int rounds = 0; err == 0 && !done && rounds < 4096; rounds++) {
    ssize_t got = ::recv(fd, resp, sizeof resp, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      err = errno == EAGAIN ? ETIMEDOUT : errno;
      break;
    }
    size_t left = static_cast<size_t>(got);
    for (struct nlmsghdr* h = reinterpret_cast<struct nlmsghdr*>(resp); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_type == NLMSG_DONE) {
        done = true;
        break;
      }
      if (h->nlmsg_type == NLMSG_ERROR) {
        err = h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct nlmsgerr)) ? -reinterpret_cast<struct nlmsgerr*>(NLMSG_DATA(h))->error : EPROTO;
        break;
      }
      each(h);
    }
  }
  ::close(fd);
  return err != 0 ? err : (done ? 0 : EOVERFLOW);
}

// An IPv4 or IPv6 address in text; family AF_INET / AF_INET6, or 0 when it is neither.
struct Addr {
  int family = 0;
  uint8_t bytes[16];
  size_t len = 0;
};

bool ParseAddr(const std::string& text, Addr* out) {
  if (inet_pton(AF_INET, text.c_str(), out->bytes) == 1) {
    out->family = AF_INET;
    out->len = 4;
    return true;
  }
  if (inet_pton(AF_INET6, text.c_str(), out->bytes) == 1) {
    out->family = AF_INET6;
    out->len = 16;
    return true;
  }
  return false;
}

// Optional string property of an options object: "" when absent or undefined/null; false (TypeError thrown) when wrong.
bool OptString(const Napi::Object& o, const char* key, std::string* out) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) {
    out->clear();
    return true;
  }
  if (!v.IsString()) {
    ThrowType(o.Env(), std::string("vxlanCreate: ") + key + " must be a string");
    return false;
  }
  *out = v.As<Napi::String>().Utf8Value();
  return true;
}

bool OptAddr(const Napi::Object& o, const char* key, Addr* out) {
  std::string s;
  if (!OptString(o, key, &s)) return false;
  if (s.empty()) return true;
  if (!ParseAddr(s, out)) {
    ThrowType(o.Env(), std::string("vxlanCreate: ") + key + " is not an IPv4 or IPv6 address: '" + s + "'");
    return false;
  }
  return true;
}

bool OptInt(const Napi::Object& o, const char* key, int64_t min, int64_t max, int64_t def, int64_t* out) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) {
    *out = def;
    return true;
  }
  return GetInt(v, key, min, max, out);
}

// vxlanCreate({ name, vni, port, local?, group?, remote?, dev?, ttl?, tos?, learning, mtu? })
Napi::Value VxlanCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) {
    ThrowType(env, "vxlanCreate(options: object)");
    return env.Undefined();
  }
  Napi::Object o = info[0].As<Napi::Object>();
  std::string name, dev;
  if (!OptString(o, "name", &name) || !OptString(o, "dev", &dev)) return env.Undefined();
  if (name.empty() || name.size() >= IFNAMSIZ || dev.size() >= IFNAMSIZ) {
    ThrowType(env, "vxlanCreate: name (and dev) must be 1..15 bytes");
    return env.Undefined();
  }
  int64_t vni, port, ttl, tos, mtu;
  if (!OptInt(o, "vni", 1, 0xffffff, -1, &vni) || !OptInt(o, "port", 1, 65535, 4789, &port) ||
      !OptInt(o, "ttl", 0, 255, 0, &ttl) || !OptInt(o, "tos", 0, 255, 0, &tos) || !OptInt(o, "mtu", 0, 65535, 0, &mtu))
    return env.Undefined();
  if (vni < 0) {
    ThrowType(env, "vxlanCreate: vni is required (1..16777215)");
    return env.Undefined();
  }
  Addr local, group;
  if (!OptAddr(o, "local", &local) || !OptAddr(o, "group", &group)) return env.Undefined();
  if (local.family != 0 && group.family != 0 && local.family != group.family) {
    ThrowType(env, "vxlanCreate: local and group must be of the same address family");
    return env.Undefined();
  }
  bool learning = o.Get("learning").ToBoolean().Value();
  int linkIndex = 0;
  if (!dev.empty() && (linkIndex = IfIndexOrThrow(env, dev, "ioctl(SIOCGIFINDEX) (vxlan dev)")) == 0) return env.Undefined();

  LinkReq req(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, name);
  if (mtu > 0) req.PutU32(IFLA_MTU, static_cast<uint32_t>(mtu));
  struct rtattr* linkinfo = req.Nest(IFLA_LINKINFO);
  req.PutStr(IFLA_INFO_KIND, "vxlan");
  struct rtattr* data = req.Nest(IFLA_INFO_DATA);
  req.PutU32(IFLA_VXLAN_ID, static_cast<uint32_t>(vni));
  if (local.family == AF_INET) req.Put(IFLA_VXLAN_LOCAL, local.bytes, 4);
  if (local.family == AF_INET6) req.Put(IFLA_VXLAN_LOCAL6, local.bytes, 16);
  if (group.family == AF_INET) req.Put(IFLA_VXLAN_GROUP, group.bytes, 4);
  if (group.family == AF_INET6) req.Put(IFLA_VXLAN_GROUP6, group.bytes, 16);
  if (linkIndex > 0) req.PutU32(IFLA_VXLAN_LINK, static_cast<uint32_t>(linkIndex));
  req.PutU16(IFLA_VXLAN_PORT, htons(static_cast<uint16_t>(port)));
  req.PutU8(IFLA_VXLAN_TTL, static_cast<uint8_t>(ttl));
  req.PutU8(IFLA_VXLAN_TOS, static_cast<uint8_t>(tos));
  req.PutU8(IFLA_VXLAN_LEARNING, learning ? 1 : 0);
  req.End(data);
  req.End(linkinfo);
  int err = Transact(&req, nullptr, 0, nullptr);
  if (err != 0) {
    ThrowSysError(env, err, "rtnetlink(RTM_NEWLINK vxlan)", name);
    return env.Undefined();
  }
  return env.Undefined();
}

// vxlanFdb(name, "append" | "del", dst): the all-zeros FDB entry towards one remote VTEP. Returns false when the
// entry was already there (append) or not there (del), true when it changed.
Napi::Value VxlanFdb(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name;
  if (!GetIfName(info, 0, &name)) return env.Undefined();
  if (info.Length() < 3 || !info[1].IsString() || !info[2].IsString()) {
    ThrowType(env, "vxlanFdb(name: string, op: 'append' | 'del', dst: string)");
    return env.Undefined();
  }
  std::string op = info[1].As<Napi::String>().Utf8Value();
  if (op != "append" && op != "del") {
    ThrowType(env, "vxlanFdb: op must be 'append' or 'del'");
    return env.Undefined();
  }
  std::string dstText = info[2].As<Napi::String>().Utf8Value();
  Addr dst;
  if (!ParseAddr(dstText, &dst)) {
    ThrowType(env, "vxlanFdb: dst is not an IPv4 or IPv6 address: '" + dstText + "'");
    return env.Undefined();
  }
  int ifindex = IfIndexOrThrow(env, name, "ioctl(SIOCGIFINDEX)");
  if (ifindex == 0) return env.Undefined();
  struct ndmsg ndm;
  std::memset(&ndm, 0, sizeof ndm);
  ndm.ndm_family = AF_BRIDGE;
  ndm.ndm_ifindex = ifindex;
  ndm.ndm_state = NUD_NOARP | NUD_PERMANENT;
  ndm.ndm_flags = NTF_SELF;
  bool append = op == "append";
  NlReq req(append ? RTM_NEWNEIGH : RTM_DELNEIGH, append ? (NLM_F_CREATE | NLM_F_APPEND) : 0, &ndm, sizeof ndm);
  const uint8_t zeros[6] = {0, 0, 0, 0, 0, 0};
  req.Put(NDA_LLADDR, zeros, 6);
  req.Put(NDA_DST, dst.bytes, dst.len);
  int err = Transact(&req, nullptr, 0, nullptr);
  if ((append && err == EEXIST) || (!append && err == ENOENT)) return Napi::Boolean::New(env, false);
  if (err != 0) {
    ThrowSysError(env, err, append ? "rtnetlink(RTM_NEWNEIGH vxlan fdb)" : "rtnetlink(RTM_DELNEIGH vxlan fdb)", name);
    return env.Undefined();
  }
  return Napi::Boolean::New(env, true);
}

// vxlanRemotes(name): the destinations of the device's all-zeros FDB entries (head-end replication list), as text.
// A dump of every AF_BRIDGE FDB entry of the namespace, filtered here by ifindex; bounded in rounds (Dump) and entries.
Napi::Value VxlanRemotes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name;
  if (!GetIfName(info, 0, &name)) return env.Undefined();
  int ifindex = IfIndexOrThrow(env, name, "ioctl(SIOCGIFINDEX)");
  if (ifindex == 0) return env.Undefined();
  struct ndmsg ndm;
  std::memset(&ndm, 0, sizeof ndm);
  ndm.ndm_family = AF_BRIDGE;
  NlReq req(RTM_GETNEIGH, NLM_F_DUMP, &ndm, sizeof ndm);
  Napi::Array out = Napi::Array::New(env);
  uint32_t n = 0;
  const char* what = nullptr;
  int err = Dump(&req, &what, [&](const struct nlmsghdr* h) {
    if (h->nlmsg_type != RTM_NEWNEIGH || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct ndmsg))) return;
    const struct ndmsg* m = static_cast<const struct ndmsg*>(NLMSG_DATA(h));
    if (m->ndm_ifindex != ifindex) return;
    bool zeroMac = false;
    const uint8_t* dst = nullptr;
    size_t dstLen = 0;
    int len = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof(struct ndmsg)));
    for (const struct rtattr* a = reinterpret_cast<const struct rtattr*>(reinterpret_cast<const uint8_t*>(NLMSG_DATA(h)) + NLMSG_ALIGN(sizeof(struct ndmsg)));
         RTA_OK(a, len); a = RTA_NEXT(a, len)) {
      if (a->rta_type == NDA_LLADDR && RTA_PAYLOAD(a) == 6) {
        const uint8_t* mac = static_cast<const uint8_t*>(RTA_DATA(a));
        zeroMac = (mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]) == 0;
      } else if (a->rta_type == NDA_DST && (RTA_PAYLOAD(a) == 4 || RTA_PAYLOAD(a) == 16)) {
        dst = static_cast<const uint8_t*>(RTA_DATA(a));
        dstLen = RTA_PAYLOAD(a);
      }
    }
    if (!zeroMac || dst == nullptr || n >= 65536) return;
    char text[INET6_ADDRSTRLEN];
    if (inet_ntop(dstLen == 4 ? AF_INET : AF_INET6, dst, text, sizeof text) != nullptr) out.Set(n++, Napi::String::New(env, text));
  });
  if (err != 0) {
    ThrowSysError(env, err, what != nullptr ? what : "rtnetlink(RTM_GETNEIGH dump)", name);
    return env.Undefined();
  }
  return out;
}

// What RTM_NEWLINK carries about a netdev: its kind and, for a vxlan, the attributes adoption compares.
struct LinkAttrs {
  std::string name;
  std::string kind;
  uint32_t vni = 0;
  uint16_t port = 0;
  std::string local;
  std::string group;
  uint32_t link = 0;
};

std::string AddrText(const struct rtattr* a) {
  char text[INET6_ADDRSTRLEN];
  size_t n = RTA_PAYLOAD(a);
  if (n != 4 && n != 16) return "";
  if (inet_ntop(n == 4 ? AF_INET : AF_INET6, RTA_DATA(a), text, sizeof text) == nullptr) return "";
  return text;
}

bool AllZero(const struct rtattr* a) {
  const uint8_t* p = static_cast<const uint8_t*>(RTA_DATA(a));
  for (size_t i = 0; i < RTA_PAYLOAD(a); i++)
    if (p[i] != 0) return false;
  return true;
}

// Parses one RTM_NEWLINK message; false when it is not one.
bool ParseLink(const struct nlmsghdr* h, LinkAttrs* out) {
  if (h->nlmsg_type != RTM_NEWLINK || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifinfomsg))) return false;
  int len = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof(struct ifinfomsg)));
  const struct ifinfomsg* ifi = static_cast<const struct ifinfomsg*>(NLMSG_DATA(h));
  for (const struct rtattr* a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
    if (a->rta_type == IFLA_IFNAME) {
      const char* p = static_cast<const char*>(RTA_DATA(a));
      out->name.assign(p, strnlen(p, RTA_PAYLOAD(a)));
      continue;
    }
    if (a->rta_type != IFLA_LINKINFO) continue;
    int l2 = static_cast<int>(RTA_PAYLOAD(a));
    for (const struct rtattr* b = static_cast<const struct rtattr*>(RTA_DATA(a)); RTA_OK(b, l2); b = RTA_NEXT(b, l2)) {
      if (b->rta_type == IFLA_INFO_KIND) {
        const char* p = static_cast<const char*>(RTA_DATA(b));
        out->kind.assign(p, strnlen(p, RTA_PAYLOAD(b)));
      } else if (b->rta_type == IFLA_INFO_DATA) {
        int l3 = static_cast<int>(RTA_PAYLOAD(b));
        for (const struct rtattr* c = static_cast<const struct rtattr*>(RTA_DATA(b)); RTA_OK(c, l3); c = RTA_NEXT(c, l3)) {
          switch (c->rta_type) {
            case IFLA_VXLAN_ID:
              if (RTA_PAYLOAD(c) >= 4) std::memcpy(&out->vni, RTA_DATA(c), 4);
              break;
            case IFLA_VXLAN_PORT:
              if (RTA_PAYLOAD(c) >= 2) {
                uint16_t be;
                std::memcpy(&be, RTA_DATA(c), 2);
                out->port = ntohs(be);
              }
              break;
            case IFLA_VXLAN_LOCAL:
            case IFLA_VXLAN_LOCAL6:
              if (!AllZero(c)) out->local = AddrText(c);
              break;
            case IFLA_VXLAN_GROUP:
            case IFLA_VXLAN_GROUP6:
              if (!AllZero(c)) out->group = AddrText(c);
              break;
            case IFLA_VXLAN_LINK:
              if (RTA_PAYLOAD(c) >= 4) std::memcpy(&out->link, RTA_DATA(c), 4);
              break;
            default:
              break;
          }
        }
      }
    }
  }
  return true;
}

Napi::Object LinkObject(Napi::Env env, const LinkAttrs& l, bool withName) {
  bool vx = l.kind == "vxlan";
  Napi::Object o = Napi::Object::New(env);
  if (withName) o.Set("name", Napi::String::New(env, l.name));
  o.Set("kind", Napi::String::New(env, l.kind));
  o.Set("vni", Napi::Number::New(env, vx ? l.vni : 0));
  o.Set("port", Napi::Number::New(env, vx ? l.port : 0));
  o.Set("local", Napi::String::New(env, vx ? l.local : ""));
  o.Set("group", Napi::String::New(env, vx ? l.group : ""));
  o.Set("link", Napi::Number::New(env, vx ? l.link : 0));
  return o;
}

// linkKind(name): { kind, vni, port, local, group, link }, or null when there is no such netdev.
Napi::Value LinkKind(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name;
  if (!GetIfName(info, 0, &name)) return env.Undefined();
  LinkReq req(RTM_GETLINK, 0, name);
  alignas(NLMSG_ALIGNTO) static uint8_t reply[kRespBuf];
  size_t got = 0;
  int err = Transact(&req, reply, sizeof reply, &got);
  // a GETLINK answer is the message itself, then no ACK: Transact sees the RTM_NEWLINK, then the ACK/none.
  if (err == ENODEV) return env.Null();
  if (err != 0 && got == 0) {
    ThrowSysError(env, err, "rtnetlink(RTM_GETLINK)", name);
    return env.Undefined();
  }
  if (got == 0) return env.Null();
  LinkAttrs l;
  if (!ParseLink(reinterpret_cast<struct nlmsghdr*>(reply), &l)) return env.Null();
  return LinkObject(env, l, false);
}

// vxlanList(): every vxlan netdev of the namespace, { name, kind, vni, port, local, group, link } each.
// One RTM_GETLINK dump, bounded in rounds (Dump) and entries like vxlanRemotes.
Napi::Value VxlanList(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  struct ifinfomsg ifi;
  std::memset(&ifi, 0, sizeof ifi);
  NlReq req(RTM_GETLINK, NLM_F_DUMP, &ifi, sizeof ifi);
  Napi::Array out = Napi::Array::New(env);
  uint32_t n = 0;
  const char* what = nullptr;
  int err = Dump(&req, &what, [&](const struct nlmsghdr* h) {
    LinkAttrs l;
    if (!ParseLink(h, &l) || l.kind != "vxlan" || n >= 65536) return;
    out.Set(n++, LinkObject(env, l, true));
  });
  if (err != 0) {
    ThrowSysError(env, err, what != nullptr ? what : "rtnetlink(RTM_GETLINK dump)", "");
    return env.Undefined();
  }
  return out;
}

// linkDelete(name): RTM_DELLINK. Returns false when there was no such netdev.
Napi::Value LinkDelete(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name;
  if (!GetIfName(info, 0, &name)) return env.Undefined();
  LinkReq req(RTM_DELLINK, 0, name);
  int err = Transact(&req, nullptr, 0, nullptr);
  if (err == ENODEV) return Napi::Boolean::New(env, false);
  if (err != 0) {
    ThrowSysError(env, err, "rtnetlink(RTM_DELLINK)", name);
    return env.Undefined();
  }
  return Napi::Boolean::New(env, true);
}

}  // namespace

void InitVxlan(Napi::Env env, Napi::Object exports) {
  exports.Set("vxlanCreate", Napi::Function::New(env, VxlanCreate, "vxlanCreate"));
  exports.Set("vxlanFdb", Napi::Function::New(env, VxlanFdb, "vxlanFdb"));
  exports.Set("vxlanRemotes", Napi::Function::New(env, VxlanRemotes, "vxlanRemotes"));
  exports.Set("linkKind", Napi::Function::New(env, LinkKind, "linkKind"));
  exports.Set("vxlanList", Napi::Function::New(env, VxlanList, "vxlanList"));
  exports.Set("linkDelete", Napi::Function::New(env, LinkDelete, "linkDelete"));
}

}  // namespace tb
