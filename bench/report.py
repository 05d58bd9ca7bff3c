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
    found: dict[str, str] = {}
    for name in ("shibwsgi", "werkzeug", "flask", "redis"):
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
    """One goal from issue 6, with what was measured; ``met`` is ``None`` when not measured."""

    name: str
    measured: str
    met: bool | None
    value: float | None
    limit: float
    note: str = ""


def _percent(value: float) -> str:
    return f"{value:.1f} %"


def targets(results: Mapping[str, Any]) -> list[Target]:
    """Check each target against the measured figures (never adjusting either)."""
    found: list[Target] = []
    cases = results.get("inprocess", {}).get("cases", {})
    shib = cases.get("stateless:shibboleth")
    if shib:
        proxyfix = cases["baseline:proxyfix"]["overhead_seconds"]
        flask = cases["baseline:flask"]["median_seconds"]
        times = shib["times_proxyfix_overhead"]
        found.append(
            Target(
                "stateless overhead <= 2x ProxyFix's (shibboleth, 5 attributes)",
                f"{times:.1f}x ({_us(shib['overhead_seconds'])} vs {_us(proxyfix)} us)",
                times <= 2,
                times,
                2,
            )
        )
        percent = shib["percent_of_flask"]
        found.append(
            Target(
                "stateless overhead <= 5 % of a Flask hello-world request",
                f"{_percent(percent)} ({_us(shib['overhead_seconds'])} of {_us(flask)} us)",
                percent <= 5,
                percent,
                5,
            )
        )
        others = [
            entry
            for key, entry in cases.items()
            if key.startswith("stateless:") and "overhead_seconds" in entry
        ]
        times_all = [entry["times_proxyfix_overhead"] for entry in others]
        percent_all = [entry["percent_of_flask"] for entry in others]
        found.append(
            Target(
                "  (all stateless profiles, for information)",
                f"{min(times_all):.1f}-{max(times_all):.1f}x ProxyFix, "
                f"{min(percent_all):.0f}-{max(percent_all):.0f} % of Flask",
                None,
                None,
                0,
                note="info",
            )
        )
    for key, name, limit in (
        ("session:sqlite", "SQLite session path <= 25 % of a Flask hello-world", 25.0),
        ("session:redis", "Redis session path <= 35 % of a Flask hello-world", 35.0),
    ):
        entry = cases.get(key)
        if entry is None:
            continue
        if "skipped" in entry:
            found.append(Target(name, entry["skipped"], None, None, limit))
            continue
        percent = entry["percent_of_flask"]
        found.append(
            Target(
                name,
                f"{_percent(percent)} ({_us(entry['overhead_seconds'])} us)",
                percent <= limit,
                percent,
                limit,
            )
        )
    scaling = results.get("scaling")
    if scaling:
        ratio = scaling["ratio_large_to_small"]
        small = scaling["sizes"][str(scaling["small_groups"])]
        large = scaling["sizes"][str(scaling["large_groups"])]
        found.append(
            Target(
                "t(64 KB) / t(1 KB) <= 70 (middleware overhead)",
                f"{ratio:.1f} ({_us(large['overhead_seconds'])} / {_us(small['overhead_seconds'])} us, "
                f"{large['attribute_bytes']:,} / {small['attribute_bytes']:,} B)",
                ratio <= 70,
                ratio,
                70,
            )
        )
        millis = scaling["large_overhead_seconds"] * 1e3
        found.append(
            Target(
                "64 KB attribute parsed in <= 1 ms (whole middleware)",
                f"{millis:.3f} ms",
                millis <= 1,
                millis,
                1,
            )
        )
    full = results.get("fullstack")
    if full:
        name = "full stack: protected throughput >= 95 % of bare"
        if "skipped" in full:
            found.append(Target(name, full["skipped"], None, None, 95))
        else:
            for key, label in (
                ("movie_app", "movie app /api/me vs bare app"),
                ("protected_bare", "bare app + shibwsgi vs bare app"),
            ):
                ratio = full["throughput_ratios"][key]
                median = 100 * ratio["median_per_round"]
                low, high = (100 * min(ratio["per_round"]), 100 * max(ratio["per_round"]))
                found.append(
                    Target(
                        f"{name}: {label}",
                        f"{_percent(median)} (rounds {low:.0f}-{high:.0f} %)",
                        median >= 95,
                        median,
                        95,
                    )
                )
                name = "full stack"
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
    out += _scaling(results.get("scaling"))
    out += _fullstack(results.get("fullstack"))
    out += ["Targets (issue 6)"]
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
        "   environ copied per call, no-op start_response, body consumed; overhead = case - bare app.",
        "   stateless: whole-site style, 5 attributes (oauth2-proxy sends 4), 10 groups, environ channel",
        "   unless 'headers'; session: lazy style, the request carries only the signed session cookie.",
    ]
    rows = []
    for entry in section["cases"].values():
        label = f"{entry['group']}: {entry['label']}"
        if "skipped" in entry:
            rows.append([label, entry["skipped"], "", "", "", ""])
            continue
        overhead = entry.get("overhead_seconds")
        rows.append(
            [
                label,
                _us(entry["median_seconds"]),
                f"{_us(entry['min_seconds'])}-{_us(entry['max_seconds'])}",
                "-" if overhead is None else _us(overhead),
                "-" if overhead is None else _percent(entry["percent_of_flask"]),
                "-" if overhead is None else f"{entry['times_proxyfix_overhead']:.1f}x",
            ]
        )
    header = ["case", "median us", "min-max us", "overhead us", "% of Flask", "x ProxyFix"]
    out += _table(header, rows, [False, True, True, True, True, True])
    return [*out, ""]


def _scaling(section: Mapping[str, Any] | None) -> list[str]:
    if not section:
        return []
    out = [
        "2. Scaling with attribute size: isMemberOf of N groups (shibboleth, 5 attributes; medians in us)",
    ]
    rows = []
    for entry in section["sizes"].values():
        rows.append(
            [
                f"{entry['groups']:,}",
                f"{entry['attribute_bytes']:,}",
                _us(entry["middleware"]["median_seconds"]),
                _us(entry["overhead_seconds"]),
                f"{entry['overhead_seconds_per_kib'] * 1e6:.2f}",
                _us(entry["parse"]["median_seconds"]),
                _us(entry["round_trip"]["median_seconds"]),
            ]
        )
    header = ["groups", "bytes", "middleware", "overhead", "us per KiB", "parse only", "environ_for+parse"]
    out += _table(header, rows, [True] * len(header))
    fit = section["fit_overhead_vs_kib"]
    out += [
        f"linear fit of overhead: {fit['intercept'] * 1e6:.2f} us + {fit['slope'] * 1e6:.3f} us/KiB "
        f"(r^2 = {fit['r2']:.5f}); t({section['large_groups']} groups) / t({section['small_groups']} groups)"
        f" = {section['ratio_large_to_small']:.1f}",
        "",
    ]
    return out


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
                versus,
            ]
        )
    header = ["target", "req/s", "p50 ms", "p99 ms", "errors", "vs bare (rounds min-max)"]
    out += _table(header, rows, [False, True, True, True, True, True])
    out += ["   req/s, p50, p99: medians over the rounds; vs bare: median of the per-round ratios"]
    if section["suspicious_log_lines"]:
        out += ["   suspicious log lines (see the JSON):"]
        for name, lines in section["suspicious_log_lines"].items():
            out += [f"     {name}: {lines[0]}"]
    return [*out, ""]


def write(folder: Path, results: Mapping[str, Any], text: str) -> tuple[Path, Path]:
    """Write ``latest.json`` and ``latest.txt`` atomically (``*.tmp`` then rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, content in (
        ("latest.json", json.dumps(results, indent=2, ensure_ascii=False) + "\n"),
        ("latest.txt", text),
    ):
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
