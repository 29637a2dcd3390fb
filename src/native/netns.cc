// tapbridge_native: reaching a persistent TAP that was moved into another network namespace (after a
// SIGKILL the daemon holds no fd of it). See native-notes/handover.md.
//
//   netnsOfNsid(nsid)                  the path of the namespace that has `nsid` as seen from ours:
//                                      each of /run/netns/* and /proc/<pid>/ns/net (deduplicated by
//                                      inode) is asked with RTM_GETNSID (NETNSA_FD); null when none
//   openTapInNetns(path, ifindex, name) -> {fd, ifname, mac}: a short-lived thread setns()es into `path`, names the
//                                      netdev with that ifindex there, reads its MAC (SIOCGIFHWADDR), opens
//                                      it with TUNSETIFF (only an existing TAP: IFF_TAP | IFF_NO_PI |
//                                      IFF_VNET_HDR), sets the vnet header size and offloads, and exits;
//                                      the fd keeps working in the daemon's namespace. Only that thread
//                                      changes namespace.
//   linkInNetns(path, ifindex) -> {ifname, mac}: the same thread's look-up alone (what a moved TAP is
//                                      called and which MAC it has, recorded when it moves)
//
// setns(CLONE_NEWNET) needs CAP_SYS_ADMIN (the systemd unit keeps it for this).
#include "common.h"
#include "port.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <linux/net_namespace.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace tb {

namespace {

constexpr size_t kMaxCandidates = 65536;

// RTM_GETNSID for the namespace behind nsFd: its nsid in our namespace, -1 when none is assigned,
// -2 on a netlink error.
int NsidOf(int nl, int nsFd, uint32_t seq) {
  struct {
    struct nlmsghdr nh;
    struct rtgenmsg g;
    char pad[3];
    struct rtattr a;
    uint32_t fd;
  } req;
  std::memset(&req, 0, sizeof req);
  req.nh.nlmsg_len = sizeof req;
  req.nh.nlmsg_type = RTM_GETNSID;
  req.nh.nlmsg_flags = NLM_F_REQUEST;
  req.nh.nlmsg_seq = seq;
  req.g.rtgen_family = AF_UNSPEC;
  req.a.rta_type = NETNSA_FD;
  req.a.rta_len = RTA_LENGTH(sizeof(uint32_t));
  req.fd = static_cast<uint32_t>(nsFd);
  if (::send(nl, &req, sizeof req, 0) < 0) return -2;
  alignas(struct nlmsghdr) uint8_t buf[4096];
  for (;;) {
    ssize_t n = ::recv(nl, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -2;
    }
    int len = static_cast<int>(n);
    for (struct nlmsghdr* nh = reinterpret_cast<struct nlmsghdr*>(buf); NLMSG_OK(nh, len); nh = NLMSG_NEXT(nh, len)) {
      if (nh->nlmsg_seq != seq) continue;
      if (nh->nlmsg_type == NLMSG_ERROR) return -2;
      if (nh->nlmsg_type != RTM_NEWNSID || nh->nlmsg_len < NLMSG_LENGTH(sizeof(struct rtgenmsg))) continue;
      int alen = static_cast<int>(nh->nlmsg_len - NLMSG_LENGTH(NLMSG_ALIGN(sizeof(struct rtgenmsg))));
      const struct rtattr* a = reinterpret_cast<const struct rtattr*>(
          static_cast<uint8_t*>(NLMSG_DATA(nh)) + NLMSG_ALIGN(sizeof(struct rtgenmsg)));
      for (; RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
        if (a->rta_type == NETNSA_NSID && RTA_PAYLOAD(a) >= sizeof(int32_t)) {
          int32_t id;
          std::memcpy(&id, RTA_DATA(a), sizeof id);
          return id < 0 ? -1 : id;
        }
      }
      return -1;
    }
  }
}

void Candidates(std::vector<std::string>* out) {
  if (DIR* d = opendir("/run/netns")) {
    while (struct dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      out->push_back(std::string("/run/netns/") + e->d_name);
      if (out->size() >= kMaxCandidates) break;
    }
    closedir(d);
  }
  if (DIR* d = opendir("/proc")) {
    while (struct dirent* e = readdir(d)) {
      if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
      out->push_back(std::string("/proc/") + e->d_name + "/ns/net");
      if (out->size() >= kMaxCandidates) break;
    }
    closedir(d);
  }
}

// SIOCGIFHWADDR of `ifname` in the calling thread's namespace, as "aa:bb:cc:dd:ee:ff"; false with errno set.
bool MacOf(const char* ifname, std::string* out) {
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return false;
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  std::memcpy(ifr.ifr_name, ifname, strnlen(ifname, IFNAMSIZ - 1));
  int r = ioctl(s, SIOCGIFHWADDR, &ifr);
  int e = errno;
  ::close(s);
  if (r < 0) {
    errno = e;
    return false;
  }
  const uint8_t* m = reinterpret_cast<const uint8_t*>(ifr.ifr_hwaddr.sa_data);
  char text[18];
  std::snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  *out = text;
  return true;
}

// The (path: string, ifindex: number) arguments at info[0..1] of `fn`, whose signature `usage` spells out and which
// takes `argc` arguments; false with a TypeError thrown.
bool GetNetnsLinkArgs(const Napi::CallbackInfo& info, size_t argc, const char* fn, const char* usage, std::string* path,
                      int64_t* ifindex) {
  Napi::Env env = info.Env();
  if (info.Length() < argc || !info[0].IsString()) {
    ThrowType(env, usage);
    return false;
  }
  *path = info[0].As<Napi::String>().Utf8Value();
  if (path->empty() || path->size() > 4096 || path->find('\0') != std::string::npos) {
    ThrowType(env, std::string(fn) + ": bad namespace path");
    return false;
  }
  return GetInt(info[1], "ifindex", 1, 0x7fffffff, ifindex);
}

// What a failed look-up names (the namespace is the TAP's, or any).
struct LookupCalls {
  const char* indexToName;
  const char* hwaddr;
};
constexpr LookupCalls kInTapNetns = {"if_indextoname (in the TAP's namespace)", "ioctl(SIOCGIFHWADDR) (in the TAP's namespace)"};
constexpr LookupCalls kInNetns = {"if_indextoname (in the namespace)", "ioctl(SIOCGIFHWADDR) (in the namespace)"};

// In the calling thread's namespace: the name (into ifname, IF_NAMESIZE bytes) and MAC of the netdev `ifindex`;
// false with *err and *what (from `calls`) set.
bool NameAndMacOf(int64_t ifindex, const LookupCalls& calls, char* ifname, std::string* mac, int* err, const char** what) {
  if (if_indextoname(static_cast<unsigned>(ifindex), ifname) == nullptr) {
    *err = errno;
    *what = calls.indexToName;
    return false;
  }
  if (!MacOf(ifname, mac)) {
    *err = errno;
    *what = calls.hwaddr;
    return false;
  }
  return true;
}

// In a short-lived thread: setns into `path`, then `body` (which sets err/what on failure). Only that thread moves.
template <typename F>
void InNetns(const std::string& path, int* err, const char** what, F body) {
  std::thread t([&]() {
    int ns = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0) {
      *err = errno;
      *what = "open(netns)";
      return;
    }
    int r = setns(ns, CLONE_NEWNET);
    int e = errno;
    ::close(ns);
    if (r < 0) {
      *err = e;
      *what = "setns(CLONE_NEWNET)";
      return;
    }
    body();
  });
  t.join();
}

}  // namespace

// netnsOfNsid(nsid: number): string | null
static Napi::Value NetnsOfNsid(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t nsid;
  if (info.Length() < 1 || !GetInt(info[0], "nsid", 0, 0x7fffffff, &nsid)) return env.Undefined();
  int nl = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (nl < 0) {
    ThrowSysError(env, errno, "socket(NETLINK_ROUTE)", "netns");
    return env.Undefined();
  }
  struct timeval tv = {1, 0};
  setsockopt(nl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::vector<std::string> cands;
  Candidates(&cands);
  std::set<std::pair<dev_t, ino_t>> seen;
  struct stat self;
  bool haveSelf = stat("/proc/self/ns/net", &self) == 0;
  uint32_t seq = 1;
  std::string found;
  for (const std::string& path : cands) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat st;
    if (fstat(fd, &st) < 0 || !seen.insert({st.st_dev, st.st_ino}).second ||
        (haveSelf && st.st_dev == self.st_dev && st.st_ino == self.st_ino)) {
      ::close(fd);
      continue;
    }
    int id = NsidOf(nl, fd, seq++);
    ::close(fd);
    if (id == static_cast<int>(nsid)) {
      found = path;
      break;
    }
  }
  ::close(nl);
  if (found.empty()) return env.Null();
  return Napi::String::New(env, found);
}

// openTapInNetns(path: string, ifindex: number, name: string): {fd, ifname}; the caller adopts the fd
static Napi::Value OpenTapInNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  int64_t ifindex;
  if (!GetNetnsLinkArgs(info, 3, "openTapInNetns", "openTapInNetns(path: string, ifindex: number, name: string)", &path, &ifindex)) {
    return env.Undefined();
  }
  std::string name;
  if (!GetIfName(info, 2, &name)) return env.Undefined();

  int tapFd = -1, err = 0;
  const char* what = "";
  char ifname[IF_NAMESIZE] = {0};
  std::string mac;
  InNetns(path, &err, &what, [&]() {
    if (!NameAndMacOf(ifindex, kInTapNetns, ifname, &mac, &err, &what)) return;
    int fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      err = errno;
      what = "open(/dev/net/tun)";
      return;
    }
    struct ifreq ifr;
    std::memset(&ifr, 0, sizeof ifr);
    std::memcpy(ifr.ifr_name, ifname, strnlen(ifname, IFNAMSIZ - 1));
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    int hdrsz = static_cast<int>(kVnetHdrLen);
    unsigned long offl = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
    // TUNSETIFF attaches to the existing device of that name: a TUN, or a TAP of other flags, fails
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
      what = "ioctl(TUNSETIFF) (in the TAP's namespace)";
    } else if (ioctl(fd, TUNSETVNETHDRSZ, &hdrsz) < 0) {
      what = "ioctl(TUNSETVNETHDRSZ)";
    } else if (ioctl(fd, TUNSETOFFLOAD, offl) < 0) {
      what = "ioctl(TUNSETOFFLOAD)";
    } else {
      tapFd = fd;
      return;
    }
    err = errno;
    ::close(fd);
  });
  if (tapFd < 0) {
    ThrowSysError(env, err, what, name + " (moved, ifindex " + std::to_string(ifindex) + " in " + path + ")");
    return env.Undefined();
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("fd", tapFd);
  o.Set("ifname", std::string(ifname));
  o.Set("mac", mac);
  return o;
}

// linkInNetns(path, ifindex): { ifname, mac } of the netdev with that ifindex in the namespace `path`.
static Napi::Value LinkInNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  int64_t ifindex;
  if (!GetNetnsLinkArgs(info, 2, "linkInNetns", "linkInNetns(path: string, ifindex: number)", &path, &ifindex)) return env.Undefined();
  int err = 0;
  const char* what = "";
  char ifname[IF_NAMESIZE] = {0};
  std::string mac;
  InNetns(path, &err, &what, [&]() { NameAndMacOf(ifindex, kInNetns, ifname, &mac, &err, &what); });
  if (err != 0) {
    ThrowSysError(env, err, what, "ifindex " + std::to_string(ifindex) + " in " + path);
    return env.Undefined();
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("ifname", std::string(ifname));
  o.Set("mac", mac);
  return o;
}

void InitNetns(Napi::Env env, Napi::Object exports) {
  exports.Set("netnsOfNsid", Napi::Function::New(env, NetnsOfNsid, "netnsOfNsid"));
  exports.Set("openTapInNetns", Napi::Function::New(env, OpenTapInNetns, "openTapInNetns"));
  exports.Set("linkInNetns", Napi::Function::New(env, LinkInNetns, "linkInNetns"));
}

}  // namespace tb
