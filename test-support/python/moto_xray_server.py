"""moto_server for the tests, with X-Ray's trace store made safe for concurrent writers.

moto's threaded server handles each call on its own thread, and its trace store
(`moto.xray.models.SegmentCollection`) is not safe for that: it creates a trace on first
use through a `defaultdict`, so when two PutTraceSegments calls bring the first documents
of one trace at the same moment, both create the trace and one call's documents are
lost; and GetTraceSummaries iterates over the store while a write may grow it. X-Ray
keeps every document and the end-to-end tests count documents exactly, so this launcher
runs the store's methods under one lock and otherwise runs `moto.server.main`
unchanged (same arguments as `moto_server`).
"""

import threading

from moto.server import main
from moto.xray import models

_LOCK = threading.Lock()


def _locked(method):
    def locked(self, *args, **kwargs):
        with _LOCK:
            return method(self, *args, **kwargs)

    return locked


for _name in ("put_segment", "summary", "get_trace_ids"):
    setattr(
        models.SegmentCollection,
        _name,
        _locked(getattr(models.SegmentCollection, _name)),
    )

if __name__ == "__main__":
    main()
