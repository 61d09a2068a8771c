"""`python -m benchmarks.load_worker URI S3_ENDPOINT`: load a dataset once, print one JSON line.

Run in a fresh interpreter so its RSS is the loader's alone: the memory after the imports, after
the load (the Dataset kept alive, as the supervisor keeps it), and the peak (VmHWM), with the
import time apart from the load + validate time.
"""

from __future__ import annotations

import json
import sys
import time


def _memory_mb() -> dict[str, float]:
    out: dict[str, float] = {}
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, kb = line.split()[:2]
                out[key.rstrip(":")] = round(int(kb) / 1024, 1)
    return out


def main() -> int:
    uri, endpoint = sys.argv[1], sys.argv[2]
    started = time.perf_counter()
    from pydantic import SecretStr

    from supervisor.dataset import S3Location, load_dataset

    imported = time.perf_counter()
    before = _memory_mb()
    s3 = S3Location(
        endpoint_url=endpoint,
        access_key=SecretStr("testing"),
        secret_key=SecretStr("testing"),
        region="us-east-1",
    )
    t0 = time.perf_counter()
    dataset = load_dataset(uri, s3=s3)
    load_s = time.perf_counter() - t0
    after = _memory_mb()
    print(
        json.dumps(
            {
                "rows": len(dataset),
                "invalid": dataset.invalid_count,
                "import_s": round(imported - started, 3),
                "load_s": round(load_s, 3),
                "rss_after_imports_mb": before["VmRSS"],
                "rss_after_load_mb": after["VmRSS"],
                "peak_rss_mb": after["VmHWM"],
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
