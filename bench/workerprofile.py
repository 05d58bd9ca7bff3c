"""Where a uWSGI worker's time goes under load: its CPU per request, perf's split, py-spy's frames.

Three views of the same load run, none needed for the throughput figures:

- CPU per request: the user + system time of the uWSGI master and workers
  (``/proc/PID/stat``) over the requests served. Other processes on the machine
  lengthen a run but do not add to it, which makes it the steadiest figure here.
- perf (``perf record``, no call graphs): the workers' samples by object (kernel,
  libpython, uwsgi, libc) and the top symbols.
- py-spy (``py-spy record --nonblocking``, the ``bench`` extra): the Python frames by
  self time. A sample without a Python frame is the worker in uWSGI's C code or
  waiting; Python wall time per request is the samples holding a Python frame over
  the requests served.

A tool that is missing, or refused (``ptrace``, ``perf_event_paranoid``), is named
in the result and the others still run.
"""

from __future__ import annotations

import collections
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from .servers import find_program, pinned

__all__ = ["cpu_seconds", "process_tree", "profile", "render"]

#: Samples per second per worker (py-spy) and per CPU (perf).
RATE = 500
TOP = 12
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_tree(pid: int) -> list[int]:
    """``pid`` and its children (a uWSGI master and its workers); ``[pid]`` when /proc cannot say."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return [pid]
    return [pid, *map(int, children)]


def cpu_seconds(pids: Iterable[int]) -> float | None:
    """User + system CPU seconds of ``pids`` so far; ``None`` without /proc."""
    total = 0
    try:
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None
    return total / _TICK


def profile(
    key: str, master: int, load: Callable[[float], int], *, seconds: float, folder: Path, cpu: int
) -> dict[str, Any]:
    """Profile ``master``'s workers while ``load(seconds)`` runs (it returns the requests served).

    The profilers run on CPU ``cpu`` (the load generator's), not on the servers' one.
    """
    pids = process_tree(master)
    spy = _py_spy()
    perf = find_program("perf")
    result: dict[str, Any] = {"seconds": seconds, "rate_hz": RATE}
    served: list[int] = []
    started = threading.Event()

    def run_load() -> None:
        started.set()
        served.append(load(seconds + 1))  # covers the profilers' window

    loader = threading.Thread(target=run_load, name="profile-load")
    cpu_before = cpu_seconds(pids)
    loader.start()
    started.wait()
    runs: dict[str, tuple[subprocess.Popen[str], Path]] = {}
    if spy is not None:
        output = folder / f"{key}.pyspy"
        argv = [spy, "record", "--pid", str(master), "--subprocesses", "--nonblocking"]
        argv += ["--format", "raw", "--rate", str(RATE), "--duration", str(round(seconds))]
        runs["py-spy"] = (_popen(pinned([*argv, "--output", str(output)], cpu)), output)
    if perf is not None:
        output = folder / f"{key}.perf"
        argv = [perf, "record", "-q", "-F", str(RATE), "-p", ",".join(map(str, pids[1:] or pids))]
        runs["perf"] = (_popen(pinned([*argv, "-o", str(output), "--", "sleep", str(seconds)], cpu)), output)
    outcomes = {name: _finish(process) for name, (process, _) in runs.items()}
    loader.join()
    cpu_after = cpu_seconds(pids)
    requests = served[0] if served else 0
    result["requests"] = requests
    if cpu_before is not None and cpu_after is not None and requests:
        # The whole load run, slightly longer than the profilers' window: both over the same requests.
        result["uwsgi_cpu_us_per_request"] = 1e6 * (cpu_after - cpu_before) / requests
    result["py_spy"] = (
        _spy_summary(
            runs["py-spy"][1], outcomes["py-spy"], len(pids) * seconds, requests * seconds / (seconds + 1)
        )
        if spy is not None
        else {"skipped": "py-spy not installed (pip install -e '.[bench]')"}
    )
    result["perf"] = (
        _perf_summary(perf, runs["perf"][1], outcomes["perf"])
        if perf is not None
        else {"skipped": "perf not installed"}
    )
    return result


def _py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if os.access(beside, os.X_OK) else find_program("py-spy")


def _popen(argv: Sequence[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True
    )


def _finish(process: subprocess.Popen[str]) -> str | None:
    """``None`` when the tool succeeded, else what it said."""
    try:
        output, _ = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        return "timed out"
    return None if process.returncode == 0 else (output.strip().splitlines() or ["failed"])[-1]


def _frame(frame: str) -> str:
    return re.sub(r":\d+\)$", ")", frame)


def _spy_summary(path: Path, failure: str | None, process_seconds: float, requests: float) -> dict[str, Any]:
    """Frames by self time; ``requests``: those served while py-spy sampled (``process_seconds`` in all)."""
    if failure is not None or not path.exists():
        return {"skipped": f"py-spy: {failure or 'no output'}"}
    own: collections.Counter[str] = collections.Counter()
    total = in_python = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = [_frame(frame) for frame in stack.split(";") if not frame.startswith("process ")]
        total += int(count)
        if frames:
            in_python += int(count)
            own[frames[-1]] += int(count)
    summary: dict[str, Any] = {
        "samples": total,
        "python_samples": in_python,
        "top_self": [
            {"frame": frame, "percent_of_python": 100 * count / in_python}
            for frame, count in own.most_common(TOP)
        ],
    }
    if requests and total:
        # Each process is sampled alike whatever it does (py-spy may fall short of RATE): the
        # share of samples in Python times the processes' wall time, over the requests.
        summary["python_wall_us_per_request"] = 1e6 * in_python / total * process_seconds / requests
    return summary


def _perf_summary(perf: str, path: Path, failure: str | None) -> dict[str, Any]:
    if failure is not None or not path.exists():
        return {"skipped": f"perf: {failure or 'no output'}"}
    summary: dict[str, Any] = {}
    for name, sort, top in (("by_object", "dso", 6), ("top_symbols", "dso,sym", TOP)):
        done = subprocess.run(
            [perf, "report", "-i", str(path), "--no-children", "--sort", sort, "--stdio", "-q"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        rows = []
        for line in done.stdout.splitlines():
            match = re.match(r"\s*([\d.]+)%\s+(.+?)\s*$", line)
            if match:
                rows.append({"percent": float(match.group(1)), "what": " ".join(match.group(2).split())})
        summary[name] = rows[:top]
    return summary


def render(profiles: dict[str, dict[str, Any]], labels: dict[str, str]) -> str:
    """The profiles as text (``bench/results/fullstack-profile.txt``)."""
    out = [
        "Full stack profile: the uWSGI workers of each target under the same wrk load, one run each",
        f"(py-spy record --nonblocking at {RATE} Hz per worker; perf record -F {RATE}; uWSGI CPU from /proc).",
        "Throughput while profiled is not a measurement: the profilers take CPU too.",
        "",
    ]
    for key, entry in profiles.items():
        line = f"== {labels.get(key, key)}: {entry['requests']:,} requests in {entry['seconds'] + 1:g} s"
        if "uwsgi_cpu_us_per_request" in entry:
            line += f"; uWSGI CPU {entry['uwsgi_cpu_us_per_request']:.1f} us/request"
        spy = entry["py_spy"]
        if "python_wall_us_per_request" in spy:
            line += f"; Python {spy['python_wall_us_per_request']:.1f} us/request (wall, py-spy)"
        out.append(line)
        perf = entry["perf"]
        if "skipped" in perf:
            out.append(f"   {perf['skipped']}")
        else:
            objects = ", ".join(f"{row['what']} {row['percent']:.1f} %" for row in perf["by_object"])
            out.append(f"   perf, worker samples by object: {objects}")
            out.append("   perf, top symbols by self time:")
            out += [f"     {row['percent']:5.1f} %  {row['what']}" for row in perf["top_symbols"]]
        if "skipped" in spy:
            out.append(f"   {spy['skipped']}")
        else:
            out.append(
                f"   py-spy, Python frames by self time ({spy['python_samples']:,} of "
                f"{spy['samples']:,} samples hold a Python frame):"
            )
            out += [f"     {row['percent_of_python']:5.1f} %  {row['frame']}" for row in spy["top_self"]]
        out.append("")
    return "\n".join(out)
