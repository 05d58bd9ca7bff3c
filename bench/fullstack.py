"""The real stack: Apache 2.4 + mod_proxy_uwsgi + uWSGI, loaded by wrk (or ab) over loopback.

No identity provider: ``SetEnv`` puts the variables mod_shib would set into the
request's environment, and mod_proxy_uwsgi sends them as uwsgi vars, which is
exactly the production channel. Plain HTTP on loopback: TLS would cost the same
for every target and is not what is measured.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from .environs import DISPLAY_NAME, USER, groups
from .servers import ROOT, Server, find_program, free_ports, install_if_root, pinned, start, wait_for_port
from .workerprofile import cpu_seconds, process_tree, profile, render

__all__ = ["TARGETS", "Target", "run"]

MODULES = Path("/usr/lib/apache2/modules")
#: Only what the bench needs; no mod_log_config CustomLog, so no access log.
APACHE_MODULES = {
    "mpm_event_module": "mod_mpm_event.so",
    "authz_core_module": "mod_authz_core.so",
    "env_module": "mod_env.so",
    "proxy_module": "mod_proxy.so",
    "proxy_uwsgi_module": "mod_proxy_uwsgi.so",
}
UWSGI_PROCESSES = 4
BUFFER_SIZE = 65535
PATH = "/api/me"
GROUP_COUNT = 10
#: The load generator runs on one CPU, Apache and uWSGI on the other: the servers then
#: compete only with each other, and throughput measures their CPU time per request.
LOAD_CPU, SERVER_CPU = 0, 1
#: The targets profiled after the rounds: the bare app without and with the middleware.
PROFILED = ("bare", "stateless_bare", "production_bare")


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    module: str


TARGETS = (
    Target("bare", "bare WSGI app", "bench.apps:bare"),
    Target("stateless_bare", "bare app + shibwsgi, plain stateless", "bench.stateless:application"),
    Target(
        "production_bare",
        "bare app + movie app's middleware (rules, roles on SQLite)",
        "bench.protected:application",
    ),
    Target("movie_app", "movie app /api/me (shibwsgi + Flask)", "app.wsgi:application"),
)


@dataclass(frozen=True)
class Load:
    """One load run against one target."""

    target: str
    round: int
    requests: int
    seconds: float
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    #: uWSGI's CPU (master and workers) per request served: steadier than throughput on a busy machine.
    uwsgi_cpu_us: float | None = None


def _identity_variables() -> dict[str, str]:
    """What mod_shib would export for the user (ShibUseEnvironment On)."""
    now = int(time.time())
    return {
        "eppn": USER,
        "displayName": DISPLAY_NAME,
        "mail": USER,
        "isMemberOf": ";".join(groups(GROUP_COUNT)),
        "affiliation": "member@example.org;staff@example.org",
        "Shib-Application-ID": "default",
        "Shib-Session-ID": "_3f2b1c0e9d8a7b6c5d4e3f2a1b0c9d8e",
        "Shib-Identity-Provider": "https://idp.example.org/idp/shibboleth",
        "Shib-Authentication-Instant": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now)),
        "Shib-Session-Expires": str(now + 8 * 3600),
        "Shib-AuthnContext-Class": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
    }


def _apache_conf(folder: Path, ports: dict[str, int], backends: dict[str, int]) -> str:
    lines = [
        f'ServerRoot "{folder}"',
        f'DefaultRuntimeDir "{folder}"',
        f'PidFile "{folder}/httpd.pid"',
        f'ErrorLog "{folder}/error.log"',
        "LogLevel warn",
        "ServerName 127.0.0.1",
        *(f"LoadModule {name} {MODULES / file}" for name, file in APACHE_MODULES.items()),
        *(["User www-data", "Group www-data"] if os.geteuid() == 0 else []),
        # Long-lived client connections, as from a browser; no access log (speed).
        "KeepAlive On",
        "MaxKeepAliveRequests 0",
        "KeepAliveTimeout 15",
        *(f'SetEnv {name} "{value}"' for name, value in _identity_variables().items()),
    ]
    for key, port in ports.items():
        lines += [
            f"Listen 127.0.0.1:{port}",
            f"<VirtualHost 127.0.0.1:{port}>",
            f"    ProxyPass / uwsgi://127.0.0.1:{backends[key]}/",
            "</VirtualHost>",
        ]
    return "\n".join(lines) + "\n"


def _uwsgi(target: Target, folder: Path, port: int) -> Server:
    program = Path(sys.executable).with_name("uwsgi")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SHIBWSGI_", "MOVIES_", "DEVFRONTEND_"))
    }
    env["MOVIES_DB"] = str(folder / "movies.sqlite3")
    argv = [
        str(program if program.exists() else "uwsgi"),
        "--master",
        f"--processes={UWSGI_PROCESSES}",
        f"--buffer-size={BUFFER_SIZE}",
        f"--socket=127.0.0.1:{port}",
        f"--module={target.module}",
        f"--chdir={ROOT}",
        f"--pythonpath={ROOT}",
        f"--home={sys.prefix}",
        "--need-app",
        "--single-interpreter",
        "--disable-logging",
        "--die-on-term",
    ]
    return start(
        f"uwsgi {target.key}",
        pinned(argv, SERVER_CPU),
        log=folder / f"uwsgi-{target.key}.log",
        env=env,
        cwd=folder,
    )


def _check(target: Target, port: int) -> None:
    """One request: the target must answer 200 as the user, else the numbers would mean nothing."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        connection.request("GET", PATH)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"{target.label}: HTTP {response.status}: {body[:300]!r}")
    if target.key == "movie_app":
        me = json.loads(body)
        if (me.get("user"), me["attributes"].get("name"), len(me["attributes"].get("groups", ()))) != (
            USER,
            [DISPLAY_NAME],
            GROUP_COUNT,
        ):
            raise RuntimeError(f"{target.label}: unexpected identity {me!r}")
    elif body != b"ok":
        raise RuntimeError(f"{target.label}: unexpected body {body[:300]!r}")


_WRK_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH %d %d %d %d %d\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


class Driver:
    """wrk when available (installed with apt-get when root), else ApacheBench (ab)."""

    def __init__(self, folder: Path, *, connections: int, threads: int) -> None:
        self.connections = connections
        self.threads = threads
        wrk = install_if_root("wrk", "wrk")
        ab = find_program("ab")
        if wrk is not None:
            self.tool, self.program = "wrk", wrk
            self.script = folder / "report.lua"
            self.script.write_text(_WRK_SCRIPT)
        elif ab is not None:
            self.tool, self.program = "ab", ab
        else:
            raise LookupError("no load generator: install wrk (or apache2-utils for ab)")
        version = _first_line([self.program, "-v" if self.tool == "wrk" else "-V"])
        match = re.search(r"(?:wrk|Version) (\S+)", version)
        self.version = match.group(1).removeprefix("debian/").rstrip(",") if match else version

    def describe(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "version": self.version,
            "connections": self.connections,
            "threads": self.threads if self.tool == "wrk" else 1,
            "keep_alive": True,
        }

    def load(self, url: str, duration: float, *, target: str, round_number: int) -> Load:
        seconds = max(1, round_up(duration))
        if self.tool == "wrk":
            argv = [self.program, f"-t{self.threads}", f"-c{self.connections}", f"-d{seconds}s"]
            output = _output(pinned([*argv, "-s", str(self.script), url], LOAD_CPU), timeout=seconds + 60)
            match = re.search(r"^BENCH (\d+) (\d+) (\d+) (\d+) (\d+)$", output, re.MULTILINE)
            if match is None:
                raise RuntimeError(f"unexpected wrk output:\n{output}")
            requests, micros, p50, p99, errors = map(int, match.groups())
            elapsed = micros / 1e6
            return Load(
                target, round_number, requests, elapsed, requests / elapsed, p50 / 1e3, p99 / 1e3, errors
            )
        argv = [self.program, "-q", "-k", "-c", str(self.connections), "-t", str(seconds), "-n", "100000000"]
        output = _output(pinned([*argv, url], LOAD_CPU), timeout=seconds + 60)
        numbers = {
            name: float(_search(pattern, output))
            for name, pattern in {
                "requests": r"Complete requests:\s+(\d+)",
                "seconds": r"Time taken for tests:\s+([\d.]+)",
                "failed": r"Failed requests:\s+(\d+)",
                "p50": r"^\s+50%\s+(\d+)",
                "p99": r"^\s+99%\s+(\d+)",
            }.items()
        }
        non_2xx = re.search(r"Non-2xx responses:\s+(\d+)", output)
        errors = int(numbers["failed"]) + (int(non_2xx.group(1)) if non_2xx else 0)
        requests = int(numbers["requests"])
        return Load(
            target,
            round_number,
            requests,
            numbers["seconds"],
            requests / numbers["seconds"],
            numbers["p50"],
            numbers["p99"],
            errors,
        )


def round_up(value: float) -> int:
    return int(-(-value // 1))


def _search(pattern: str, text: str) -> str:
    match = re.search(pattern, text, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"{pattern!r} not in the load generator's output:\n{text}")
    return match.group(1)


def _output(argv: list[str], *, timeout: float) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _first_line(argv: list[str]) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        text = (done.stdout + done.stderr).strip()
        return text.splitlines()[0] if text else ""
    return ""


def _suspicious(server_log: Path) -> list[str]:
    """Log lines that would make the numbers suspect (dropped requests, errors)."""
    try:
        lines = server_log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    pattern = re.compile(
        r"invalid request block size|AH\d+.*(error|fail)|\[(error|crit|alert|emerg)\]|Traceback"
    )
    return [line for line in lines if pattern.search(line)][:20]


def _missing(apache: str | None) -> str | None:
    if apache is None:
        return "skipped: apache2 not installed"
    absent = [file for file in APACHE_MODULES.values() if not (MODULES / file).exists()]
    return f"skipped: Apache modules missing: {', '.join(absent)}" if absent else None


def run(
    folder: Path,
    *,
    duration: float,
    rounds: int,
    warmup: float,
    connections: int,
    threads: int,
    progress: Callable[[str], None] | None = None,
    profile_seconds: float = 0.0,
) -> dict[str, Any]:
    """Serve each target through Apache + uWSGI; load them in turn, ``rounds`` times.

    Then, with ``profile_seconds``, profile the workers of :data:`PROFILED` under
    the same load (:mod:`bench.workerprofile`): the result's ``profile``.
    """
    say = progress or (lambda message: None)
    apache = find_program("apache2")
    reason = _missing(apache)
    if reason is not None or apache is None:
        return {"skipped": reason}
    try:
        driver = Driver(folder, connections=connections, threads=threads)
    except LookupError as exc:
        return {"skipped": f"skipped: {exc}"}
    folder.chmod(0o755)  # Apache's children run as www-data when started as root
    loads: list[Load] = []
    numbers = free_ports(2 * len(TARGETS))
    ports = {target.key: numbers.pop() for target in TARGETS}
    backends = {target.key: numbers.pop() for target in TARGETS}
    suspicious: dict[str, list[str]] = {}
    profiles: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        servers: list[Server] = []
        for target in TARGETS:
            server = _uwsgi(target, folder, backends[target.key])
            stack.callback(server.stop)
            servers.append(server)
        for target, server in zip(TARGETS, servers, strict=True):
            wait_for_port(backends[target.key], server=server, timeout=60)
        conf = folder / "httpd.conf"
        conf.write_text(_apache_conf(folder, ports, backends))
        httpd = start(
            "apache2",
            pinned([apache, "-d", str(folder), "-f", str(conf), "-DFOREGROUND"], SERVER_CPU),
            log=folder / "apache.out",
        )
        stack.callback(httpd.stop)
        for port in ports.values():
            wait_for_port(port, server=httpd)
        for target, server in zip(TARGETS, servers, strict=True):
            try:
                _check(target, ports[target.key])
            except (OSError, RuntimeError, ValueError, KeyError) as exc:
                apache_log = Server("apache error.log", httpd.process, folder / "error.log")
                raise RuntimeError(
                    f"{exc}\n--- apache error.log ---\n{apache_log.log_tail()}\n"
                    f"--- {server.name} ---\n{server.log_tail()}"
                ) from exc
            say(f"full stack: warming up {target.label}")
            driver.load(
                f"http://127.0.0.1:{ports[target.key]}{PATH}", warmup, target=target.key, round_number=-1
            )
        for index in range(rounds):
            # Rotate the order each round: no target always runs first (or last).
            order = TARGETS[index % len(TARGETS) :] + TARGETS[: index % len(TARGETS)]
            for target, server in ((target, servers[TARGETS.index(target)]) for target in order):
                url = f"http://127.0.0.1:{ports[target.key]}{PATH}"
                pids = process_tree(server.process.pid)
                before = cpu_seconds(pids)
                result = driver.load(url, duration, target=target.key, round_number=index)
                after = cpu_seconds(pids)
                if before is not None and after is not None and result.requests:
                    result = replace(result, uwsgi_cpu_us=1e6 * (after - before) / result.requests)
                say(
                    f"full stack round {index + 1}/{rounds}: {target.label}: {result.requests_per_second:.0f} req/s"
                )
                loads.append(result)
        for target, server in zip(TARGETS, servers, strict=True):
            if profile_seconds > 0 and target.key in PROFILED:
                say(f"full stack: profiling the workers of {target.label}")
                url = f"http://127.0.0.1:{ports[target.key]}{PATH}"
                profiles[target.key] = profile(
                    target.key,
                    server.process.pid,
                    functools.partial(_requests_served, driver, url, target.key),
                    seconds=profile_seconds,
                    folder=folder,
                    cpu=LOAD_CPU,
                )
        for server in [*servers, httpd]:
            lines = _suspicious(server.log)
            if lines:
                suspicious[server.name] = lines
        lines = _suspicious(folder / "error.log")
        if lines:
            suspicious["apache error.log"] = lines
    summary = _summarise(loads, driver, apache, duration, rounds, suspicious)
    if profiles:
        summary["profile"] = profiles
    return summary


def _requests_served(driver: Driver, url: str, key: str, seconds: float) -> int:
    """One load run outside the rounds (profiling): the requests it served."""
    return driver.load(url, seconds, target=key, round_number=-2).requests


def _median_or_none(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None


def _summarise(
    loads: list[Load],
    driver: Driver,
    apache: str,
    duration: float,
    rounds: int,
    suspicious: dict[str, list[str]],
) -> dict[str, Any]:
    targets: dict[str, Any] = {}
    for target in TARGETS:
        runs = [load for load in loads if load.target == target.key]
        targets[target.key] = {
            "label": target.label,
            "module": target.module,
            "runs": [asdict(load) for load in runs],
            "requests_per_second": statistics.median(load.requests_per_second for load in runs),
            "p50_ms": statistics.median(load.p50_ms for load in runs),
            "p99_ms": statistics.median(load.p99_ms for load in runs),
            "errors": sum(load.errors for load in runs),
            "uwsgi_cpu_us_per_request": _median_or_none([load.uwsgi_cpu_us for load in runs]),
        }
    bare = targets["bare"]["requests_per_second"]
    ratios: dict[str, Any] = {}
    for key in (target.key for target in TARGETS if target.key != "bare"):
        per_round = [
            mine.requests_per_second / theirs.requests_per_second
            for mine, theirs in zip(
                (load for load in loads if load.target == key),
                (load for load in loads if load.target == "bare"),
                strict=True,
            )
        ]
        q1, _, q3 = (
            statistics.quantiles(per_round, n=4, method="inclusive")
            if len(per_round) > 1
            else [per_round[0]] * 3
        )
        ratios[key] = {
            "ratio_of_medians": targets[key]["requests_per_second"] / bare,
            "median_per_round": statistics.median(per_round),
            "q1_per_round": q1,
            "q3_per_round": q3,
            "per_round": per_round,
        }
    return {
        "transport": "plain HTTP/1.1 with keep-alive on 127.0.0.1 (no TLS)",
        "apache": _first_line([apache, "-v"]).removeprefix("Server version: "),
        "apache_modules": sorted(APACHE_MODULES),
        "uwsgi": {
            "version": _first_line([str(Path(sys.executable).with_name("uwsgi")), "--version"]),
            "processes": UWSGI_PROCESSES,
            "buffer_size": BUFFER_SIZE,
            "socket": "tcp 127.0.0.1",
        },
        "driver": driver.describe(),
        "pinning": {
            "load_generator": pinned(["load"], LOAD_CPU)[:-1] or "not pinned",
            "servers": pinned(["servers"], SERVER_CPU)[:-1] or "not pinned",
        },
        "path": PATH,
        "duration_seconds": duration,
        "rounds": rounds,
        "identity_variables": _identity_variables(),
        "targets": targets,
        "throughput_ratios": ratios,
        "suspicious_log_lines": suspicious,
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.fullstack``: this section alone, its ratios printed (JSON with ``--json``)."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(prog="python -m bench.fullstack", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per load run (3)")
    parser.add_argument("--rounds", type=int, default=10, help="rounds over all targets (10)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections (16)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    parser.add_argument(
        "--profile-seconds", type=float, default=0.0, help="then profile the workers this long (0: no)"
    )
    parser.add_argument("--json", action="store_true", help="print every figure as JSON")
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="shibwsgi-fullstack-") as temporary:
        results = run(
            Path(temporary),
            duration=options.duration,
            rounds=options.rounds,
            warmup=1.0,
            connections=options.connections,
            threads=options.threads,
            progress=lambda message: print(f"[bench] {message}", file=sys.stderr, flush=True),
            profile_seconds=options.profile_seconds,
        )
    if options.json or "skipped" in results:
        print(json.dumps(results, indent=2))
        return 0
    for key, entry in results["targets"].items():
        line = f"{entry['label']}: {entry['requests_per_second']:.0f} req/s"
        if entry["uwsgi_cpu_us_per_request"] is not None:
            line += f", uWSGI CPU {entry['uwsgi_cpu_us_per_request']:.1f} us/request"
        ratio = results["throughput_ratios"].get(key)
        if ratio:
            rounds = sorted(100 * value for value in ratio["per_round"])
            line += (
                f", {100 * ratio['median_per_round']:.1f} % of bare (middle half "
                f"{100 * ratio['q1_per_round']:.1f}-{100 * ratio['q3_per_round']:.1f}, "
                f"rounds {rounds[0]:.1f}-{rounds[-1]:.1f})"
            )
        print(line)
    if "profile" in results:
        print(render(results["profile"], {key: entry["label"] for key, entry in results["targets"].items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
