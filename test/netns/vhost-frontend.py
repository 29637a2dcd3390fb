#!/usr/bin/env python3
# A vhost-user frontend for tests (the role QEMU plays): shares a memfd as guest memory, sets up the two virtqueues of
# a virtio-net device and then either acts as a tiny IPv4 host (answers ARP and ICMP echo for its address) or sends
# one hostile input and reports whether tapbridge closed the connection.
#
#   vhost-frontend.py SOCKET listen|connect host MAC IP SECONDS
#   vhost-frontend.py SOCKET listen|connect hostile NAME [NAME...]
#   vhost-frontend.py SOCKET listen|connect burst MAC COUNT SECONDS
#   vhost-frontend.py SOCKET listen|connect trickle MAC SECONDS
#   vhost-frontend.py SOCKET listen|connect longchains SECONDS
#   vhost-frontend.py SOCKET listen|connect polite MAC COUNT SECONDS event_idx|no_event_idx
#
# listen: this frontend is the server (tapbridge mode client); connect: tapbridge listens (mode server).
# hostile prints "closed NAME" when tapbridge closed the connection within 5 s, else "open NAME"; one connection
# per NAME (tapbridge reconnects in client mode).
# burst puts COUNT broadcast frames (1000 bytes, ethertype 0x88b5) into its TX ring at once (COUNT < 256), prints
# "ready", then every 0.2 s "consumed N" (the used entries tapbridge returned) for SECONDS.
# trickle sends one such frame every 0.05 s while fewer than 128 are unconsumed, and prints "consumed N" every 0.1 s.
# longchains (a guest that makes tapbridge walk as many descriptors as the protocol allows): its TX queue has the
# largest size (32768), every entry of it is one indirect descriptor to the same table of 32768 chained 1-byte
# buffers; it keeps the ring full (each returned chain is posted again and kicked) and prints "consumed N" (chains
# returned in all) every 0.2 s for SECONDS, or "closed" when tapbridge closes the connection.
# polite (a driver that honours notification suppression, as Linux's virtio_net and DPDK's virtio do): posts COUNT
# frames (200 bytes, ethertype 0x88b5) into its TX ring in bursts of 1 to 64 with random pauses, keeping at most NUM
# in flight, and kicks only when the ring allows it: with EVENT_IDX (event_idx) when the new avail index passed
# avail_event (vring_need_event), else when VRING_USED_F_NO_NOTIFY is clear. When all are posted (or SECONDS passed)
# it waits up to 5 s, kicking nothing more, for tapbridge to return them, and prints "posted P consumed C kicks K".
# A backend that re-enables kicks without looking at the ring again leaves C < P (a lost wakeup).
import mmap, os, select, socket, struct, sys, time

GET_FEATURES, SET_FEATURES, SET_OWNER = 1, 2, 3
SET_MEM_TABLE = 5
SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE, GET_VRING_BASE = 8, 9, 10, 11
SET_VRING_KICK, SET_VRING_CALL = 12, 13
GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES = 15, 16
SET_VRING_ENABLE = 18

F_MRG_RXBUF = 1 << 15
F_INDIRECT = 1 << 28
F_EVENT_IDX = 1 << 29
F_PROTOCOL = 1 << 30
F_VERSION_1 = 1 << 32

MEM = 8 << 20
UVA = 0x7F0000000000  # the frontend's "user address" of the region (ring addresses are given in it)
NUM = 256
RING = [0x0, 0x10000]  # queue q's rings at RING[q]: desc +0, avail +0x1000, used +0x2000
RXBUF, TXBUF, BUFSZ = 0x100000, 0x200000, 2048
HDR = 12
NEXT, WRITE, INDIRECT = 1, 2, 4


class Dev:
    def __init__(self, sock):
        self.sock = sock
        self.fd = os.memfd_create("guest", 0)
        os.ftruncate(self.fd, MEM)
        self.mem = mmap.mmap(self.fd, MEM)
        self.m16 = memoryview(self.mem).cast("H")
        self.kick = [os.eventfd(0, os.EFD_NONBLOCK), os.eventfd(0, os.EFD_NONBLOCK)]
        self.call = [os.eventfd(0, os.EFD_NONBLOCK), os.eventfd(0, os.EFD_NONBLOCK)]
        self.avail_idx = [0, 0]
        self.used_seen = [0, 0]
        self.tx_next = 0

    def send(self, req, payload=b"", fds=(), size=None):
        hdr = struct.pack("<III", req, 1, len(payload) if size is None else size)
        if fds:
            socket.send_fds(self.sock, [hdr + payload], list(fds))
        else:
            self.sock.sendall(hdr + payload)

    def reply(self):
        h = self.recvall(12)
        req, flags, size = struct.unpack("<III", h)
        return self.recvall(size)

    def recvall(self, n):
        b = b""
        while len(b) < n:
            c = self.sock.recv(n - len(b))
            if not c:
                raise ConnectionError("closed")
            b += c
        return b

    def u64(self, req, v):
        self.send(req, struct.pack("<Q", v))

    def state(self, req, idx, num):
        self.send(req, struct.pack("<II", idx, num))

    def mem_table(self, regions=None):
        regions = regions or [(0, MEM, UVA, 0)]
        p = struct.pack("<II", len(regions), 0) + b"".join(struct.pack("<QQQQ", *r) for r in regions)
        self.send(SET_MEM_TABLE, p, fds=[self.fd] * len(regions))

    def vring_addr(self, q, desc=None, used=None, avail=None):
        base = UVA + RING[q]
        self.send(SET_VRING_ADDR, struct.pack("<IIQQQQ", q, 0, desc or base, used or base + 0x2000, avail or base + 0x1000, 0))

    def setup(self, start=True, event_idx=True):
        self.send(GET_FEATURES)
        feats = struct.unpack("<Q", self.reply())[0]
        self.send(GET_PROTOCOL_FEATURES)
        self.reply()
        self.u64(SET_PROTOCOL_FEATURES, 0)
        self.send(SET_OWNER)
        want = feats & (F_VERSION_1 | F_MRG_RXBUF | F_EVENT_IDX | F_INDIRECT | F_PROTOCOL)
        if not event_idx:
            want &= ~F_EVENT_IDX
        self.features = want
        self.u64(SET_FEATURES, want)
        self.mem_table()
        if not start:
            return
        for q in (0, 1):
            self.start_queue(q)
        self.post_rx(NUM)

    def start_queue(self, q):
        self.state(SET_VRING_NUM, q, NUM)
        self.state(SET_VRING_BASE, q, 0)
        self.vring_addr(q)
        self.send(SET_VRING_CALL, struct.pack("<Q", q), fds=[self.call[q]])
        self.send(SET_VRING_KICK, struct.pack("<Q", q), fds=[self.kick[q]])
        self.state(SET_VRING_ENABLE, q, 1)

    # ---- rings ----
    def desc(self, q, i, addr, ln, flags, nxt=0, table=None):
        off = (RING[q] if table is None else table) + 16 * i
        self.mem[off:off + 16] = struct.pack("<QIHH", addr, ln, flags, nxt)

    def st16(self, off, v):
        # One 16-bit store, as a driver's WRITE_ONCE: tapbridge reads these words while we write them, and
        # struct.pack_into clears the bytes before it writes the value (tapbridge then sees the index at 0 for a moment,
        # "avail idx 0 is N ahead", and closes the connection)
        self.m16[off // 2] = v & 0xFFFF

    def avail_push(self, q, head, idx_override=None):
        a = RING[q] + 0x1000
        i = self.avail_idx[q]
        self.st16(a + 4 + 2 * (i % NUM), head)
        self.avail_idx[q] = (i + 1) & 0xFFFF
        self.st16(a + 2, self.avail_idx[q] if idx_override is None else idx_override)

    def notify(self, q):
        os.eventfd_write(self.kick[q], 1)

    def post_rx(self, n):
        for _ in range(n):
            i = self.avail_idx[0] % NUM
            self.desc(0, i, RXBUF + i * BUFSZ, BUFSZ, WRITE)
            self.avail_push(0, i)
        # used_event: interrupt on every used entry
        self.st16(RING[0] + 0x1000 + 4 + 2 * NUM, self.used_seen[0])
        self.notify(0)

    def send_frame(self, frame, kick=True):
        i = self.tx_next % NUM
        self.tx_next += 1
        addr = TXBUF + i * BUFSZ
        data = bytes(HDR) + frame
        self.mem[addr:addr + len(data)] = data
        self.desc(1, i, addr, len(data), 0)
        self.avail_push(1, i)
        if kick:
            self.notify(1)

    def receive(self):
        used = RING[0] + 0x2000
        out = []
        idx = struct.unpack_from("<H", self.mem, used + 2)[0]
        while self.used_seen[0] != idx:
            e = self.used_seen[0] % NUM
            head, ln = struct.unpack_from("<II", self.mem, used + 4 + 8 * e)
            addr = RXBUF + head * BUFSZ
            out.append(bytes(self.mem[addr + HDR:addr + ln]))
            self.used_seen[0] = (self.used_seen[0] + 1) & 0xFFFF
            self.avail_push(0, head)  # the same descriptor and buffer, posted again
        self.st16(RING[0] + 0x1000 + 4 + 2 * NUM, self.used_seen[0])
        return out


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def host(dev, mac, ip, seconds):
    mac_b = bytes.fromhex(mac.replace(":", ""))
    ip_b = socket.inet_aton(ip)
    dev.setup()
    # one gratuitous ARP so the bridge learns our MAC
    garp = b"\xff" * 6 + mac_b + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac_b + ip_b + bytes(6) + ip_b
    dev.send_frame(garp)
    print("ready", flush=True)
    end = time.time() + seconds
    answered = 0
    while time.time() < end:
        r, _, _ = select.select([dev.call[0], dev.sock], [], [], 0.2)
        if dev.sock in r:
            try:
                if not dev.sock.recv(1, socket.MSG_PEEK):
                    print("closed", flush=True)
                    return
            except OSError:
                return
        if dev.call[0] in r:
            try:
                os.eventfd_read(dev.call[0])
            except BlockingIOError:
                pass
        for f in dev.receive():
            if len(f) < 42:
                continue
            et = struct.unpack("!H", f[12:14])[0]
            if et == 0x0806 and f[38:42] == ip_b and struct.unpack("!H", f[20:22])[0] == 1:
                rep = f[6:12] + mac_b + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2) + mac_b + ip_b + f[22:28] + f[28:32]
                dev.send_frame(rep)
            elif et == 0x0800 and f[30:34] == ip_b and f[23] == 6:
                # TCP to us: this frontend negotiated no GUEST_CSUM, so tapbridge must have completed the checksum
                ihl = (f[14] & 15) * 4
                tot = struct.unpack("!H", f[16:18])[0]
                seg = f[14 + ihl:14 + tot]
                pseudo = f[26:34] + struct.pack("!BBH", 0, 6, len(seg))
                print("tcp csum %s" % ("ok" if csum(pseudo + seg) == 0 else "bad"), flush=True)
            elif et == 0x0800 and f[30:34] == ip_b and f[23] == 1 and f[34] == 8:
                ihl = (f[14] & 15) * 4
                tot = struct.unpack("!H", f[16:18])[0]
                iph = bytearray(f[14:14 + ihl])
                iph[12:16], iph[16:20] = f[30:34], f[26:30]
                iph[10:12] = b"\0\0"
                iph[10:12] = struct.pack("!H", csum(bytes(iph)))
                icmp = bytearray(f[14 + ihl:14 + tot])
                icmp[0] = 0
                icmp[2:4] = b"\0\0"
                icmp[2:4] = struct.pack("!H", csum(bytes(icmp)))
                dev.send_frame(f[6:12] + mac_b + b"\x08\x00" + bytes(iph) + bytes(icmp))
                answered += 1
    print("answered %d" % answered, flush=True)


def burst(dev, mac, count, seconds):
    mac_b = bytes.fromhex(mac.replace(":", ""))
    dev.setup()
    for i in range(count):
        dev.send_frame(b"\xff" * 6 + mac_b + b"\x88\xb5" + struct.pack("!I", i) + bytes(982))
    print("ready", flush=True)
    used = RING[1] + 0x2000
    end = time.time() + seconds
    while time.time() < end:
        print("consumed %d" % struct.unpack_from("<H", dev.mem, used + 2)[0], flush=True)
        time.sleep(0.2)


def trickle(dev, mac, seconds):
    mac_b = bytes.fromhex(mac.replace(":", ""))
    dev.setup()
    print("ready", flush=True)
    used = RING[1] + 0x2000
    end = time.time() + seconds
    i = 0
    last_print = 0.0
    while time.time() < end:
        done = struct.unpack_from("<H", dev.mem, used + 2)[0]
        if dev.tx_next - done < 128:
            dev.send_frame(b"\xff" * 6 + mac_b + b"\x88\xb5" + struct.pack("!I", i) + bytes(182))
            i += 1
        if time.time() - last_print >= 0.1:
            print("consumed %d" % done, flush=True)
            last_print = time.time()
        time.sleep(0.05)


def need_event(event, new, old):
    # virtio spec 2.7.10 (vring_need_event)
    return ((new - event - 1) & 0xFFFF) < ((new - old) & 0xFFFF)


def polite(dev, mac, count, seconds, event_idx):
    import random
    mac_b = bytes.fromhex(mac.replace(":", ""))
    dev.setup(event_idx=event_idx)
    print("ready", flush=True)
    used = RING[1] + 0x2000
    avail_event = used + 4 + 8 * NUM
    rnd = random.Random(count)
    posted = kicks = 0
    end = time.time() + seconds
    while posted < count and time.time() < end:
        done = struct.unpack_from("<H", dev.mem, used + 2)[0]
        room = NUM - ((posted - done) & 0xFFFF)
        n = min(rnd.randint(1, 64), room, count - posted)
        if n > 0:
            old = dev.avail_idx[1]
            for _ in range(n):
                dev.send_frame(b"\xff" * 6 + mac_b + b"\x88\xb5" + struct.pack("!I", posted) + bytes(182), kick=False)
                posted += 1
            # the driver's barrier between publishing the avail index and reading the device's suppression (a
            # syscall-free Python cannot fence; os.sched_yield() is a system call, which drains the store buffer)
            os.sched_yield()
            new = dev.avail_idx[1]
            if event_idx:
                allowed = need_event(struct.unpack_from("<H", dev.mem, avail_event)[0], new, old)
            else:
                allowed = not (struct.unpack_from("<H", dev.mem, used)[0] & 1)
            if allowed:
                dev.notify(1)
                kicks += 1
        r = rnd.random()
        if r < 0.3:
            time.sleep(rnd.random() * 0.003)
        elif r < 0.35:
            time.sleep(0.02)
    wait_end = time.time() + 5
    while time.time() < wait_end:
        if struct.unpack_from("<H", dev.mem, used + 2)[0] == (posted & 0xFFFF):
            break
        time.sleep(0.01)
    done = struct.unpack_from("<H", dev.mem, used + 2)[0]
    consumed = posted - ((posted - done) & 0xFFFF)
    print("posted %d consumed %d kicks %d" % (posted, consumed, kicks), flush=True)


LONG_NUM = 32768
LONG_DESC, LONG_AVAIL, LONG_USED, LONG_TABLE = 0x400000, 0x480000, 0x4A0000, 0x500000


def longchains(dev, seconds):
    dev.setup(start=False)
    dev.start_queue(0)
    dev.post_rx(NUM)
    q = 1
    dev.state(SET_VRING_NUM, q, LONG_NUM)
    dev.state(SET_VRING_BASE, q, 0)
    dev.vring_addr(q, desc=UVA + LONG_DESC, used=UVA + LONG_USED, avail=UVA + LONG_AVAIL)
    # the indirect table: LONG_NUM one-byte buffers, each NEXT to the following one
    table = bytearray(16 * LONG_NUM)
    for j in range(LONG_NUM):
        last = j == LONG_NUM - 1
        struct.pack_into("<QIHH", table, 16 * j, TXBUF + (j & 1023), 1, 0 if last else NEXT, 0 if last else j + 1)
    dev.mem[LONG_TABLE:LONG_TABLE + len(table)] = bytes(table)
    ring = bytearray(16 * LONG_NUM)
    for i in range(LONG_NUM):
        struct.pack_into("<QIHH", ring, 16 * i, LONG_TABLE, 16 * LONG_NUM, INDIRECT, 0)
    dev.mem[LONG_DESC:LONG_DESC + len(ring)] = bytes(ring)
    avail = bytearray(2 * LONG_NUM)
    for i in range(LONG_NUM):
        struct.pack_into("<H", avail, 2 * i, i)
    dev.mem[LONG_AVAIL + 4:LONG_AVAIL + 4 + len(avail)] = bytes(avail)
    posted = LONG_NUM
    dev.st16(LONG_AVAIL + 2, posted)
    dev.send(SET_VRING_CALL, struct.pack("<Q", q), fds=[dev.call[q]])
    dev.send(SET_VRING_KICK, struct.pack("<Q", q), fds=[dev.kick[q]])
    dev.state(SET_VRING_ENABLE, q, 1)
    dev.notify(q)
    print("ready", flush=True)
    seen = 0  # used entries read back (the ring's 16-bit index)
    total = 0
    end = time.time() + seconds
    last_print = 0.0
    while time.time() < end:
        r, _, _ = select.select([dev.sock], [], [], 0.01)
        if dev.sock in r:
            try:
                if not dev.sock.recv(1, socket.MSG_PEEK):
                    print("closed", flush=True)
                    return
            except OSError:
                print("closed", flush=True)
                return
        used_idx = struct.unpack_from("<H", dev.mem, LONG_USED + 2)[0]
        while seen != used_idx:
            head = struct.unpack_from("<I", dev.mem, LONG_USED + 4 + 8 * (seen % LONG_NUM))[0]
            dev.st16(LONG_AVAIL + 4 + 2 * (posted % LONG_NUM), head % LONG_NUM)
            posted = (posted + 1) & 0xFFFF
            seen = (seen + 1) & 0xFFFF
            total += 1
        dev.st16(LONG_AVAIL + 2, posted)
        dev.notify(q)
        if time.time() - last_print >= 0.2:
            print("consumed %d" % total, flush=True)
            last_print = time.time()


def attack(dev, name):
    full = ("addr_outside", "desc_loop", "huge_len", "avail_jump", "nested_indirect", "bad_head", "rx_writable_tx")
    if name in full:
        dev.setup()
        i = 0
        if name == "addr_outside":
            dev.desc(1, 0, MEM + 0x100000, 100, 0)
        elif name == "desc_loop":
            dev.desc(1, 0, TXBUF, 64, NEXT, 1)
            dev.desc(1, 1, TXBUF + 64, 64, NEXT, 0)
        elif name == "huge_len":
            dev.desc(1, 0, TXBUF, 0xFFFFFFF0, 0)
        elif name == "nested_indirect":
            table = 0x300000
            dev.desc(1, 0, table, 32, INDIRECT)
            dev.desc(1, 0, table + 0x100, 16, INDIRECT, table=table)
            dev.desc(1, 1, TXBUF, 64, 0, table=table)
        elif name == "bad_head":
            i = 999
        elif name == "rx_writable_tx":
            dev.desc(1, 0, TXBUF, 64, WRITE)
        else:
            dev.desc(1, 0, TXBUF, 64, 0)
        dev.avail_push(1, i, idx_override=1000 if name == "avail_jump" else None)
        dev.notify(1)
    elif name == "rx_outside":
        # receive buffers outside guest memory: found when tapbridge delivers a frame (the test floods broadcasts)
        dev.setup()
        for i in range(NUM):
            dev.desc(0, i, MEM + 0x100000 + i * BUFSZ, BUFSZ, WRITE)
    elif name == "ring_not_pow2":
        dev.setup(start=False)
        dev.state(SET_VRING_NUM, 0, 100)
    elif name == "mem_before_owner":
        dev.mem_table()
    elif name == "kick_before_mem":
        dev.send(SET_OWNER)
        dev.state(SET_VRING_NUM, 1, NUM)
        dev.vring_addr(1)
        dev.send(SET_VRING_KICK, struct.pack("<Q", 1), fds=[dev.kick[1]])
    elif name == "mem_without_fd":
        dev.send(SET_OWNER)
        dev.send(SET_MEM_TABLE, struct.pack("<II", 1, 0) + struct.pack("<QQQQ", 0, MEM, UVA, 0))
    elif name == "kick_without_fd":
        dev.setup(start=False)
        dev.state(SET_VRING_NUM, 1, NUM)
        dev.vring_addr(1)
        dev.send(SET_VRING_KICK, struct.pack("<Q", 1))
    elif name == "ring_outside":
        dev.setup(start=False)
        dev.state(SET_VRING_NUM, 1, NUM)
        dev.vring_addr(1, desc=UVA + MEM + 0x1000)
        dev.send(SET_VRING_KICK, struct.pack("<Q", 1), fds=[dev.kick[1]])
    elif name == "region_beyond_fd":
        dev.send(SET_OWNER)
        dev.mem_table([(0, MEM * 4, UVA, 0)])
    elif name == "huge_payload":
        dev.send(GET_FEATURES, b"", size=1 << 20)
    elif name == "queue_index":
        dev.setup(start=False)
        dev.state(SET_VRING_NUM, 7, NUM)
    elif name == "unknown_request":
        dev.send(99, struct.pack("<Q", 0))
    else:
        raise SystemExit("unknown attack " + name)


def closed_within(sock, seconds):
    end = time.time() + seconds
    while time.time() < end:
        r, _, _ = select.select([sock], [], [], 0.2)
        if sock in r:
            try:
                b = sock.recv(4096)
            except (ConnectionResetError, OSError):
                return True
            if not b:
                return True
    return False


def main():
    path, how, what = sys.argv[1], sys.argv[2], sys.argv[3]
    srv = None
    if how == "listen":
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen(4)

    def conn():
        if srv is not None:
            srv.settimeout(20)
            c, _ = srv.accept()
            return c
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        end = time.time() + 20
        while True:
            try:
                c.connect(path)
                return c
            except OSError:
                if time.time() > end:
                    raise
                time.sleep(0.1)

    if what == "host":
        host(Dev(conn()), sys.argv[4], sys.argv[5], float(sys.argv[6]))
        return
    if what == "trickle":
        trickle(Dev(conn()), sys.argv[4], float(sys.argv[5]))
        return
    if what == "longchains":
        longchains(Dev(conn()), float(sys.argv[4]))
        return
    if what == "polite":
        polite(Dev(conn()), sys.argv[4], int(sys.argv[5]), float(sys.argv[6]), sys.argv[7] == "event_idx")
        return
    if what == "burst":
        burst(Dev(conn()), sys.argv[4], int(sys.argv[5]), float(sys.argv[6]))
        return
    for name in sys.argv[4:]:
        c = conn()
        dev = Dev(c)
        try:
            attack(dev, name)
        except (BrokenPipeError, ConnectionError):
            pass
        print(("closed " if closed_within(c, 5) else "open ") + name, flush=True)
        c.close()


if __name__ == "__main__":
    main()
