# Paced, sequence-numbered UDP streams for the benchmarks (scripts/bench/failover.sh, restart.sh).
# send DST PORT RATE SECONDS            paced UDP, 64-byte payload starting with a u32 sequence number
# recv BIND PORT SECONDS OUT            arrival (seq, wall clock) of each datagram -> OUT (JSON); prints "ready"
# analyze RECV.json CUT_WALLCLOCK SENT  -> one JSON line {gap_ms, base_ms, lost, received}
import json, socket, struct, sys, time
mode = sys.argv[1]
if mode == "send":
    dst, port, rate, secs = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    pad = b"\0" * 60
    n = int(rate * secs); period = 1.0 / rate
    t0 = time.monotonic(); maxlag = 0.0
    for i in range(n):
        due = t0 + i * period
        now = time.monotonic()
        if due > now: time.sleep(due - now)
        else: maxlag = max(maxlag, now - due)
        try: s.sendto(struct.pack("!I", i) + pad, (dst, port))
        except OSError: pass
    print(json.dumps({"sent": n, "max_lag_ms": round(maxlag * 1000, 2)}), flush=True)
elif mode == "recv":
    addr, port, secs, out = sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((addr, port))
    print("ready", flush=True)
    end = time.monotonic() + secs; arr = []
    while True:
        left = end - time.monotonic()
        if left <= 0: break
        s.settimeout(left)
        try: b = s.recv(2048)
        except socket.timeout: break
        arr.append((struct.unpack("!I", b[:4])[0], time.time()))
    json.dump(arr, open(out, "w"))
else:
    arr, cut, sent = json.load(open(sys.argv[2])), float(sys.argv[3]), int(sys.argv[4])
    seqs = {a[0] for a in arr}
    # gap: intervals that begin from 20 ms before the action to 200 ms after it (the one spanning the action included)
    # worst: any interval that ends after the action; base: any interval before it
    gap = worst = base = 0.0; at = 0.0
    for (s0, t0), (s1, t1) in zip(arr, arr[1:]):
        if t1 <= cut: base = max(base, t1 - t0); continue
        worst = max(worst, t1 - t0)
        if cut - 0.02 <= t0 <= cut + 0.2 and t1 - t0 > gap: gap, at = t1 - t0, t0 - cut
    if not arr or arr[-1][1] < cut + 0.2: gap = worst = float("inf")
    print(json.dumps({"gap_ms": round(gap * 1000, 1), "at_ms": round(at * 1000), "worst_ms": round(worst * 1000, 1), "base_ms": round(base * 1000, 1),
                      "lost": sent - len([q for q in seqs if q < sent]), "received": len(arr)}))
