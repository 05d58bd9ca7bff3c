"""``python -m bench`` (``make bench``): run every benchmark once, print the table, write the results.

Not part of the test suite. Writes ``bench/results/latest.json`` (every raw number)
and ``bench/results/latest.txt`` (the table). Servers it starts are stopped on the
way out, also on errors, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

from . import coldstart, fullstack, inprocess, memory, redis_ha, report, scaling, signed

RESULTS = Path(__file__).resolve().parent / "results"


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run (numbers are rough)")
    parser.add_argument("--repeat", type=int, default=7, help="repetitions per in-process case (7)")
    parser.add_argument(
        "--target-seconds", type=float, default=0.2, help="seconds per repetition, sets N (0.2)"
    )
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per full-stack load run (3)")
    parser.add_argument("--rounds", type=int, default=10, help="full-stack rounds over all targets (10)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections (16)")
    parser.add_argument(
        "--threads", type=int, default=1, help="wrk threads (1: leave the cores to the server)"
    )
    parser.add_argument("--no-fullstack", action="store_true", help="skip Apache + uWSGI")
    parser.add_argument(
        "--profile-seconds",
        type=float,
        default=5.0,
        help="then profile the uWSGI workers under load this long, per target (5; 0: no profile)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="where latest.json/.txt go")
    options = parser.parse_args(argv)
    if options.quick:
        options.repeat, options.target_seconds = 3, 0.03
        options.duration, options.rounds, options.profile_seconds = 1.0, 2, min(options.profile_seconds, 2.0)
    return options


def _progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _terminate(signum: int, frame: FrameType | None) -> None:
    # Unwind through the finally blocks that stop the servers.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    options = _arguments(argv)
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    results: dict[str, Any] = {
        "schema": 1,
        "started_at": report.now(),
        "mode": "quick" if options.quick else "full",
        "machine": report.machine(),
        "versions": report.versions(),
        "units": "seconds unless a key says otherwise",
    }
    with tempfile.TemporaryDirectory(prefix="shibwsgi-bench-") as temporary:
        folder = Path(temporary)
        _progress("in-process cases")
        results["inprocess"] = inprocess.run(
            folder, repeat=options.repeat, target=options.target_seconds, progress=_progress
        )
        results["signed"] = signed.run(
            repeat=options.repeat, target=options.target_seconds, progress=_progress
        )
        _progress("Redis round trip: one Redis, Sentinel, Cluster")
        (folder / "redis-ha").mkdir()
        results["redis_round_trip"] = redis_ha.run(
            folder / "redis-ha", seconds=options.target_seconds, progress=_progress
        )
        _progress("attribute size scaling")
        results["scaling"] = scaling.run(
            repeat=options.repeat, target=options.target_seconds, progress=_progress
        )
        _progress("cache memory: 2,000 users with 64 KB each")
        results["memory"] = memory.run(progress=_progress)
        _progress("cold start")
        results["cold_start"] = coldstart.run(runs=3 if options.quick else 5, progress=_progress)
        if not options.no_fullstack:
            _progress("full stack: Apache + mod_proxy_uwsgi + uWSGI")
            stack = folder / "fullstack"
            stack.mkdir()
            results["fullstack"] = fullstack.run(
                stack,
                duration=options.duration,
                rounds=options.rounds,
                warmup=1.0,
                connections=options.connections,
                threads=options.threads,
                progress=_progress,
                profile_seconds=options.profile_seconds,
            )
    results["targets"] = report.target_dicts(report.targets(results))
    results["finished_at"] = report.now()
    results["load_average_at_end"] = report.machine()["load_average"]
    results["wall_seconds"] = time.monotonic() - started
    text = report.render(results)
    json_path, text_path = report.write(options.output, results, text)
    print(text, end="")
    _progress(f"wrote {json_path} and {text_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
