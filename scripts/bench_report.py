#!/usr/bin/env python3
"""The benchmark report (README, "Performance"): one run, side by side.

- in process: the criterion bench `pipeline` — per call and per whole 5001
  transaction, native twins vs WASM;
- end to end over TCP: the real switch (`switchyard-twin`, the same binary
  with WASM plugins or their native twins) pinned to one core, the load
  generator (`switchyard load`) on the other: CPU per transaction at
  saturation, and throughput and p99 at fixed open-loop rates and at
  saturation, with and without the tranlog.

Usage: scripts/bench-report [--duration S] [--quick] [--out FILE]
Standard library only. Loopback only; every wait is bounded.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWITCH = os.path.join(ROOT, "target", "release", "switchyard")
TWIN = os.path.join(ROOT, "target", "release", "switchyard-twin")
PORT = 5001
TICK = os.sysconf("SC_CLK_TCK")


def cores():
    n = os.cpu_count() or 1
    return ("0", "1") if n >= 2 else (None, None)


def pinned(core, argv):
    return (["taskset", "-c", core] + argv) if core and shutil.which("taskset") else argv


def cpu_seconds(pid):
    """User + system CPU of every thread of `pid` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Server:
    """A switch (`--native`/`--wasm`, tranlog on/off) in a scratch directory."""

    def __init__(self, variant, tranlog, core):
        self.dir = tempfile.mkdtemp(prefix="switchyard-bench-")
        argv = [TWIN, "--" + variant] + ([] if tranlog else ["--no-tranlog"])
        env = dict(os.environ, RUST_LOG=os.environ.get("BENCH_RUST_LOG", "warn"))
        self.proc = subprocess.Popen(
            pinned(core, argv), cwd=self.dir, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise SystemExit(f"{argv}: exited before serving (rc {self.proc.wait()})")
            if line.startswith("serving") and f" {PORT} " in line:
                self.addr = line.split()[-1]
                break
        else:
            raise SystemExit(f"{argv}: not serving within 120 s")
        # The remaining "serving" lines.
        time.sleep(0.5)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def load(core, addr, duration, rate=None, warmup=1):
    host, port = addr.rsplit(":", 1)
    argv = [SWITCH, "load", "--host", host, "--port", port, "--connections", "8",
            "--duration", f"{duration}s", "--warmup", f"{warmup}s", "--json", "--quiet"]
    argv += ["--rate", str(rate)] if rate else ["--in-flight", "8"]
    out = subprocess.run(pinned(core, argv), capture_output=True, text=True,
                         timeout=duration + warmup + 60)
    if out.returncode != 0:
        raise SystemExit(f"load failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


def measure(variant, tranlog, loads, duration):
    server_core, client_core = cores()
    server = Server(variant, tranlog, server_core)
    try:
        load(client_core, server.addr, 2, warmup=0)  # warm up: plugins, pools, caches
        rows = []
        for rate in loads:
            before = cpu_seconds(server.proc.pid)
            r = load(client_core, server.addr, duration, rate=rate, warmup=0)
            cpu = cpu_seconds(server.proc.pid) - before
            r["cpu_us_per_tx"] = cpu * 1e6 / max(1, r["received"])
            rows.append(r)
        return rows
    finally:
        server.stop()


def criterion():
    """ns per iteration of the pipeline bench's groups (criterion's estimates)."""
    subprocess.run(["cargo", "bench", "-p", "switchyard-benches", "--bench", "pipeline", "--",
                    "transaction/default-5001|participant-call", "--noplot"],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    base = os.path.join(ROOT, "target", "criterion")
    out = {}
    for group in ("transaction_default-5001", "participant-call_validate.prepare",
                  "participant-call_case-switch.prepare"):
        for side in ("native", "wasm"):
            p = os.path.join(base, group, side, "new", "estimates.json")
            if os.path.exists(p):
                with open(p) as f:
                    out[(group, side)] = json.load(f)["mean"]["point_estimate"]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=10, help="seconds per load step")
    ap.add_argument("--quick", action="store_true", help="3 s steps, no criterion bench")
    ap.add_argument("--out", help="also write the report (markdown) to this file")
    a = ap.parse_args()
    duration = 3 if a.quick else a.duration
    for b in (SWITCH, TWIN):
        if not os.path.exists(b):
            raise SystemExit(f"{b} is missing: scripts/bench-report builds it")
    loads = [5000, 20000, 40000, None]
    lines = []
    emit = lambda s="": (print(s, flush=True), lines.append(s))
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    emit(f"Measured {when} on {os.cpu_count()} × {model}, {platform.system()} {platform.release()}; "
         f"switch pinned to core 0, load generator to core 1; {duration} s per step; RUST_LOG=warn.")
    emit()
    if not a.quick:
        c = criterion()
        emit("In process (criterion, `benches/pipeline.rs`), mean per iteration:")
        emit()
        emit("| what | native | WASM | WASM − native | WASM / native |")
        emit("|---|---:|---:|---:|---:|")
        for group, label in (("transaction_default-5001", "whole 5001 transaction"),
                             ("participant-call_validate.prepare", "validate.prepare (one call)"),
                             ("participant-call_case-switch.prepare", "case-switch.prepare (one call)")):
            n, w = c.get((group, "native")), c.get((group, "wasm"))
            if n and w:
                emit(f"| {label} | {n/1000:.3f} µs | {w/1000:.3f} µs | {(w-n)/1000:+.3f} µs | {w/n:.2f}× |")
        emit()
    results = {}
    for tranlog in (False, True):
        for variant in ("native", "wasm"):
            results[(variant, tranlog)] = measure(variant, tranlog, loads, duration)
    emit("End to end over TCP (8 connections; closed loop 8 × 8 in flight at saturation):")
    emit()
    emit("| tranlog | load | native: tx/s | p99 | CPU/tx | WASM: tx/s | p99 | CPU/tx | CPU WASM / native |")
    emit("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for tranlog in (False, True):
        for i, rate in enumerate(loads):
            n, w = results[("native", tranlog)][i], results[("wasm", tranlog)][i]
            label = f"{rate // 1000}k/s open loop" if rate else "saturation"
            codes = lambda r: "" if set(r["rc"]) <= {"00"} and not r["timeouts"] else f" (rc {r['rc']}, {r['timeouts']} timeouts)"
            emit(f"| {'on' if tranlog else 'off'} | {label} "
                 f"| {n['throughput_per_s']:,.0f}{codes(n)} | {n['latency_us']['p99']/1000:.2f} ms | {n['cpu_us_per_tx']:.1f} µs "
                 f"| {w['throughput_per_s']:,.0f}{codes(w)} | {w['latency_us']['p99']/1000:.2f} ms | {w['cpu_us_per_tx']:.1f} µs "
                 f"| {w['cpu_us_per_tx']/n['cpu_us_per_tx']:.2f}× |")
    emit()
    emit("CPU/tx: the switch process's user + system CPU over the step divided by the responses "
         "received (at the open-loop rates it includes idle polling; the saturation row is the "
         "per-transaction cost).")
    if a.out:
        with open(a.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
