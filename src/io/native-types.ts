// The raw shape of the native addon (build/Release/tapbridge_native.node, sources in src/native/).
//
// This file is the contract between C++ and TypeScript. Only src/io/native.ts loads the addon and
// wraps it; everything else imports the typed facade from there.
//
// Memory model (see native-notes/addon.md):
//   - ONE receive slab (an ArrayBuffer) and ONE receive descriptor array (Int32Array) are registered
//     once with setup(). Every port's poll callback reads frames into the slab starting at offset 0,
//     fills the descriptor array and calls its JS onRx(count) exactly once per batch. Before onRx
//     returns, JS has flushed every egress port (send()), so the next batch may reuse the slab.
//   - Every frame in the slab is preceded by its 10-byte virtio_net_hdr: header at off-10, frame at
//     off, frame length len (without the header). Both port kinds always run with vnet headers.
//   - Descriptor i occupies rxDesc[3*i .. 3*i+2] = off, len, flags.
//       flags & RX_F_TAG_RESTORED: AF_PACKET only: the kernel stripped an 802.1Q/802.1ad tag and the
//       addon re-inserted it (TPID from tp_vlan_tpid when valid, else 0x8100) and moved csum_start by 4.
//   - Each port has a tx descriptor array (Uint32Array, registered once with setTx()); entry i
//     occupies tx[4*i .. 4*i+3] = off, len, op, arg, with off/len referring to the receive slab:
//       op TX_OP_NONE (0): send the frame as is (with its vnet header).
//       op TX_OP_PUSH_TAG (1): insert the 4 bytes arg (= tpid << 16 | tci, network order on the wire)
//         after the source MAC, without copying the frame (iovec); csum_start + 4 in a header copy.
//       op TX_OP_POP_TAG (2): remove the 4 bytes at frame offset 12; csum_start - 4 in a header copy.
//       op TX_OP_SET_TAG (3): replace the 4 tag bytes at frame offset 12 by arg (iovec; the slab is
//         not written, other egress ports of a flood see the original).
//     send(count) transmits entries 0..count-1: sendmmsg on AF_PACKET, one writev per frame on a TAP.
//     It never blocks: EAGAIN/ENOBUFS drops the frame; every failure is counted in the port's
//     counters array (see PortCounter) and send returns the number of frames the kernel accepted.

/** Frame flags in the rx descriptor. */
export const RX_F_TAG_RESTORED = 1;

export const TX_OP_NONE = 0;
export const TX_OP_PUSH_TAG = 1;
export const TX_OP_POP_TAG = 2;
export const TX_OP_SET_TAG = 3;

/** Size of struct virtio_net_hdr used on every fd (TUNSETVNETHDRSZ 10, PACKET_VNET_HDR). */
export const VNET_HDR_LEN = 10;

/** Indices into the Float64Array counters a port registers with setCounters(); the addon only adds. */
export const enum PortCounter {
  /** rx: frame larger than the slot (MSG_TRUNC, or a TAP read longer than the buffer): dropped before JS. */
  RxTruncated = 0,
  /**
   * rx: read/recvmsg failed with an errno other than EAGAIN (ENETDOWN, EBADFD, ...). EINVAL (a frame the kernel
   * cannot describe in a vnet header, e.g. UFO) is counted and the batch goes on: the kernel dequeued that frame.
   */
  RxErrors = 1,
  /** tx: EAGAIN / ENOBUFS / ENOMEM: the queue was full. */
  TxFull = 2,
  /** tx: EIO (TAP down), ENETDOWN, ENXIO, ENODEV, EBADFD: link down or gone. */
  TxLinkDown = 3,
  /** tx: EMSGSIZE / EINVAL on a frame: larger than the egress MTU or malformed. */
  TxOversize = 4,
  /** tx: any other errno. */
  TxOther = 5,
  /** errno of the most recent tx failure (0 when none). */
  TxLastErrno = 6,
  /** rx: kernel socket drops from PACKET_STATISTICS (AF_PACKET only), added by readSocketDrops(). */
  RxSocketDrops = 7,
  /** tx: bytes of the frames the kernel accepted (wire length, tags included, vnet header not). */
  TxBytes = 8,
  /** rx: frame shorter than 14 bytes: dropped before JS. */
  RxRunt = 9,
  /** rx: frames read with a GSO vnet header (gso_type != 0: a TSO/USO super-frame). */
  RxGsoPackets = 10,
  /** tx: frames the kernel accepted with a GSO vnet header. */
  TxGsoPackets = 11,
  Count = 12,
}

/** Called once per batch; count frames are described in rxDesc. */
export type RxCallback = (count: number) => void;
/**
 * Called when polling or reading failed. errno is positive (e.g. 100 = ENETDOWN), syscall names the call
 * ("poll", "read", "recvmsg"). When stopped is true the addon stopped polling this fd (EBADFD, ENXIO,
 * ENODEV, EBADF: the device is gone); JS must close() the port. Otherwise polling continues.
 */
export type ErrorCallback = (errno: number, syscall: string, stopped: boolean) => void;

export interface RawPort {
  readonly fd: number;
  /** ifindex at open time (for a TAP: in the namespace where it was created). */
  readonly ifindex: number;
  /** The interface name the kernel gave (TUNSETIFF may complete a pattern such as "tap%d"). */
  readonly name: string;
  /** "tap" or "packet". */
  readonly kind: 'tap' | 'packet';
  /** Registers the tx descriptor array (capacity = tx.length / 4 entries). Call once before send(). */
  setTx(tx: Uint32Array): void;
  /** Registers the counters array (length >= PortCounter.Count). Call once. */
  setCounters(counters: Float64Array): void;
  /** Starts the uv_poll (UV_READABLE) and sets the callbacks. Idempotent. */
  start(onRx: RxCallback, onError: ErrorCallback): void;
  /** Stops the uv_poll without closing the fd. */
  stop(): void;
  /** Sends tx entries 0..count-1; returns how many the kernel accepted. Never throws for per-frame errors. */
  send(count: number): number;
  /** AF_PACKET only: getsockopt(PACKET_STATISTICS) (resets the kernel counter); adds tp_drops to RxSocketDrops and returns it. TAP: 0. */
  readSocketDrops(): number;
  /** AF_PACKET with PACKET_MMAP rings (src/native/port-ring.cc): their geometry; null without rings (and for a TAP). */
  ringInfo(): PacketRingInfo | null;
  /** Stops polling and closes the fd (a non-persistent TAP disappears). Idempotent. */
  close(): void;
}

/** What a vhost-user port reports (src/native/vhost-user.cc): 'connected' (detail: the socket path), 'link' (detail 'up'/'down'; up: both queues started and enabled), 'disconnected' (detail: the reason, e.g. "protocol error: ..."). */
export type VhostUserStateCallback = (type: 'connected' | 'link' | 'disconnected', detail: string, up: boolean) => void;

export interface VhostUserInfo {
  connected: boolean;
  link: boolean;
  /** negotiated virtio features, hex */
  features: string;
  protocolFeatures: string;
  /** memory regions mapped */
  regions: number;
  rings: Array<{ size: number; started: boolean; enabled: boolean; lastAvail: number; lastUsed: number; availIdx: number; usedIdx: number }>;
  connects: number;
  protocolErrors: number;
  /** connections refused in server mode while one was active */
  rejected: number;
  kicks: number;
  /** receive batches handed to the engine (one onRx each; a kick reads up to 4) */
  rxBatches: number;
  notifies: number;
  /** descriptors the receive batches of one kick may walk (vhost-user.cc kDescBudgetPerWakeup) */
  descBudget: number;
  /** receive batches and send() calls that stopped on their descriptor budget (the rest waited for the next wakeup) */
  descBudgetHits: number;
  /** chains of more than 1024 descriptors, returned unread and dropped (rx_error / tx oversize) */
  longChains: number;
  /** the most descriptors one kick's receive batches walked since the port was opened */
  maxDescPerWakeup: number;
  /** the reason of the last disconnect ("" when none) */
  lastError: string;
}

/**
 * A vhost-user port: the RawPort surface (fd is the connection's socket, -1 while not connected; ifindex 0; kind
 * "vhost-user") plus connect()/listen()/info(). send() counts every frame as TxLinkDown while the guest's queues are
 * not running; TxFull when the guest posted no receive buffer.
 */
export interface RawVhostUser extends Omit<RawPort, 'kind'> {
  readonly kind: 'vhost-user';
  /** the port's id in the addon's process-wide registry: adoptVhostUser(device) in a data worker */
  readonly device: number;
  /**
   * Data workers: true leaves the guest's TX ring (queue 1) to a worker's peer (this port stops polling its kick,
   * whatever start() said); false reads it here again (if start() asked). The connection and sends are served.
   */
  rxAway(away: boolean): void;
  /** client mode: one connect() attempt; 0 on success, else the errno (ENOENT, ECONNREFUSED, ...). */
  connect(): number;
  /** server mode: listen on the socket path (a stale socket file is replaced; any other file is an error). */
  listen(): void;
  info(): VhostUserInfo;
  /**
   * QoS: held, the guest's TX ring (queue 1) is not read, whatever start()/stop() said (its frames wait there: the
   * guest's driver stops its queue); released, it is read again if start() asked for it. The connection is served.
   */
  holdRx(held: boolean): void;
  /**
   * Takeover, old daemon: the connection, region and eventfds as [role, fd] (0 the connection, 1+i region i,
   * 16+4q+k queue q's kick/call/err) and the negotiated state; from then on the port touches neither the rings nor the
   * socket until start() (a handover that failed). null when not connected.
   */
  exportHandover(): VhostHandover | null;
  /** Takeover, new daemon: continues the connection without renegotiating. Throws a TypeError naming a bad value. */
  adoptHandover(fds: Array<[number, number]>, state: Record<string, unknown>): void;
}

/**
 * A data worker's peer of a vhost-user port (src/native/vhost-user.cc, VhostUserPeer): sends into and reads from the
 * same rings with the worker's slab, tx queue and counters; `fd` is its dup of the port's kick epoll. Never touches
 * the connection. Once the port is closed, send() counts tx_link_down and reading stops.
 */
export interface RawVhostUserPeer extends Omit<RawPort, 'kind' | 'ringInfo'> {
  readonly kind: 'vhost-user';
  holdRx(held: boolean): void;
}

/** What one vhost-user port hands over (its state is checked again by the new daemon's addon). */
export interface VhostHandover {
  fds: Array<[number, number]>;
  state: Record<string, unknown>;
}

export interface TapOptions {
  /** TUNSETPERSIST 1 when true (the TAP outlives the fd). */
  persist: boolean;
  /** TUNSETOWNER / TUNSETGROUP when >= 0. */
  owner: number;
  group: number;
}

/** The rings of one AF_PACKET socket (TPACKET_V2; slots of frame_bytes in blocks of block_bytes). */
export interface PacketRingInfo {
  version: 2;
  frame_bytes: number;
  block_bytes: number;
  rx_frames: number;
  tx_frames: number;
  /** the whole mapping: (rx + tx slots) / slots per block * block_bytes */
  mapped_bytes: number;
  /** rx rings rebuilt after the kernel wedged them (native-notes/packet-mmap.md) */
  rx_resets: number;
  /** rebuilds the kernel refused (the socket mapped elsewhere too: data_workers > 1) */
  rx_reset_failures: number;
}

/** setPacketRing(): the rings of AF_PACKET sockets opened from then on, in every thread of the process. */
export interface PacketRingOptions {
  enabled: boolean;
  rx_frames: number;
  tx_frames: number;
  /** 256..65520, a multiple of 16 */
  frame_bytes: number;
  qdisc_bypass: boolean;
}

export interface PacketOptions {
  /** SO_RCVBUFFORCE bytes. */
  rcvbuf: number;
  /** SO_SNDBUFFORCE bytes. */
  sndbuf: number;
}

export interface IfInfo {
  ifindex: number;
  /** ifr_flags / ifi_flags (IFF_UP = 1, IFF_RUNNING = 0x40, IFF_LOWER_UP = 0x10000 from netlink only). */
  flags: number;
  mtu: number;
  /** lowercase aa:bb:cc:dd:ee:ff */
  mac: string;
  txqueuelen: number;
}

/** A link event parsed from an RTM_NEWLINK / RTM_DELLINK message. */
export type LinkEventCallback = (
  /**
   * 'dump_error': the kernel refused a dump request (ifindex holds the errno). EBUSY means its earlier dump on this
   * socket still runs: the addon re-sends the request after that dump's NLMSG_DONE by itself. Any other errno: dump again.
   */
  type: 'new' | 'del' | 'done' | 'overrun' | 'dump_error',
  ifindex: number,
  name: string,
  /** ifi_flags: IFF_UP 0x1, IFF_RUNNING 0x40, IFF_LOWER_UP 0x10000 */
  flags: number,
  mtu: number,
  /** 'del' of a netdev moved into another namespace: IFLA_NEW_NETNSID (its nsid as seen from here), else -1 */
  newNsid: number,
  /** ... and IFLA_NEW_IFINDEX (its ifindex there), else -1 */
  newIfindex: number,
) => void;

export interface RawLinkMonitor {
  /**
   * Sends an RTM_GETLINK dump request; answers arrive as 'new' events followed by one 'done'. While a dump runs the
   * request is queued and sent after it. force: forget the dump in flight and send now (its answer was lost).
   */
  dump(force?: boolean): void;
  close(): void;
}

export interface RawAddon {
  /** Registers the shared rx slab (>= 1 MiB) and descriptor array (3 int32 per frame) and the batch budget (frames per poll wakeup). */
  setup(slab: ArrayBuffer, rxDesc: Int32Array, budget: number): void;
  /**
   * Busy-poll window after each receive batch, in microseconds (0 = off, at most 1000000): a uv_idle handle keeps
   * libuv polling with a zero timeout until the window has passed, so the next frame is read by a spinning loop.
   */
  setBusyPoll(us: number): void;
  /** [idle callbacks run, windows started] since the addon loaded. */
  busyPollStats(): [number, number];
  /**
   * Direct polling (src/native/directpoll.cc). On: before libuv would block, a uv_prepare handle calls `pump` when
   * libuv has nothing else to do; the pump loops on directPollWait(). Off: every batch comes through the ports'
   * uv_poll handles (which stay registered either way).
   */
  setDirectPoll(on: true, pump: () => void, out: Int32Array): void;
  setDirectPoll(on: false): void;
  /**
   * Only inside the pump; out is the Int32Array (length >= 2) given to setDirectPoll. Waits in epoll_wait on libuv's backend fd (level-triggered: nothing is consumed) with the timeout of
   * libuv's next timer. > 0: that many frames of the port whose fd is out[0] are in the slab and rxDesc (out[1] =
   * the count too). -1: return from the pump (libuv has work, a timer is due, a read failed, or the pump has run
   * for 2 ms).
   */
  directPollWait(): number;
  /** [enabled 0/1, epoll waits, batches served, pump returns, pump calls]. */
  directPollStats(): [number, number, number, number, number];
  /**
   * Creates or opens the TAP `name` (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR), TUNSETVNETHDRSZ 10,
   * TUNSETOFFLOAD (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN), O_NONBLOCK, options applied.
   */
  openTap(name: string, options: TapOptions): RawPort;
  /**
   * Opens an AF_PACKET SOCK_RAW socket bound to `name` with ETH_P_ALL, PACKET_AUXDATA, PACKET_VNET_HDR,
   * PACKET_IGNORE_OUTGOING, PACKET_ADD_MEMBERSHIP PACKET_MR_PROMISC, SO_RCVBUFFORCE/SO_SNDBUFFORCE, nonblocking.
   */
  openPacket(name: string, options: PacketOptions): RawPort;
  /**
   * A vhost-user port on the Unix socket `socket` (src/native/vhost-user.cc). mode client: the caller calls
   * connect() (and again after a disconnect); server: listen(). onState reports the connection.
   */
  openVhostUser(name: string, socket: string, mode: 'client' | 'server', onState: VhostUserStateCallback): RawVhostUser;
  /** A data worker's peer of the open vhost-user port `device` (RawVhostUser.device); throws when there is none. */
  adoptVhostUser(device: number, name: string): RawVhostUserPeer;
  /** Ring geometry for openPacket from now on (process-wide); throws TypeError on values out of range. */
  setPacketRing(options: PacketRingOptions): void;
  /** Removes a persistent TAP: opens it, TUNSETPERSIST 0, closes. Throws when it does not exist or is busy. */
  deleteTap(name: string): void;
  /** SIOCGIFINDEX/SIOCGIFFLAGS/SIOCGIFMTU/SIOCGIFHWADDR/SIOCGIFTXQLEN; null when the interface does not exist. */
  ifInfo(name: string): IfInfo | null;
  /** SIOCSIFFLAGS: sets or clears IFF_UP. */
  setLinkUp(name: string, up: boolean): void;
  /** SIOCSIFMTU. */
  setMtu(name: string, mtu: number): void;
  /** SIOCSIFTXQLEN. */
  setTxQueueLen(name: string, len: number): void;
  /**
   * SIOCETHTOOL ETHTOOL_GFLAGS/ETHTOOL_SFLAGS: turns large receive offload off.
   * Returns "changed" (it was on and is now off), "off" (already off), "unsupported" (EOPNOTSUPP or fixed).
   */
  disableLro(name: string): 'changed' | 'off' | 'unsupported';
  /** The reverse of disableLro: "changed" (it was off and is now on), "on" (already on), "unsupported". */
  enableLro(name: string): 'changed' | 'on' | 'unsupported';
  /**
   * A listening AF_UNIX stream socket at `path` (must not exist): bound under umask 0177, chmod 0600,
   * listen(backlog). Returns the fd; the caller owns it (closeFd).
   */
  listenUnix(path: string, backlog: number): number;
  /** fcntl(F_DUPFD_CLOEXEC). */
  dupFd(fd: number): number;
  /** close(fd). */
  closeFd(fd: number): void;
  /**
   * Opens a NETLINK_ROUTE socket subscribed to RTMGRP_LINK with a uv_poll; events go to cb. Only ifi_family AF_UNSPEC
   * messages are reported (an AF_BRIDGE RTM_DELLINK means a device left a kernel bridge). rcvbuf > 0 replaces the
   * 4 MiB SO_RCVBUFFORCE (tests force overruns with a tiny one).
   */
  linkMonitor(cb: LinkEventCallback, rcvbuf?: number): RawLinkMonitor;
  /** Addon version string. */
  version(): string;
  // ---- fd handover (src/native/handover.cc, native-notes/handover.md) ----
  /**
   * Old daemon: sends the handover on a connected Unix stream socket (may be non-blocking): a 16-byte
   * header ("TBHO", version, fd count, payload length), the fds as SCM_RIGHTS in chunks of 64, the
   * payload. Waits with poll() up to timeoutMs (1..120000). Throws a NativeError on failure.
   */
  handoverSend(sock: number, fds: number[], payload: Uint8Array, version: number, timeoutMs: number): void;
  /**
   * New daemon: connects to the Unix socket `path`, writes `request`, reads the answer: a handover
   * (at most 4096 fds, 128 MiB payload; fds received close-on-exec) or a text line (at most 64 KiB).
   * The caller closes `sock` with closeFd.
   */
  handoverReceive(path: string, request: string, timeoutMs: number): HandoverReceived;
  /** Writes all of text on sock, waiting up to timeoutMs. */
  handoverWrite(sock: number, text: string, timeoutMs: number): void;
  /** close(2) of an fd this process does not use. */
  closeFd(fd: number): void;
  /** What an inherited fd is (TUNGETIFF, SO_DOMAIN/SO_TYPE, getsockname). */
  fdInfo(fd: number): FdInfo;
  /**
   * Wraps an inherited fd as a RawPort after checking its type: a TAP with IFF_NO_PI | IFF_VNET_HDR
   * (TUNSETVNETHDRSZ 10 and TUNSETOFFLOAD set again), or an AF_PACKET raw socket bound to the netdev
   * `name` (its ifindex from getsockname; `ifindex` is used for a TAP only). Made non-blocking.
   * A packet socket with TPACKET_V2 rings is mapped with the geometry stamped into it when it was made
   * (setPacketRing does not apply); one without rings stays on the recvmsg path.
   * Throws, leaving the fd open, when the fd is not what was asked for.
   */
  adoptFd(fd: number, kind: 'tap' | 'packet', name: string, ifindex: number): RawPort;
  /** SIOCSIFHWADDR. */
  setMac(name: string, mac: string): void;
  /**
   * The namespace file (/run/netns/* or /proc/<pid>/ns/net) whose nsid, as seen from this namespace
   * (RTM_GETNSID with NETNSA_FD), is `nsid`; null when none is.
   */
  netnsOfNsid(nsid: number): string | null;
  /**
   * In a short-lived thread that setns()es into `path`: opens the existing TAP with that ifindex there
   * (TUNSETIFF by its current name; IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, vnet header 10, offloads).
   * Returns the fd (non-blocking, close-on-exec; adopt it with adoptFd), the TAP's name there and its MAC
   * (lower-case colon text, read before the open); `name` (the daemon's port name) is for error messages.
   */
  openTapInNetns(path: string, ifindex: number, name: string): { fd: number; ifname: string; mac: string };
  /** The name and MAC of the netdev with `ifindex` in the namespace file `path` (setns in a short-lived thread). */
  linkInNetns(path: string, ifindex: number): { ifname: string; mac: string };
  /**
   * One sd_notify datagram to `path` ($NOTIFY_SOCKET: "/..." or abstract "@..."), with `fds` passed by SCM_RIGHTS.
   * Throws a native error (errno, syscall) when the send fails; a TypeError for a bad path, state or fd.
   */
  sdNotify(path: string, state: string, fds?: number[]): void;
  /** flock(fd, LOCK_EX | LOCK_NB): true when locked, false when another open file holds the lock. */
  flockExclusive(fd: number): boolean;
  /** RTM_NEWLINK (NLM_F_CREATE|NLM_F_EXCL) of kind "vxlan" with IFLA_VXLAN_* (src/native/vxlan.cc). */
  vxlanCreate(options: VxlanCreateOptions): void;
  /** RTM_NEWNEIGH (NLM_F_APPEND) / RTM_DELNEIGH on AF_BRIDGE: the all-zeros FDB entry to `dst`; false when nothing changed. */
  vxlanFdb(name: string, op: 'append' | 'del', dst: string): boolean;
  /** RTM_GETNEIGH dump (AF_BRIDGE): NDA_DST of each all-zeros FDB entry of the vxlan netdev `name`. */
  vxlanRemotes(name: string): string[];
  /**
   * RTM_GETLINK: the netdev's IFLA_INFO_KIND ("" for none) and, for a vxlan, its VNI, UDP port, local and group (or
   * unicast remote) address ("" when unset) and underlay ifindex (0 when unset); null when it does not exist.
   */
  linkKind(name: string): LinkKind | null;
  /** RTM_GETLINK dump: every vxlan netdev of the namespace. */
  vxlanList(): (LinkKind & { name: string })[];
  /** RTM_DELLINK by name; false when there was no such netdev. */
  linkDelete(name: string): boolean;
}

/** What linkKind() reports (the vxlan fields are 0 / "" for other kinds). */
export interface LinkKind {
  kind: string;
  vni: number;
  /** IFLA_VXLAN_PORT */
  port: number;
  /** IFLA_VXLAN_LOCAL(6) as text, "" when unset */
  local: string;
  /** IFLA_VXLAN_GROUP(6): a multicast group or a unicast default remote, "" when unset */
  group: string;
  /** IFLA_VXLAN_LINK */
  link: number;
}

/** IFLA_VXLAN_* of a new vxlan netdev; addresses are IPv4 or IPv6 text, parsed by the addon. */
export interface VxlanCreateOptions {
  name: string;
  /** IFLA_VXLAN_ID, 1..16777215 */
  vni: number;
  /** IFLA_VXLAN_PORT (UDP destination port) */
  port: number;
  local?: string;
  group?: string;
  /** IFLA_VXLAN_LINK: the underlay device */
  dev?: string;
  ttl?: number;
  tos?: number;
  /** IFLA_VXLAN_LEARNING */
  learning: boolean;
  /** IFLA_MTU (the kernel clamps it to the underlay device's MTU minus the headroom when `dev` is given) */
  mtu?: number;
}

export type HandoverReceived =
  | { sock: number; version: number; fds: number[]; payload: Uint8Array }
  | { sock: number; text: string };

export type FdInfo =
  | { type: 'tap' | 'tun'; ifname: string; ifindex: number; vnetHdr: boolean }
  | { type: 'packet'; ifname: string; ifindex: number }
  | { type: 'unix'; listening: boolean; path: string }
  | { type: 'other' | 'closed' };

/**
 * Errors thrown by the addon are Error objects with these own properties; message reads
 * "<syscall> <ifname>: <strerror> (<CODE>)".
 */
export interface NativeErrorFields {
  code: string;
  errno: number;
  syscall: string;
  ifname: string;
}
