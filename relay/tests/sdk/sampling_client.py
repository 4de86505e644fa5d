#!/usr/bin/env python3
"""A real X-Ray SDK (PyPI aws-xray-sdk) using the relay as its daemon for centralized sampling.

Usage: sampling_client.py DAEMON_ADDRESS (host:port). Prints one JSON object on stdout:
  rules        the rule names the SDK loaded (through GetSamplingRules)
  always       how many of 20 requests to /always the SDK sampled
  never        ... of 20 requests to /never
  later_before ... of 20 requests to /later before the first SamplingTargets poll
  later_after  ... of 20 requests to /later after it
  errors       every WARNING-or-worse log line the SDK wrote
The rules and targets themselves come from whatever X-Ray endpoint the relay proxies to;
the Rust test scripts them. Exits 1 (with what it saw) if the rules or targets never arrive.
"""

import json
import logging
import sys
import time


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.lines = []

    def emit(self, record):
        self.lines.append(self.format(record))


def main():
    daemon = sys.argv[1]
    errors = Collect()
    logging.getLogger("aws_xray_sdk").addHandler(errors)
    logging.getLogger("aws_xray_sdk").setLevel(logging.INFO)
    logging.getLogger("botocore").addHandler(errors)

    from aws_xray_sdk.core import xray_recorder
    xray_recorder.configure(daemon_address=daemon, sampling=True, service="sdk-app",
                            context_missing="LOG_ERROR")
    sampler = xray_recorder.sampler

    def sampled(path, n=20):
        request = {"host": "sdk-app.example", "method": "GET", "path": path, "service": "sdk-app"}
        return sum(1 for _ in range(n) if sampler.should_trace(dict(request)))

    result = {"errors": errors.lines}

    def finish(code):
        result["errors"] = errors.lines
        print(json.dumps(result))
        sys.exit(code)

    sampled("/warmup", 1)  # starts the rule and target pollers
    # The SDK's rule cache is internal; waiting for it is the only way to know the poll ran.
    deadline = time.time() + 20
    while time.time() < deadline:
        names = [rule.name for rule in sampler._cache.rules]
        if "meshray-always" in names:
            break
        time.sleep(0.1)
    result["rules"] = sorted(rule.name for rule in sampler._cache.rules)
    if "meshray-always" not in result["rules"]:
        finish(1)

    result["always"] = sampled("/always")
    result["never"] = sampled("/never")
    result["later_before"] = sampled("/later")
    # The target poller reports every 10 s (+ up to 0.1 s); the test's X-Ray answers with
    # FixedRate 1.0 for meshray-later.
    deadline = time.time() + 25
    while time.time() < deadline:
        rule = next(r for r in sampler._cache.rules if r.name == "meshray-later")
        if rule.rate == 1.0:
            break
        time.sleep(0.2)
    result["later_after"] = sampled("/later")
    finish(0)


if __name__ == "__main__":
    main()
