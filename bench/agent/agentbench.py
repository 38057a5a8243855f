#!/usr/bin/env python3
"""Helpers for the agent benchmarks (bench/agent/*.sh), standard library only.

  free-ports N                 print N free TCP ports on 127.0.0.1
  write FILE RATE SECONDS      append RATE lines/s to FILE for SECONDS; prints
                               the number of lines written
  generate FILE BYTES          write about BYTES of log lines to FILE; prints
                               lines and bytes written
  scrape URL SECONDS           GET URL once per second for SECONDS; prints the
                               number of successful scrapes
  sample SECONDS WARMUP OUT NAME=PID...
                               sample VmRSS and utime+stime of each PID once a
                               second for SECONDS, write the samples to OUT
                               (CSV) and print steady-state figures (samples
                               after WARMUP seconds)
  stored URL                   print stored+duplicate log records from the
                               collector's /metrics at URL
  wait-stored URL COUNT TIMEOUT
                               poll URL until stored+duplicate >= COUNT; prints
                               seconds waited and the counts
  cpu PID                      print utime+stime of PID in seconds
  runq PID                     print the seconds PID's threads waited on a run
                               queue for a CPU (/proc/PID/task/*/schedstat)
  sink PORT                    an OTLP/HTTP endpoint that takes every request
                               unread beyond its body and answers 200 at once:
                               the agent's side alone, without a collector
  wait-checkpoint FILE PATH SIZE TIMEOUT
                               poll the agent's checkpoint FILE until PATH's
                               offset reaches SIZE; prints seconds waited

Lines look like an application's: ISO timestamp, level, logger, message
with ids, durations and paths, 120-200 bytes. Severity mix: 45% INFO, 30%
WARN, 20% ERROR, 5% DEBUG; a few lines carry a password=... pair the
agent's redaction masks.
"""

import os
import random
import socket
import sys
import time
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")

LEVELS = ["INFO"] * 9 + ["WARN"] * 6 + ["ERROR"] * 4 + ["DEBUG"]
LOGGERS = ["http.server", "payment.worker", "db.pool", "auth.session", "cache.redis", "orders.api"]
MESSAGES = [
    "request completed method=GET path=/api/v1/orders/{n} status=200 duration_ms={d} bytes={b}",
    "upstream timeout after {d}ms calling inventory-service attempt={a}/3 request_id={h}",
    "connection pool exhausted active={a}0 waiting={n} db=orders-primary wait_ms={d}",
    "login failed for user=u{n} from 10.{a}.{b}.7 reason=bad_credentials password=hunter{n}",
    "cache miss key=session:{h} ttl_s=3600 fallback=db latency_ms={d}",
    "payment declined order={n} amount_cents={b} gateway=stripe code=card_declined trace={h}",
]


def line(rng, now):
    t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%03dZ" % int((now % 1) * 1000)
    msg = rng.choice(MESSAGES).format(
        n=rng.randrange(100000, 999999),
        d=rng.randrange(1, 5000),
        b=rng.randrange(100, 99999),
        a=rng.randrange(1, 9),
        h="%016x" % rng.getrandbits(64),
    )
    return "%s %-5s [%s] %s: %s\n" % (
        t, rng.choice(LEVELS), "worker-%d" % rng.randrange(1, 16), rng.choice(LOGGERS), msg)


def free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    print(" ".join(str(s.getsockname()[1]) for s in socks))
    for s in socks:
        s.close()


def write(path, rate, seconds):
    """Appends in ten slices a second so the agent sees a steady stream."""
    rng = random.Random(1)
    written = 0
    start = time.monotonic()
    with open(path, "a", buffering=1 << 16) as f:
        while True:
            elapsed = time.monotonic() - start
            if elapsed >= seconds:
                break
            due = min(int(elapsed * rate) + rate // 10, int(seconds * rate))
            now = time.time()
            chunk = [line(rng, now) for _ in range(due - written)]
            f.write("".join(chunk))
            f.flush()
            written = due
            time.sleep(0.1)
    print(written)


def generate(path, size):
    rng = random.Random(2)
    now = time.time()
    lines = total = 0
    # 4096 distinct lines cycled with fresh timestamps every 10,000 lines:
    # realistic content at a generation speed that keeps a 2 GiB file cheap.
    pool = [line(rng, now)[24:] for _ in range(4096)]
    with open(path, "w", buffering=1 << 20) as f:
        while total < size:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".000Z"
            block = "".join(stamp + pool[(lines + i) % 4096] for i in range(10000))
            f.write(block)
            lines += 10000
            total += len(block)
            now += 0.01
    print(lines, total)


def scrape(url, seconds):
    ok = 0
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                r.read()
                ok += 1
        except OSError as e:
            print("scrape failed: %s" % e, file=sys.stderr)
        n += 1
        time.sleep(max(0.0, start + n - time.monotonic()))
    print(ok)


def proc_sample(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    rss = 0
    with open("/proc/%d/status" % pid) as f:
        for row in f:
            if row.startswith("VmRSS:"):
                rss = int(row.split()[1])
    return ticks, rss


def sample(seconds, warmup, out, targets):
    procs = [(name, int(pid)) for name, pid in (t.split("=") for t in targets)]
    rows = {name: [] for name, _ in procs}
    start = time.monotonic()
    n = 0
    with open(out, "w") as csv:
        csv.write("t_s,process,rss_kib,cpu_s\n")
        while True:
            t = time.monotonic() - start
            for name, pid in procs:
                try:
                    ticks, rss = proc_sample(pid)
                except OSError:
                    continue
                rows[name].append((t, rss, ticks))
                csv.write("%.2f,%s,%d,%.2f\n" % (t, name, rss, ticks / CLK_TCK))
            if t >= seconds:
                break
            n += 1
            time.sleep(max(0.0, start + n - time.monotonic()))
    print("%-16s %14s %14s %12s %14s" % ("process", "RSS max (MB)", "RSS mean (MB)", "CPU-s", "CPU % of core"))
    for name, _ in procs:
        steady = [r for r in rows[name] if r[0] >= warmup]
        if len(steady) < 2:
            print("%-16s no samples (process gone?)" % name)
            continue
        rss = [r[1] for r in steady]
        cpu_s = (steady[-1][2] - steady[0][2]) / CLK_TCK
        wall = steady[-1][0] - steady[0][0]
        print("%-16s %14.1f %14.1f %12.2f %14.2f" % (
            name, max(rss) / 1000, sum(rss) / len(rss) / 1000, cpu_s, 100 * cpu_s / wall))
    print("(steady state: %.0f s to %.0f s, %d samples each; MB = 10^6 bytes)" % (
        warmup, seconds, len([r for r in rows[procs[0][0]] if r[0] >= warmup])))


def stored(url):
    counts = {"stored": 0, "duplicate": 0}
    with urllib.request.urlopen(url, timeout=10) as r:
        for row in r.read().decode().splitlines():
            for key in counts:
                if row.startswith("tocsin_receiver_log_records_%s_total" % key):
                    counts[key] += int(float(row.rsplit(" ", 1)[1]))
    return counts


def wait_stored(url, count, timeout):
    start = time.monotonic()
    while True:
        c = stored(url)
        if c["stored"] + c["duplicate"] >= count or time.monotonic() - start > timeout:
            print("%.2f %d %d" % (time.monotonic() - start, c["stored"], c["duplicate"]))
            return
        time.sleep(0.1)


def sink(port):
    import http.server

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            n = int(self.headers.get("Content-Length", 0))
            while n > 0:
                chunk = self.rfile.read(min(n, 1 << 20))
                if not chunk:
                    break
                n -= len(chunk)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def wait_checkpoint(file, path, size, timeout):
    import json
    start = time.monotonic()
    offset = 0
    while time.monotonic() - start < timeout:
        try:
            with open(file) as f:
                offset = sum(c["offset"] for c in json.load(f)["files"] if c["path"] == path)
        except (OSError, ValueError, KeyError):
            pass
        if offset >= size:
            break
        time.sleep(0.05)
    print("%.2f %d" % (time.monotonic() - start, offset))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "free-ports":
        free_ports(int(args[0]))
    elif cmd == "write":
        write(args[0], int(args[1]), float(args[2]))
    elif cmd == "generate":
        generate(args[0], int(args[1]))
    elif cmd == "scrape":
        scrape(args[0], float(args[1]))
    elif cmd == "sample":
        sample(float(args[0]), float(args[1]), args[2], args[3:])
    elif cmd == "stored":
        c = stored(args[0])
        print(c["stored"], c["duplicate"])
    elif cmd == "wait-stored":
        wait_stored(args[0], int(args[1]), float(args[2]))
    elif cmd == "sink":
        sink(int(args[0]))
    elif cmd == "wait-checkpoint":
        wait_checkpoint(args[0], args[1], int(args[2]), float(args[3]))
    elif cmd == "runq":
        total = 0
        for task in os.listdir("/proc/%d/task" % int(args[0])):
            try:
                with open("/proc/%s/task/%s/schedstat" % (args[0], task)) as f:
                    total += int(f.read().split()[1])
            except OSError:
                pass
        print("%.2f" % (total / 1e9))
    elif cmd == "cpu":
        print("%.2f" % (proc_sample(int(args[0]))[0] / CLK_TCK))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
