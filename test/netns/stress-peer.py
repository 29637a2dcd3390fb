# A stress-test peer (test/netns/stress-churn.test.ts): one AF_PACKET raw socket on IFNAME that both sends and
# receives test frames for a bounded time.
#
#   argv: one JSON object {ifname, token (hex, 4 bytes), rate (ticks/s), burst (frames per sender per tick),
#         duration_s, drain_s, log, mac,
#         senders: [{sid, vid, tagged}], cross: {VID: [MAC...]}}: one logical sender per VLAN (tagged: an 802.1Q tag
#         on its frames, a trunk); cross: MACs that live in another VLAN than VID (unicast to them must stay in VID).
#   stdin:  after "ready" the peer waits for one line "go", then sends 3 broadcasts per sender (so that the bridge
#           learns it), waits 1 s, sends for duration_s seconds, burst frames per sender rate times a second (bursts
#           fill the daemon's batches), and keeps receiving for drain_s seconds more.
#
# Test frame: DST SRC [8100 TCI] 88b5 "TBSTRS" TOKEN(4) SID(1) VID(2) SEQ(4) KIND(1) BODY_LEN(2) BODY, 60 to about
# 1100 bytes; BODY is a slice of a fixed byte pattern at an offset given by (sid, seq), so a frame that arrives cut,
# padded, or with bytes of another frame in it is caught (counted as mangled).
# KIND: 0 broadcast, 1 unicast to a peer MAC the sender first heard from at least 0.5 s ago (the bridge has learned it;
# the margin allows for a data path whose learning reaches its lookups a little later), 2 unicast to a MAC
# nobody has (unknown unicast: flooded), 3 unicast to a MAC of another VLAN (unknown in this one: flooded).
# Peers' MACs come from the frames it receives (SRC of frames of the same VLAN).
#
# log: one line per test frame received, in arrival order: "SID VID SEQ KIND TAG DSTMAC" with TAG the
# 802.1Q VID it arrived with (-1 untagged; from PACKET_AUXDATA when the kernel stripped it, or inline).
# stdout: "ready", then one JSON line {"sent": {SID: {"0": n, ...}}, "send_errors": n, "received": n, "other": n,
# "mangled": n}: other counts frames that are no test frame of this run, mangled test frames of this run out of shape.
import json, os, select, socket, struct, sys, time

cfg = json.loads(sys.argv[1])
ifname, token, rate, burst, duration, drain = cfg["ifname"], bytes.fromhex(cfg["token"]), float(cfg["rate"]), \
    int(cfg["burst"]), float(cfg["duration_s"]), float(cfg["drain_s"])
senders = [(int(x["sid"]), int(x["vid"]), bool(x["tagged"])) for x in cfg["senders"]]

ETH_P_ALL, SOL_PACKET, PACKET_AUXDATA, PACKET_IGNORE_OUTGOING = 0x0003, 263, 8, 23
TP_STATUS_VLAN_VALID = 1 << 4
MAGIC = b"TBSTRS" + token
PATTERN = bytes((i * 7 + 3) & 0xff for i in range(4096))
HDR = struct.Struct("!BHIBH")  # SID VID SEQ KIND BODY_LEN


def body_at(sid, seq):
    """Offset into PATTERN and length of the body of frame (sid, seq): lengths spread over 0..1040 bytes."""
    return (seq * 13 + sid) % 1024, (seq * 37 + sid * 11) % 1041
mac = lambda m: bytes(int(x, 16) for x in m.split(":"))
src = mac(cfg["mac"])
cross = {int(v): [mac(m) for m in ms] for v, ms in cfg.get("cross", {}).items()}
BCAST = b"\xff" * 6
# unknown unicast destinations: locally administered, never a source anywhere
UNKNOWN = [mac("02:00:00:13:ee:%02x" % i) for i in range(4)]

s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
try:
    s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
except OSError:
    pass
for opt in (33, 32):  # SO_RCVBUFFORCE, SO_SNDBUFFORCE (root): a loaded machine must not overflow the socket
    try:
        s.setsockopt(socket.SOL_SOCKET, opt, 8 << 20)
    except OSError:
        pass
s.bind((ifname, 0))
s.setblocking(False)

heard = {}      # vid -> {mac bytes: time first heard}: peers of that VLAN the bridge has learned (they sent through it)
LEARNED_AFTER_S = 0.5
log = []
stats = {"received": 0, "other": 0, "mangled": 0, "send_errors": 0}
sent = {sid: {k: 0 for k in range(4)} for sid, _, _ in senders}
seqs = {sid: 0 for sid, _, _ in senders}
ANC = socket.CMSG_SPACE(64)


def receive_all():
    while True:
        try:
            data, anc, flags, addr = s.recvmsg(2048, ANC)
        except (BlockingIOError, InterruptedError):
            return
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        tag = -1
        for level, typ, cdata in anc:
            if level == SOL_PACKET and typ == PACKET_AUXDATA and len(cdata) >= 20:
                status = struct.unpack("I", cdata[:4])[0]
                if status & TP_STATUS_VLAN_VALID:
                    tag = struct.unpack("H", cdata[16:18])[0] & 0xfff
        off = 12
        if len(data) >= 18 and data[12:14] in (b"\x81\x00", b"\x88\xa8"):
            if tag != -1:
                stats["other"] += 1  # two tags: never sent by any peer
                continue
            tag = struct.unpack("!H", data[14:16])[0] & 0xfff
            off = 16
        p = off + 12
        if data[off:off + 2] != b"\x88\xb5" or data[off + 2:p] != MAGIC or len(data) < p + HDR.size:
            # a test frame of this run out of shape (cut short, a tag lost or mangled) or anything else
            stats["mangled" if MAGIC in data else "other"] += 1
            continue
        sid, vid, seq, kind, body_len = HDR.unpack_from(data, p)
        o, n = body_at(sid, seq)
        q = p + HDR.size
        # exact: the body, then only the zero padding to 60 bytes a short frame was sent with (64 once tagged)
        if body_len != n or data[q:q + n] != PATTERN[o:o + n] or data[q + n:].strip(b"\0") != b"" or \
                len(data) > max(64, q + n):
            stats["mangled"] += 1
            continue
        stats["received"] += 1
        log.append("%d %d %d %d %d %s" % (sid, vid, seq, kind, tag, data[0:6].hex()))
        heard.setdefault(vid, {}).setdefault(bytes(data[6:12]), time.monotonic())


def frame(dst, vid, tagged, sid, seq, kind):
    head = dst + src + (struct.pack("!HH", 0x8100, vid) if tagged else b"") + b"\x88\xb5"
    o, n = body_at(sid, seq)
    f = head + MAGIC + HDR.pack(sid, vid, seq, kind, n) + PATTERN[o:o + n]
    return f + b"\0" * max(0, 60 - len(f))


def send_one(sid, vid, tagged, kind, dst):
    seq = seqs[sid]
    seqs[sid] = seq + 1
    try:
        s.send(frame(dst, vid, tagged, sid, seq, kind))
        sent[sid][kind] += 1
    except (BlockingIOError, OSError):
        stats["send_errors"] += 1


print("ready", flush=True)
line = sys.stdin.readline()
if not line.startswith("go"):
    sys.exit(1)
t0 = time.monotonic()
for _ in range(3):
    for sid, vid, tagged in senders:
        send_one(sid, vid, tagged, 0, BCAST)
    receive_all()
    time.sleep(0.05)
start, end = t0 + 1.0, t0 + 1.0 + duration
while time.monotonic() < start:
    select.select([s], [], [], 0.05)
    receive_all()

n = 0
interval = 1.0 / rate
next_at = time.monotonic()
while True:
    now = time.monotonic()
    if now >= end:
        break
    while next_at <= now:
        for sid, vid, tagged in senders:
            mine = [m for m, at in heard.get(vid, {}).items() if m != src and now - at >= LEARNED_AFTER_S]
            others = cross.get(vid, [])
            for b in range(burst):
                k, i = (n + b) % 8, (n + b) // 8
                if k in (1, 3, 5) and mine:
                    send_one(sid, vid, tagged, 1, mine[i % len(mine)])
                elif k == 6:
                    send_one(sid, vid, tagged, 2, UNKNOWN[i % len(UNKNOWN)])
                elif k == 7 and others:
                    send_one(sid, vid, tagged, 3, others[i % len(others)])
                else:
                    send_one(sid, vid, tagged, 0, BCAST)
        n += burst
        next_at += interval
        if next_at < now - 0.5:  # far behind (the machine stalled): skip ahead instead of bursting
            next_at = now
    select.select([s], [], [], max(0.0, min(next_at, end) - time.monotonic()))
    receive_all()

stop = time.monotonic() + drain
while time.monotonic() < stop:
    select.select([s], [], [], 0.05)
    receive_all()

with open(cfg["log"], "w") as f:
    f.write("\n".join(log) + ("\n" if log else ""))
print(json.dumps({"sent": {str(k): v for k, v in sent.items()}, "send_errors": stats["send_errors"],
                  "received": stats["received"], "other": stats["other"], "mangled": stats["mangled"]}), flush=True)
