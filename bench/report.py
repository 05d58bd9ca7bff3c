"""The machine, the targets, the plain-text table and the result files."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import shibwsgi

from . import workerprofile
from .servers import find_program

__all__ = ["Target", "machine", "render", "targets", "versions", "write"]


def machine() -> dict[str, Any]:
    """CPU model, cores, OS, Python, and how busy the machine was."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "cpu_model": model or platform.processor() or "unknown",
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "load_average": _load(),
    }


def _load() -> list[float]:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return []


def versions() -> dict[str, str]:
    # The code measured, not the metadata of an editable install (stale until reinstalled).
    found: dict[str, str] = {"shibwsgi": shibwsgi.__version__}
    for name in ("werkzeug", "flask", "redis"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    redis_server = find_program("redis-server")
    if redis_server:
        try:
            text = subprocess.run(
                [redis_server, "--version"], capture_output=True, text=True, timeout=10, check=False
            ).stdout
        except (OSError, subprocess.SubprocessError):
            text = ""
        match = re.search(r"v=(\S+)", text)
        found["redis-server"] = match.group(1) if match else "unknown"
    return found


@dataclass(frozen=True)
class Target:
    """One goal from issue 10, with what was measured; ``met`` is ``None`` when not measured."""

    name: str
    measured: str
    met: bool | None
    value: float | None
    limit: float
    note: str = ""


def _percent(value: float) -> str:
    return f"{value:.1f} %"


def _overhead(entry: Mapping[str, Any]) -> str:
    return (
        f"{_us(entry['overhead_seconds'])} us = {entry['times_proxyfix_overhead']:.2f}x ProxyFix, "
        f"{_percent(entry['percent_of_flask'])} of Flask"
    )


def _info(name: str, measured: str) -> Target:
    return Target(name, measured, None, None, 0, note="info")


def targets(results: Mapping[str, Any]) -> list[Target]:
    """Check each target against the measured figures (never adjusting either).

    The per-request targets are judged on the steady state (caches warm: the same
    user sending the same bytes again); first-sight figures are shown beside them.
    """
    found: list[Target] = []
    cases = results.get("inprocess", {}).get("cases", {})
    found += _stateless_targets(cases)
    found += _movie_app_targets(cases)
    for store, limit in (("memory", 10.0), ("sqlite", 15.0), ("redis", 20.0)):
        entry = cases.get(f"session:{store}")
        name = f"lazy session, {store}: overhead <= {limit:g} % of a Flask hello world"
        if entry is None:
            continue
        if "skipped" in entry:
            found.append(Target(name, entry["skipped"], None, None, limit))
            continue
        percent = entry["percent_of_flask"]
        first = cases[f"first:session:{store}"]
        found.append(
            Target(
                name,
                f"{_percent(percent)} ({_us(entry['overhead_seconds'])} us; first sight "
                f"{_percent(first['percent_of_flask'])})",
                percent <= limit,
                percent,
                limit,
            )
        )
    found += _redis_targets(results.get("redis_round_trip"))
    found += _scaling_targets(results.get("scaling"))
    found += _memory_targets(results.get("memory"))
    found += _fullstack_targets(results.get("fullstack"))
    cold = results.get("cold_start")
    if cold:
        median = cold["median_seconds"]
        found.append(
            _info(
                "cold start: construct the middleware + first request (reported)",
                f"{median['construct_and_first_request'] * 1e3:.2f} ms "
                f"(construct {median['construct'] * 1e3:.2f} ms, first request "
                f"{median['first_request'] * 1e6:.0f} us, second {median['second_request'] * 1e6:.0f} us; "
                f"import shibwsgi {median['import'] * 1e3:.0f} ms)",
            )
        )
    return found


def _stateless_targets(cases: Mapping[str, Any]) -> list[Target]:
    shib = cases.get("stateless:shibboleth")
    if not shib:
        return []
    first = cases["first:stateless:shibboleth"]
    times, percent = shib["times_proxyfix_overhead"], shib["percent_of_flask"]
    found = [
        Target(
            "stateless shibboleth, 5 attributes: overhead <= 1.0x ProxyFix's",
            f"{times:.2f}x ({_us(shib['overhead_seconds'])} us vs "
            f"{_us(cases['baseline:proxyfix']['overhead_seconds'])} us)",
            times <= 1.0,
            times,
            1.0,
        ),
        Target(
            "stateless shibboleth, 5 attributes: overhead <= 8 % of a Flask hello world",
            f"{_percent(percent)} (of {_us(cases['baseline:flask']['median_seconds'])} us)",
            percent <= 8,
            percent,
            8,
        ),
        _info("  first sight (caches off), for information", _overhead(first)),
    ]
    steady = {
        key: entry
        for key, entry in cases.items()
        if key.startswith("stateless:") and "overhead_seconds" in entry
    }
    worst_key = max(steady, key=lambda key: steady[key]["times_proxyfix_overhead"])
    worst = steady[worst_key]["times_proxyfix_overhead"]
    found.append(
        Target(
            "every stateless profile: overhead <= 2x ProxyFix's",
            f"worst {worst:.2f}x ({steady[worst_key]['label']}); "
            + ", ".join(
                f"{key.split(':')[1]} {entry['times_proxyfix_overhead']:.2f}x"
                for key, entry in steady.items()
            ),
            worst <= 2,
            worst,
            2,
        )
    )
    firsts = [cases["first:" + key]["times_proxyfix_overhead"] for key in steady]
    found.append(
        _info("  first sight (caches off), for information", f"{min(firsts):.1f}-{max(firsts):.1f}x ProxyFix")
    )
    return found


#: The whole Redis session path (``SessionManager.load``) against a raw ``GET`` round trip.
REDIS_PATH_LIMIT = 1.10


def _redis_targets(section: Mapping[str, Any] | None) -> list[Target]:
    if not section:
        return []
    name = f"Redis session path <= {REDIS_PATH_LIMIT:.2f}x raw GET"
    if "skipped" in section:
        return [Target(name, section["skipped"], None, None, REDIS_PATH_LIMIT)]
    found = []
    for mode, figures in section["modes"].items():
        ratio = figures["load_per_raw_get"]
        load, raw = figures["load_paired"]
        measured = (
            f"{ratio:.3f}x ({_spread(figures['load_per_raw_get_rounds'])}; median call "
            f"{_us(load)} us against {_us(raw)} us); beyond the round trip, us: {_profile(figures)}"
        )
        found.append(Target(f"{name}, {mode}", measured, ratio <= REDIS_PATH_LIMIT, ratio, REDIS_PATH_LIMIT))
    return found


def _spread(ratios: Sequence[float]) -> str:
    ordered = sorted(ratios)
    middle = ordered[len(ordered) // 4 : len(ordered) - len(ordered) // 4] or ordered
    return (
        f"{len(ordered)} rounds: middle half {middle[0]:.3f}-{middle[-1]:.3f}, "
        f"all {ordered[0]:.3f}-{ordered[-1]:.3f}"
    )


def _profile(figures: Mapping[str, Any]) -> str:
    layers = ", ".join(f"{layer} {seconds * 1e6:+.2f}" for layer, seconds in figures["profile"].items())
    return f"{layers} (the client's fork check, a getpid system call: {_us(figures['fork_check'])})"


def _redis_round_trip(section: Mapping[str, Any] | None, flask: float | None) -> list[str]:
    if not section or "modes" not in section:
        return []
    out = [
        "Redis round trip: microseconds per session read and write, against a raw socket GET on the same",
        "   server (x raw GET: median over rounds of the ratio, each call timed right after a raw GET);",
        "   session load = SessionManager.load of an unchanged session, a lazy-session request's store cost",
    ]
    rows = []
    for mode, figures in section["modes"].items():
        acknowledged = [figures.get(f"{write}_min_replicas_1") for write in ("set", "delete")]
        rows.append(
            [
                mode,
                _us(figures["raw_get"]),
                f"{_us(figures['store_get'])} ({figures['store_get_per_raw_get']:.3f}x)",
                _us(figures["load"]),
                f"{figures['load_per_raw_get']:.3f}x",
                "-" if flask is None else _percent(100 * figures["load"] / flask),
                f"{_us(figures['raw_get_cpu'])} / {_us(figures['load_cpu'])}",
                f"{_us(figures['set'])} / {_us(figures['delete'])}",
                " / ".join(_us(value) for value in acknowledged) if None not in acknowledged else "-",
            ]
        )
    header = [
        "mode",
        "raw GET",
        "store.get",
        "session load",
        "x raw GET",
        "% of Flask",
        "CPU raw / load",
        "set / delete",
        "with min_replicas=1",
    ]
    out += _table(header, rows, [False, *[True] * 8])
    out += [
        "   what the session load adds to the round trip, us per call, layer by layer (from the x raw GET steps):"
    ]
    out += [f"   {mode}: {_profile(figures)}" for mode, figures in section["modes"].items()]
    return [*out, ""]


def _scaling_targets(scaling: Mapping[str, Any] | None) -> list[Target]:
    if not scaling:
        return []
    large = scaling["sizes"][str(scaling["large_groups"])]
    first, again = scaling["large_first_sight_seconds"] * 1e6, scaling["large_repeat_seconds"] * 1e6
    size = f"{large['attribute_bytes']:,} B"
    return [
        Target(f"64 KB isMemberOf ({size}): first sight <= 75 us", f"{first:.1f} us", first <= 75, first, 75),
        Target(f"64 KB isMemberOf ({size}): repeat <= 15 us", f"{again:.1f} us", again <= 15, again, 15),
    ]


def _memory_targets(memory: Mapping[str, Any] | None) -> list[Target]:
    if not memory:
        return []
    mib, limit = memory["measured_bytes"] / 2**20, memory["limit_bytes"] / 2**20
    return [
        Target(
            f"caches per worker with {memory['users']:,} users x 64 KB: <= {limit:g} MiB",
            f"{mib:.1f} MiB measured by tracemalloc (memo's estimate {memory['estimated_bytes'] / 2**20:.1f} MiB, "
            f"{memory['entries_kept']} identities kept)",
            mib <= limit,
            mib,
            limit,
        )
    ]


def _movie_app_targets(cases: Mapping[str, Any]) -> list[Target]:
    production, plain = cases.get("movie-app:production"), cases.get("movie-app:plain")
    if not production or not plain:
        return []
    return [
        _info(
            "in process: movie app's middleware (rules + roles) vs plain stateless",
            f"{_us(production['overhead_seconds'])} us vs {_us(plain['overhead_seconds'])} us over the bare app "
            f"(first sight {_us(cases['first:movie-app:production']['overhead_seconds'])} us vs "
            f"{_us(cases['first:movie-app:plain']['overhead_seconds'])} us)",
        )
    ]


#: The file, beside latest.txt, that holds the full-stack profile of the workers.
PROFILE_FILE = "fullstack-profile.txt"


def _fullstack_targets(full: Mapping[str, Any] | None) -> list[Target]:
    if not full:
        return []
    name = "full stack: production middleware (rules + roles) >= 95 % of bare"
    if "skipped" in full:
        return [Target(name, full["skipped"], None, None, 95)]
    found = []
    for key, label, limit in (
        ("production_bare", name, 95.0),
        ("stateless_bare", "  plain stateless shibwsgi, beside it", None),
        ("movie_app", "  movie app /api/me (Flask), for information", None),
    ):
        ratio = full["throughput_ratios"][key]
        median = 100 * ratio["median_per_round"]
        spread = (
            f"{_percent(median)} (middle half of {len(ratio['per_round'])} rounds "
            f"{100 * ratio['q1_per_round']:.1f}-{100 * ratio['q3_per_round']:.1f} %, "
            f"all {100 * min(ratio['per_round']):.1f}-{100 * max(ratio['per_round']):.1f} %)"
        )
        if limit is None:
            found.append(_info(label, spread))
        else:
            found.append(Target(label, spread, median >= limit, median, limit))
    return found


def _us(seconds: float) -> str:
    value = seconds * 1e6
    return f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> list[str]:
    widths = [max(len(row[index]) for row in [header, *rows]) for index in range(len(header))]

    def line(row: Sequence[str]) -> str:
        cells = [
            cell.rjust(width) if align else cell.ljust(width)
            for cell, width, align in zip(row, widths, right, strict=True)
        ]
        return "  ".join(cells).rstrip()

    return [line(header), "  ".join("-" * width for width in widths), *(line(row) for row in rows)]


def render(results: Mapping[str, Any]) -> str:
    """The whole report as plain text."""
    out: list[str] = []
    info = results["machine"]
    found = results["versions"]
    out += [
        f"shibwsgi benchmark - {results['started_at']} ({results['mode']} run)",
        f"machine: {info['cpu_model']}, {info['cores']} cores ({info['cores_usable']} usable), "
        f"{info['platform']}",
        f"python:  {info['python']}; load average at start {' '.join(map(str, info['load_average']))}",
        "versions: " + ", ".join(f"{name} {version}" for name, version in found.items()),
        "",
    ]
    out += _inprocess(results.get("inprocess"))
    flask = results.get("inprocess", {}).get("cases", {}).get("baseline:flask", {}).get("median_seconds")
    out += _redis_round_trip(results.get("redis_round_trip"), flask)
    out += _scaling(results.get("scaling"))
    out += _fullstack(results.get("fullstack"))
    out += _caches(results)
    out += ["Targets (issue 10): per-request targets judged on the steady state (caches warm)"]
    rows = []
    for target in results["targets"]:
        if target["met"] is not None:
            verdict = "met" if target["met"] else "MISSED"
        else:
            verdict = "" if target["note"] == "info" else "not measured"
        rows.append([target["name"], target["measured"], verdict])
    out += _table(["target", "measured", "result"], rows, [False, False, False])
    end_load = " ".join(map(str, results.get("load_average_at_end", [])))
    out += [
        "",
        f"wall time of the benchmark run: {results['wall_seconds']:.0f} s; "
        f"load average at end {end_load} (includes this run's own full-stack load)",
    ]
    load = info["load_average"][:1]
    if load and load[0] > 0.5 * (info["cores_usable"] or 1):
        out.append(
            f"note: the machine was busy before the run (load {load[0]} on {info['cores_usable']} cores): "
            "other processes shared the CPU, so the numbers are noisier than on an idle machine."
        )
    return "\n".join(out) + "\n"


def _inprocess(section: Mapping[str, Any] | None) -> list[str]:
    if not section:
        return []
    out = [
        f"1. In-process cost per request: median of {section['repeat']} repetitions of N calls "
        f"(~{section['target_seconds_per_repetition']} s each, interleaved; gc off while timing)",
        "   every request gets a freshly built environ (strings decoded anew, as uWSGI does), no-op",
        "   start_response, body consumed; overhead = case - bare app. steady: caches warm (the same user",
        "   sends the same bytes again); first sight: caches switched off (every request parsed/verified).",
        "   stateless: whole-site style, 5 attributes (oauth2-proxy sends 4), 10 groups, environ channel",
        "   unless 'headers'; session: lazy style, the request carries only the signed session cookie.",
    ]
    rows = []
    cases = section["cases"]
    for key, entry in cases.items():
        if key.startswith("first:"):
            continue
        label = f"{entry['group']}: {entry['label']}"
        if "skipped" in entry:
            rows.append([label, entry["skipped"], "", "", "", "", "", ""])
            continue
        overhead = entry.get("overhead_seconds")
        first = cases.get("first:" + key)
        rows.append(
            [
                label,
                _us(entry["median_seconds"]),
                f"{_us(entry['min_seconds'])}-{_us(entry['max_seconds'])}",
                "-" if overhead is None else _us(overhead),
                "-" if overhead is None else _percent(entry["percent_of_flask"]),
                "-" if overhead is None else f"{entry['times_proxyfix_overhead']:.2f}x",
                "" if first is None else _us(first["overhead_seconds"]),
                "" if first is None else _percent(first["percent_of_flask"]),
            ]
        )
    header = [
        "case",
        "median us",
        "min-max us",
        "overhead us",
        "% of Flask",
        "x ProxyFix",
        "first sight us",
        "%",
    ]
    out += _table(header, rows, [False, True, True, True, True, True, True, True])
    return [*out, ""]


def _scaling(section: Mapping[str, Any] | None) -> list[str]:
    if not section:
        return []
    out = [
        "2. Scaling with attribute size: isMemberOf of N groups (shibboleth, 5 attributes; overheads in us)",
        "   first sight: a new front-end session on every request (the memo misses, parses, stores);",
        "   repeat: the same request again (the memo compares the raw values and answers).",
    ]
    rows = []
    for entry in section["sizes"].values():
        rows.append(
            [
                f"{entry['groups']:,}",
                f"{entry['attribute_bytes']:,}",
                _us(entry["first_sight_overhead_seconds"]),
                f"{entry['first_sight_seconds_per_kib'] * 1e6:.2f}",
                _us(entry["repeat_overhead_seconds"]),
            ]
        )
    header = ["groups", "bytes", "first sight", "us per KiB", "repeat"]
    out += _table(header, rows, [True] * len(header))
    fit = section["fit_first_sight_overhead_vs_kib"]
    out += [
        f"linear fit of first sight: {fit['intercept'] * 1e6:.2f} us + {fit['slope'] * 1e6:.3f} us/KiB "
        f"(r^2 = {fit['r2']:.5f})",
        "",
    ]
    return out


def _caches(results: Mapping[str, Any]) -> list[str]:
    cases = results.get("inprocess", {}).get("cases", {})
    memory = results.get("memory")
    if not cases and not memory:
        return []
    out = ["4. Cache memory per worker (estimated by the caches; tracemalloc where said)"]
    for key, entry in cases.items():
        caches = entry.get("caches")
        if not caches or key.startswith("first:"):
            continue
        line = f"   {key}: identity memo {caches['identity_cache_entries']} entries, {caches['identity_cache_bytes']:,} B"
        if "cookie_cache_bytes" in caches:
            line += f"; verified cookies {caches['cookie_cache_entries']} entries, {caches['cookie_cache_bytes']:,} B"
        out.append(line)
    if memory:
        out.append(
            f"   {memory['users']:,} distinct users with a {memory['attribute_bytes']:,} B isMemberOf each: "
            f"{memory['entries_kept']} identities kept, {memory['estimated_bytes'] / 2**20:.2f} MiB estimated, "
            f"{memory['measured_bytes'] / 2**20:.2f} MiB measured (bound {memory['limit_bytes'] / 2**20:g} MiB)"
        )
    return [*out, ""]


def _fullstack(section: Mapping[str, Any] | None) -> list[str]:
    if not section:
        return []
    if "skipped" in section:
        return ["3. Full stack: " + section["skipped"], ""]
    driver = section["driver"]
    uwsgi = section["uwsgi"]
    out = [
        f"3. Full stack: {section['apache']} (mpm_event, mod_proxy_uwsgi, no access log) -> "
        f"{uwsgi['version'] and 'uWSGI ' + uwsgi['version']} ({uwsgi['processes']} processes, "
        f"buffer-size {uwsgi['buffer_size']})",
        f"   load: {driver['tool']} {driver['version']}, {driver['threads']} thread(s), "
        f"{driver['connections']} keep-alive connections, {section['rounds']} rounds x "
        f"{section['duration_seconds']:g} s per target, order rotated each round",
        f"   GET {section['path']}; identity from SetEnv (eppn, displayName, mail, isMemberOf, Shib-*), "
        f"as mod_shib would; {section['transport']}",
    ]
    rows = []
    ratios = section["throughput_ratios"]
    for key, entry in section["targets"].items():
        ratio = ratios.get(key)
        versus = "100 %" if key == "bare" else ""
        cpu = entry.get("uwsgi_cpu_us_per_request")
        if ratio:
            low, high = min(ratio["per_round"]), max(ratio["per_round"])
            versus = f"{100 * ratio['median_per_round']:.1f} % ({100 * low:.0f}-{100 * high:.0f})"
        rows.append(
            [
                entry["label"],
                f"{entry['requests_per_second']:.0f}",
                f"{entry['p50_ms']:.2f}",
                f"{entry['p99_ms']:.2f}",
                str(entry["errors"]),
                "-" if cpu is None else f"{cpu:.1f}",
                versus,
            ]
        )
    header = ["target", "req/s", "p50 ms", "p99 ms", "errors", "uWSGI CPU us/req", "vs bare (rounds min-max)"]
    out += _table(header, rows, [False, True, True, True, True, True, True])
    out += [
        "   req/s, p50, p99, uWSGI CPU (master + workers, /proc): medians over the rounds;",
        "   vs bare: median of the per-round ratios. The CPU per request does not move with other",
        "   processes' load as throughput does: on a busy machine it is the steadier comparison.",
    ]
    bare_cpu = section["targets"].get("bare", {}).get("uwsgi_cpu_us_per_request")
    if bare_cpu is not None:
        extras = ", ".join(
            f"{entry['label']} {entry['uwsgi_cpu_us_per_request'] - bare_cpu:+.1f} us"
            for key, entry in section["targets"].items()
            if key in ("stateless_bare", "production_bare") and entry["uwsgi_cpu_us_per_request"] is not None
        )
        out.append(f"   uWSGI CPU per request beyond the bare app's {bare_cpu:.1f} us: {extras}")
    if "profile" in section:
        out.append(f"   workers profiled under load (perf, py-spy): {PROFILE_FILE}")
    if section["suspicious_log_lines"]:
        out += ["   suspicious log lines (see the JSON):"]
        for name, lines in section["suspicious_log_lines"].items():
            out += [f"     {name}: {lines[0]}"]
    return [*out, ""]


def write(folder: Path, results: Mapping[str, Any], text: str) -> tuple[Path, Path]:
    """Write ``latest.json`` and ``latest.txt`` atomically (``*.tmp`` then rename).

    The full stack's worker profile, when there is one, goes to :data:`PROFILE_FILE` too.
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    files = [
        ("latest.json", json.dumps(results, indent=2, ensure_ascii=False) + "\n"),
        ("latest.txt", text),
    ]
    full = results.get("fullstack") or {}
    if "profile" in full:
        labels = {key: entry["label"] for key, entry in full["targets"].items()}
        files.append((PROFILE_FILE, workerprofile.render(full["profile"], labels) + "\n"))
    for name, content in files:
        path = folder / name
        temporary = path.with_suffix(path.suffix + ".tmp")
        temporary.write_text(content, encoding="utf-8")
        os.replace(temporary, path)
        paths.append(path)
    return paths[0], paths[1]


def target_dicts(found: Sequence[Target]) -> list[dict[str, Any]]:
    return [asdict(target) for target in found]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
