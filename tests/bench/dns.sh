#!/usr/bin/env bash
# DNS benchmark (make bench-dns): the same 1000 names x 2 A records served by
#   kubefed dns-server (etcd feed, one UDP socket), CoreDNS's etcd plugin without and with
#   its cache plugin, and Knot DNS (zone file),
# each pinned to CPU 0 with taskset, loaded by dnsperf pinned to CPU 1 at a fixed offered
# rate. Reports completed queries, server CPU microseconds per query (from
# /proc/PID/stat, and etcd's CPU too: CoreDNS without cache reads etcd on every query),
# latency p50/p99 (from dnsperf -v per-response latencies); then, for the servers fed
# from etcd, a second run at the same load while a record is rewritten every 100 ms:
# CPU per query with updates, and how stale the answers get (tests/bench/freshness.py).
#
# Knobs: BENCH_QPS (default 5000), BENCH_SECONDS (default 10), BENCH_NAMES (default 1000),
# BENCH_ROUNDS (default 1; with more, a summary of CPU/query ratios to Knot, median and
# range), BENCH_FRESH_SECONDS (default 5, the run with updates), BENCH_CPU_SERVER (0),
# BENCH_CPU_CLIENT (1).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$root/.cache/bin}
KUBEFED=${KUBEFED:-$root/target/release/kubefed}
QPS=${BENCH_QPS:-5000}
SECONDS_RUN=${BENCH_SECONDS:-10}
NAMES=${BENCH_NAMES:-1000}
ROUNDS=${BENCH_ROUNDS:-1}
FRESH_SECONDS=${BENCH_FRESH_SECONDS:-5}
CPU_S=${BENCH_CPU_SERVER:-0}
CPU_C=${BENCH_CPU_CLIENT:-1}
for b in etcd dnsperf taskset knotd python3; do
  command -v $b >/dev/null || { echo "$b not found (make deps; apt-get install -y etcd-server dnsperf knot python3)" >&2; exit 1; }
done
[[ -x $BIN/coredns ]] || { echo "$BIN/coredns missing: make peers-dns" >&2; exit 1; }
[[ -x $KUBEFED ]] || { echo "$KUBEFED missing: cargo build --release" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/kubefed-bench-dns.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

etcd_port=$(free_port); peer_port=$(free_port)
etcd_url=http://127.0.0.1:$etcd_port
taskset -c "$CPU_C" etcd --name bench --data-dir "$work/etcd" \
  --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "bench=http://127.0.0.1:$peer_port" --log-level error >"$work/etcd.log" 2>&1 &
etcd_pid=$!; pids+=("$etcd_pid")

# Fixture: etcd entries in ExternalDNS's layout, the same records as a Knot zone file,
# and the query file, all from one generator. Per name i: two A and one AAAA at
# h<i>.bench, a TXT at t<i>.bench, an SRV at h<i>._srv.bench. Queries: A 40 %, AAAA 15 %,
# TXT 10 %, SRV 10 %, NODATA (MX of an existing name) 10 %, NXDOMAIN 15 %.
python3 - "$etcd_url" "$NAMES" "$work" <<'PY'
import base64, json, random, sys, time, urllib.request
url, n, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def fnv(s):
    h = 0x811c9dc5
    for b in s.encode():
        h = ((h ^ b) * 0x01000193) & 0xffffffff
    return "%08x" % h
b64 = lambda s: base64.b64encode(s.encode()).decode()
for _ in range(200):
    try:
        urllib.request.urlopen(url + "/health", timeout=1); break
    except Exception:
        time.sleep(0.1)
zone = ["$ORIGIN example.com.", "$TTL 300",
        "@ 300 IN SOA ns.dns.example.com. hostmaster.example.com. 1 7200 1800 86400 30",
        "@ 300 IN NS ns.dns.example.com.", "ns.dns 300 IN A 127.0.0.1"]
def put(key, val):
    req = urllib.request.Request(url + "/v3/kv/put", data=json.dumps({"key": b64(key), "value": b64(json.dumps(val, separators=(",", ":")))}).encode())
    urllib.request.urlopen(req).read()
for i in range(n):
    v4 = ["10.%d.%d.%d" % (i // 65536, (i // 256) % 256, i % 256 + 0), "11.%d.%d.%d" % (i // 65536, (i // 256) % 256, i % 256)]
    v6 = "2001:db8::%x" % (i + 1)
    for ip in v4 + [v6]:
        put("/skydns/com/example/bench/h%d/%s" % (i, fnv(ip)), {"host": ip, "ttl": 180, "targetstrip": 1})
        zone.append("h%d.bench 180 IN %s %s" % (i, "AAAA" if ":" in ip else "A", ip))
    put("/skydns/com/example/bench/t%d" % i, {"text": "v=bench%d" % i, "ttl": 180})
    zone.append('t%d.bench 180 IN TXT "v=bench%d"' % (i, i))
    put("/skydns/com/example/bench/_srv/h%d/x" % i, {"host": "h%d.bench.example.com" % i, "port": 80, "priority": 10, "weight": 100, "ttl": 180})
    zone.append("h%d._srv.bench 180 IN SRV 10 100 80 h%d.bench.example.com." % (i, i))
open(work + "/example.com.zone", "w").write("\n".join(zone) + "\n")
random.seed(1)
with open(work + "/queries.txt", "w") as f:
    for _ in range(100000):
        r, i = random.random(), random.randrange(n)
        if r < 0.40:   f.write("h%d.bench.example.com A\n" % i)
        elif r < 0.55: f.write("h%d.bench.example.com AAAA\n" % i)
        elif r < 0.65: f.write("t%d.bench.example.com TXT\n" % i)
        elif r < 0.75: f.write("h%d._srv.bench.example.com SRV\n" % i)
        elif r < 0.85: f.write("h%d.bench.example.com MX\n" % i)
        else:          f.write("nope%d.bench.example.com A\n" % i)
PY

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

wait_dns() { # port
  for _ in $(seq 1 200); do
    dig @127.0.0.1 -p "$1" +short +tries=1 +time=1 h1.bench.example.com A 2>/dev/null | grep -q . && return 0
    sleep 0.1
  done
  echo "server on port $1 did not answer" >&2; return 1
}

results=()
run() { # name pid port [fresh]
  local name=$1 pid=$2 port=$3 fresh=${4:-}
  wait_dns "$port"
  # Warm up (connections, caches), then measure.
  taskset -c "$CPU_C" dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries.txt" -l 2 -Q "$QPS" >/dev/null 2>&1 || true
  local s0 e0; s0=$(cpu_ticks "$pid"); e0=$(cpu_ticks "$etcd_pid")
  taskset -c "$CPU_C" dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries.txt" -l "$SECONDS_RUN" -Q "$QPS" -v \
    >"$work/$name.out" 2>&1 || true
  local s1 e1; s1=$(cpu_ticks "$pid"); e1=$(cpu_ticks "$etcd_pid")
  # Then freshness under the same load, for servers fed from etcd: a record rewritten
  # every 100 ms (tests/bench/freshness.py), and the CPU per query while that happens.
  local u0=0 u1=0
  echo "n/a (zone file)" >"$work/$name.fresh"
  echo "Queries completed: 0" >"$work/$name.upd"
  if [[ -n $fresh ]]; then
    taskset -c "$CPU_C" python3 "$root/tests/bench/freshness.py" "$etcd_url" "$port" "$FRESH_SECONDS" >"$work/$name.fresh" 2>&1 &
    local fp=$!
    u0=$(( $(cpu_ticks "$pid") + $(cpu_ticks "$etcd_pid") ))
    taskset -c "$CPU_C" dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries.txt" -l "$FRESH_SECONDS" -Q "$QPS" \
      >"$work/$name.upd" 2>&1 || true
    u1=$(( $(cpu_ticks "$pid") + $(cpu_ticks "$etcd_pid") ))
    wait "$fp" || true
  fi
  python3 - "$name" "$work/$name.out" "$((s1 - s0))" "$((e1 - e0))" "$hz" "$work/$name.fresh" "$work/$name.upd" "$((u1 - u0))" <<'PY' | tee -a "$work/results-$round.txt"
import re, sys
name, out, st, et, hz = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
fresh = open(sys.argv[6]).read().strip()
upd_done = int(re.search(r"Queries completed:\s+(\d+)", open(sys.argv[7]).read()).group(1))
upd = "%.1f" % (int(sys.argv[8]) / hz * 1e6 / upd_done) if upd_done else "n/a"
m = re.search(r"stale_ms p50 ([\d.]+) p99 ([\d.]+) max ([\d.]+)", fresh)
fresh = "%s / %s / %s" % m.groups() if m else fresh
text = open(out).read()
done = int(re.search(r"Queries completed:\s+(\d+)", text).group(1))
lost = int(re.search(r"Queries lost:\s+(\d+)", text).group(1))
qps = float(re.search(r"Queries per second:\s+([\d.]+)", text).group(1))
lat = sorted(float(m) for m in re.findall(r"^> \S+ .* ([\d.]+)$", text, re.M))
pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1e6 if lat else float("nan")
us = lambda t: t / hz * 1e6 / max(done, 1)
print("| %-22s | %9.0f | %6d | %8.1f | %8.1f | %7.0f | %7.0f | %s | %s |" % (name, qps, lost, us(st), us(st + et), pct(0.5), pct(0.99), upd, fresh))
PY
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
}

echo "offered load ${QPS} qps for ${SECONDS_RUN}s, ${NAMES} names; server on CPU ${CPU_S}, dnsperf+etcd on CPU ${CPU_C}"
echo "| server                 |   qps     |  lost  | µs/q srv | µs/q +etcd | p50 µs | p99 µs | µs/q +etcd, 10 updates/s | stale ms p50 / p99 / max |"
echo "|------------------------|-----------|--------|----------|------------|--------|--------|--------------------------|--------------------------|"

for round in $(seq 1 "$ROUNDS"); do
[[ $ROUNDS -gt 1 ]] && echo "round $round"
port=$(free_port)
KUBEFED_LOG=warn taskset -c "$CPU_S" "$KUBEFED" dns-server --zone example.com --etcd-endpoints "$etcd_url" \
  --listen "127.0.0.1:$port" --udp-sockets 1 >"$work/kubefed.log" 2>&1 &
p=$!; pids+=("$p"); run kubefed "$p" "$port" fresh

for variant in coredns-etcd coredns-etcd-cache; do
  port=$(free_port)
  cache=""; [[ $variant == *cache ]] && cache="cache 30"
  printf 'example.com:%s {\n  bind 127.0.0.1\n  %s\n  etcd example.com {\n    path /skydns\n    endpoint %s\n  }\n}\n' \
    "$port" "$cache" "$etcd_url" >"$work/Corefile-$variant"
  taskset -c "$CPU_S" "$BIN/coredns" -conf "$work/Corefile-$variant" >"$work/$variant.log" 2>&1 &
  p=$!; pids+=("$p"); run "$variant" "$p" "$port" fresh
done

port=$(free_port)
rm -rf "$work/knot-run" "$work/knot-db"; mkdir -p "$work/knot-run" "$work/knot-db"
cat >"$work/knot.conf" <<CONF
server:
    rundir: "$work/knot-run"
    listen: 127.0.0.1@$port
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "$work/knot-db"
log:
  - target: stderr
    any: warning
zone:
  - domain: example.com
    file: "$work/example.com.zone"
CONF
taskset -c "$CPU_S" knotd -c "$work/knot.conf" >"$work/knot.log" 2>&1 &
p=$!; pids+=("$p"); run knot "$p" "$port"
done

if [[ $ROUNDS -gt 1 ]]; then
  python3 - "$work" "$ROUNDS" <<'PY'
import statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
rows = {}
for r in range(1, rounds + 1):
    for line in open("%s/results-%d.txt" % (work, r)):
        f = [c.strip() for c in line.strip().strip("|").split("|")]
        fresh = f[8].split(" / ") if len(f) > 8 else []
        p99 = float(fresh[1]) if len(fresh) == 3 else None
        rows.setdefault(f[0], []).append((float(f[3]), float(f[4]), float(f[5]), float(f[6]), p99))
knot = [x[0] for x in rows["knot"]]
print()
print("%d rounds; CPU per query (server + etcd) as a ratio to Knot's in the same round: median [min..max]; p50/p99 medians" % rounds)
print("| server | µs/q (median) | ratio to Knot | p50 µs | p99 µs | stale p99 ms, median [max] |")
print("|---|---|---|---|---|---|")
for name, xs in rows.items():
    ratios = [x[1] / k for x, k in zip(xs, knot)]
    stale = [x[4] for x in xs if x[4] is not None]
    st = "%.1f [%.1f]" % (statistics.median(stale), max(stale)) if stale else "n/a"
    print("| %s | %.1f | %.2f [%.2f..%.2f] | %.0f | %.0f | %s |" % (name, statistics.median(x[1] for x in xs), statistics.median(ratios), min(ratios), max(ratios), statistics.median(x[2] for x in xs), statistics.median(x[3] for x in xs), st))
PY
fi
echo "raw output: $work"
