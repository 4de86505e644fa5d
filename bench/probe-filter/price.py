#!/usr/bin/env python3
"""Prices host calls (and compares filter modules) in Envoy: `make bench-hostcalls`.

Runs the proxy under test of `make bench` (its configurations, written to
target/bench/conf by a previous `make bench`) pinned to CPU 1, wrk and the
upstream on CPU 0, once per configuration listed in a JSON file, alternating
configurations within each round, and prints the median proxy CPU per request
of each and its difference to the first. A configuration is either a probe
filter script (bench/probe-filter: one step per line, `<phase> <call> <arg> <times>`,
"" for a probe doing nothing) or {"wasm": path} (the meshray filter's bench
configuration with another module). Compare figures only within one run.

With `istio` as the fifth argument each request also carries the headers a
request between two Istio sidecars carries (peer metadata, client certificate,
request id, ...: 13-16 headers in all instead of wrk's 6-9), for calls whose cost
grows with the header map.

usage: price.py CONFIGS.json [ROUNDS] [SECONDS] [out|in] [istio]
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENVOY = os.path.join(ROOT, ".venv/bin/envoy")
PROBE = os.path.join(ROOT, "target/wasm32-wasip1/wasm/meshray_probe_filter.wasm")
CONF = os.path.join(ROOT, "target/bench/conf")
B3 = ["-H", "x-b3-traceid: 6b0e8dd984b70bd7662896c6e022cc5c",
      "-H", "x-b3-spanid: 00f067aa0ba902b7", "-H", "x-b3-sampled: 1"]
# What an app's request carries through an Istio sidecar besides wrk's Host
# (Envoy adds :scheme, x-forwarded-proto and x-request-id itself).
ISTIO = ["-H", "user-agent: python-requests/2.32.3",
         "-H", "accept: */*",
         "-H", "accept-encoding: gzip, deflate",
         "-H", "x-request-id: 1f2e3d4c-5b6a-4789-9abc-def012345678",
         "-H", "x-envoy-attempt-count: 1",
         "-H", "x-envoy-peer-metadata-id: sidecar~10.0.1.23~productpage-v1-6b746f74dc-9stcl.default~default.svc.cluster.local",
         "-H", "x-envoy-peer-metadata: " + "ChoKDkFQUF9DT05UQUlORVJTEggaBnJldmlld3MKGgoKQ0xVU1RFUl9JRBIMGgpLdWJlcm5ldGVz" * 5,
         "-H", "x-forwarded-client-cert: By=spiffe://cluster.local/ns/default/sa/reviews;Hash=6f3c1b0e9a2d;Subject=\"\";URI=spiffe://cluster.local/ns/default/sa/productpage",
         "-H", "content-type: application/json"]


def load(name):
    with open(os.path.join(CONF, name + ".json")) as f:
        return json.load(f)


def port_of(address):
    return address["socket_address"]["port_value"]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def filters(conf):
    for listener in conf["static_resources"]["listeners"]:
        hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
        yield hcm["http_filters"][0]["typed_config"]["config"]


def measure(name, conf, seconds, shape, extra):
    path = f"/tmp/meshray-price-{os.getpid()}-{name}.json"
    with open(path, "w") as f:
        json.dump(conf, f)
    proxy = subprocess.Popen(
        ["taskset", "-c", "1", ENVOY, "-c", path, "--concurrency", "1",
         "--disable-hot-restart", "-l", "error", "--base-id", "22"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        admin = port_of(conf["admin"]["address"])
        for _ in range(150):
            try:
                if b"LIVE" in urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=1).read():
                    break
            except OSError:
                pass
            time.sleep(0.2)
        listener = conf["static_resources"]["listeners"][0 if shape == "out" else 1]
        url = f"http://127.0.0.1:{port_of(listener['address'])}/reviews/1"
        headers = ([] if shape == "out" else B3) + extra
        wrk = ["taskset", "-c", "0", "wrk", "-t1", "-c32"]
        subprocess.run(wrk + ["-d1s", *headers, url], capture_output=True, check=False)
        before = cpu_seconds(proxy.pid)
        out = subprocess.run(wrk + [f"-d{seconds}s", *headers, url],
                             capture_output=True, text=True, check=False).stdout
        after = cpu_seconds(proxy.pid)
        requests = int(next(l for l in out.splitlines() if "requests in" in l).split()[0])
        return (after - before) * 1e6 / requests
    finally:
        proxy.kill()
        proxy.wait()
        os.remove(path)


def configured(steps):
    if isinstance(steps, dict):
        conf = load("meshray")
        for f in filters(conf):
            f["vm_config"]["code"]["local"]["filename"] = steps["wasm"]
        return conf
    conf = load("empty_wasm")
    for f in filters(conf):
        f["vm_config"]["code"]["local"]["filename"] = PROBE
        f["configuration"]["value"] = steps
    return conf


def main():
    configs = json.load(open(sys.argv[1]))
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    seconds = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    shape = sys.argv[4] if len(sys.argv) > 4 else "out"
    extra = ISTIO if len(sys.argv) > 5 and sys.argv[5] == "istio" else []
    meshray = load("meshray")
    receiver = next(c for c in meshray["static_resources"]["clusters"] if c["name"] == "receiver")
    receiver_port = port_of(receiver["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"])
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp_port = udp.getsockname()[1]
    udp.close()
    helpers = [
        subprocess.Popen(["taskset", "-c", "0", os.path.join(ROOT, "target/release/meshray-bench"),
                          "receiver", "--http", f"127.0.0.1:{receiver_port}", "--udp", f"127.0.0.1:{udp_port}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen(["taskset", "-c", "0", ENVOY, "-c", os.path.join(CONF, "upstream.json"),
                          "--concurrency", "1", "--disable-hot-restart", "-l", "error", "--base-id", "21"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    try:
        time.sleep(2)
        results = {name: [] for name in configs}
        for round_ in range(1, rounds + 1):
            for name, steps in configs.items():
                value = measure(name, configured(steps), seconds, shape, extra)
                results[name].append(value)
                print(f"round {round_} {name:28s} {value:7.1f} µs CPU/request", flush=True)
        first = statistics.median(results[next(iter(configs))])
        for name, values in results.items():
            median = statistics.median(values)
            print(f"{name:28s} median {median:7.1f} µs/request  {median - first:+7.1f}  "
                  f"(rounds: {' '.join(f'{v:.0f}' for v in values)})")
    finally:
        for helper in helpers:
            helper.kill()
            helper.wait()


if __name__ == "__main__":
    main()
