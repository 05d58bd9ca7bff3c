"""Cold start: a new Python process imports shibwsgi, builds the middleware and serves its first request.

This is what a freshly forked or restarted uWSGI worker pays before its caches help.
Each run is a new interpreter; the figures are medians over the runs.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from .servers import ROOT

__all__ = ["run"]

_PROBE = """
import json, time
started = time.perf_counter()
from shibwsgi import SSOMiddleware
imported = time.perf_counter()
from bench.environs import PROFILE_CASES
from bench.inprocess import bare_app
from bench.timing import fresh_environs
case = PROFILE_CASES[0]
(first, second) = fresh_environs(case.environ())(0, 2)
built = time.perf_counter()
middleware = SSOMiddleware(bare_app, **case.options())
constructed = time.perf_counter()
b"".join(middleware(first, lambda *args: None))
served = time.perf_counter()
b"".join(middleware(second, lambda *args: None))
again = time.perf_counter()
print(json.dumps({"import": imported - started, "construct": constructed - built,
                  "first_request": served - constructed, "second_request": again - served}))
"""


def run(runs: int = 5, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Median seconds of each step over ``runs`` fresh interpreters."""
    samples: list[dict[str, float]] = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", _PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
        )
        samples.append(json.loads(done.stdout))
    result = {step: statistics.median(sample[step] for sample in samples) for step in samples[0]}
    result["construct_and_first_request"] = statistics.median(
        sample["construct"] + sample["first_request"] for sample in samples
    )
    if progress:
        progress(f"cold start: {result['construct_and_first_request'] * 1e3:.2f} ms to construct + serve")
    return {"runs": runs, "median_seconds": result}
