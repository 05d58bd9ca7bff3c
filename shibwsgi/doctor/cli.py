"""``python -m shibwsgi doctor``: read the deployment files and settings, name each pitfall."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..settings import PREFIX
from .apache import read_apache
from .apache_checks import check_apache
from .findings import ERROR, WARNING, Finding, Location
from .nginx import read_nginx
from .nginx_checks import check_nginx
from .servers import ask_apache, ask_nginx
from .settings import AppSettings, read_settings
from .uwsgi import Option, read_uwsgi
from .uwsgi_checks import check_socket_variable, check_uwsgi

__all__ = ["diagnose", "main"]


def diagnose(
    *,
    apache: Sequence[str | Path] = (),
    uwsgi: str | Path | None = None,
    nginx: Sequence[str | Path] = (),
    environ: Mapping[str, str] | None = None,
    defines: Mapping[str, str] | None = None,
    servers: bool = False,
) -> tuple[list[Finding], AppSettings | None]:
    """Every finding for these files; ``environ``: the environment whose settings count (``--env``).

    ``servers``: also ask the installed apache2/nginx whether they accept the files.
    """
    findings: list[Finding] = []
    options: list[Option] | None = None
    if uwsgi is not None:
        options, problems = read_uwsgi(uwsgi)
        findings += problems
    settings, where = _settings(environ or {}, options or [])
    app, problems = read_settings(settings, where) if settings else (None, [])
    findings += problems
    if uwsgi is not None and options is not None:
        findings += check_uwsgi(options, str(uwsgi), app)
    if environ is not None:
        findings += check_socket_variable(environ)
    for path in apache:
        directives, problems = read_apache(path, defines=defines)
        findings += problems + check_apache(directives, app)
        if servers and any(d.name == "loadmodule" and d.active for d in directives):
            findings += ask_apache(path, defines or {})
    for path in nginx:
        root, problems = read_nginx(path)
        findings += problems + check_nginx(root, app)
        if servers and any(block.name == "events" for block in root.children):
            findings += ask_nginx(path)
    unique = dict.fromkeys(findings)  # an included file may be read twice
    return sorted(unique, key=lambda f: (f.severity != ERROR, f.where.file, f.where.line)), app


def _settings(
    environ: Mapping[str, str], options: list[Option]
) -> tuple[dict[str, str], dict[str, Location]]:
    """SHIBWSGI_* from the environment, then the ini's ``env =`` lines (which uWSGI applies last)."""
    settings = {k: v for k, v in environ.items() if k.startswith(PREFIX)}
    where = {k: Location("environment " + k) for k in settings}
    for option in options:
        name, equals, value = option.value.partition("=")
        name, value = name.strip(), value.strip()
        if option.key == "env" and equals and name.startswith(PREFIX):
            settings[name] = value
            where[name] = option.where
    return settings, where


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shibwsgi doctor",
        description="Find the classic mistakes in a shibwsgi deployment: Apache, uWSGI and nginx "
        "files and the SHIBWSGI_* settings. Exit status 1 when there are errors.",
    )
    parser.add_argument(
        "--apache",
        action="append",
        default=[],
        metavar="FILE",
        help="an Apache config (Includes are followed)",
    )
    parser.add_argument(
        "--uwsgi", metavar="FILE", help="the uwsgi ini (its env = SHIBWSGI_... lines count as settings)"
    )
    parser.add_argument(
        "--nginx", action="append", default=[], metavar="FILE", help="an nginx config (rendered)"
    )
    parser.add_argument(
        "--env", action="store_true", help="also read SHIBWSGI_* (and UWSGI_SOCKET) from this environment"
    )
    parser.add_argument(
        "-D",
        "--define",
        action="append",
        default=[],
        metavar="NAME[=VALUE]",
        help="as apache2 -D, for <IfDefine>",
    )
    parser.add_argument(
        "--no-servers",
        action="store_true",
        help="do not ask the installed apache2/nginx to test the files (apache2 -t, nginx -t)",
    )
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    args = parser.parse_args(argv)
    if not (args.apache or args.uwsgi or args.nginx or args.env):
        parser.error("nothing to check: give --apache, --uwsgi, --nginx and/or --env")
    defines = dict(item.partition("=")[::2] for item in args.define)
    findings, app = diagnose(
        apache=args.apache,
        uwsgi=args.uwsgi,
        nginx=args.nginx,
        environ=os.environ if args.env else None,
        defines=defines,
        servers=not args.no_servers,
    )
    errors = sum(f.severity == ERROR for f in findings)
    warnings = sum(f.severity == WARNING for f in findings)
    if args.json:
        json.dump(
            {
                "findings": [f.to_dict() for f in findings],
                "errors": errors,
                "warnings": warnings,
                "settings_checked": app is not None,
            },
            sys.stdout,
            indent=2,
        )
        sys.stdout.write("\n")
    else:
        for finding in findings:
            print(finding)
        scope = ""
        if any(f.pitfall == "invalid-setting" for f in findings):
            scope = " (the SHIBWSGI_* settings are invalid: checks against the app's settings skipped)"
        elif app is None:
            scope = " (no SHIBWSGI_* settings given: checks against the app's settings skipped; use --env or env = lines)"
        print(f"{errors} error(s), {warnings} warning(s){scope}")
    return 1 if errors else 0
