#!/usr/bin/env python3
"""Freshness under load, for tests/bench/dns.sh.

Usage: freshness.py ETCD_URL DNS_PORT SECONDS

Rewrites one skydns TXT record (fresh.bench.example.com, the value "t=<monotonic ns>")
through etcd every 100 ms while asking the DNS server for it every 10 ms, and prints
one line: probes, unanswered probes, and how stale the answers were, in ms (p50, p99,
max). An answer is stale from the moment the write that replaced its value was made
until it is seen; an answer carrying the newest written value is 0 ms stale. The write
time is taken before the etcd request, so etcd's own latency counts as staleness.
"""
import base64
import json
import socket
import struct
import sys
import threading
import time
import urllib.request

url, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
KEY = "/skydns/com/example/bench/fresh"
NAME = "fresh.bench.example.com"
writes = []  # monotonic ns of each write, in order
stop = threading.Event()


def put(ts):
    body = json.dumps({
        "key": base64.b64encode(KEY.encode()).decode(),
        "value": base64.b64encode(json.dumps({"text": "t=%d" % ts, "ttl": 180}).encode()).decode(),
    }).encode()
    urllib.request.urlopen(urllib.request.Request(url + "/v3/kv/put", data=body), timeout=5).read()


def writer():
    while not stop.is_set():
        ts = time.monotonic_ns()
        writes.append(ts)
        put(ts)
        stop.wait(0.1)


def query(qid):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in NAME.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00" + struct.pack(">HH", 16, 1)


def seen_value(resp):
    i = resp.find(b"t=")
    if i < 0:
        return None
    j = i + 2
    while j < len(resp) and 48 <= resp[j] <= 57:
        j += 1
    return int(resp[i + 2:j])


put(time.monotonic_ns())
time.sleep(1)  # the server has the key before probing starts
t = threading.Thread(target=writer, daemon=True)
t.start()
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(1)
stale, missing, probes = [], 0, 0
end = time.monotonic() + seconds
qid = 0
while time.monotonic() < end:
    qid = (qid + 1) & 0xFFFF
    probes += 1
    try:
        sock.sendto(query(qid), ("127.0.0.1", port))
        resp, _ = sock.recvfrom(4096)
        now = time.monotonic_ns()
    except socket.timeout:
        missing += 1
        continue
    v = seen_value(resp)
    if v is None:
        missing += 1
        continue
    # The first write after the value seen, if it happened before the answer arrived.
    newer = [w for w in writes if w > v]
    stale.append(max(0, now - newer[0]) / 1e6 if newer and newer[0] < now else 0.0)
    time.sleep(0.01)
stop.set()
t.join()
stale.sort()
pct = lambda p: stale[min(len(stale) - 1, int(p * len(stale)))] if stale else float("nan")
print("probes %d unanswered %d stale_ms p50 %.1f p99 %.1f max %.1f" % (probes, missing, pct(0.5), pct(0.99), stale[-1] if stale else float("nan")))
