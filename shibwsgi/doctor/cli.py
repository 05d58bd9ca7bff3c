"""``python -m shibwsgi doctor``: read the deployment files and settings, name each pitfall."""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import re
import ssl
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from ..probe import DEFAULT_PROBE_PATH
from ..settings import PREFIX
from .apache import read_apache
from .apache_checks import check_apache
from .findings import ERROR, WARNING, Finding, Location
from .nginx import read_nginx
from .nginx_checks import check_nginx
from .probe import probe
from .probe_http import Site
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


def _arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shibwsgi doctor",
        description="Find the classic mistakes in a shibwsgi deployment: Apache, uWSGI and nginx "
        "files and the SHIBWSGI_* settings; with --probe, send hostile requests through the "
        "deployed front end and report what reached the app. Exit status 1 when there are errors.",
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
    probing = parser.add_argument_group("live probe")
    probing.add_argument("--probe", metavar="URL", help="the deployed site, e.g. https://app.example.org/")
    probing.add_argument(
        "--token", help="the app's SHIBWSGI_PROBE_TOKEN (default: that variable in this environment)"
    )
    probing.add_argument(
        "--profile", help="the app's profile, when no settings are given (--env, --uwsgi); default shibboleth"
    )
    probing.add_argument(
        "--protected", metavar="PATH", help="a path the front end protects (default: the app's login path)"
    )
    probing.add_argument("--public", metavar="PATH", default="/", help="a public path (default /)")
    probing.add_argument(
        "--cookie",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a session cookie of the front end from a signed-in browser (repeatable): probe signed in",
    )
    probing.add_argument("--cookie-file", metavar="FILE", help="cookies as --cookie, one NAME=VALUE a line")
    probing.add_argument("--cafile", metavar="FILE", help="CA certificates to verify the site with")
    probing.add_argument("--insecure", action="store_true", help="do not verify the site's certificate")
    probing.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS", help="per request (10)")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _arguments()
    args = parser.parse_args(argv)
    if not (args.apache or args.uwsgi or args.nginx or args.env or args.probe):
        parser.error("nothing to check: give --apache, --uwsgi, --nginx, --env and/or --probe URL")
    defines = dict(item.partition("=")[::2] for item in args.define)
    findings, app = diagnose(
        apache=args.apache,
        uwsgi=args.uwsgi,
        nginx=args.nginx,
        environ=os.environ if args.env else None,
        defines=defines,
        servers=not args.no_servers,
    )
    if args.probe:
        findings += _probe(parser, args, app)
    return _report(findings, app, as_json=args.json)


def _probe(
    parser: argparse.ArgumentParser, args: argparse.Namespace, app: AppSettings | None
) -> list[Finding]:
    token = args.token or os.environ.get(PREFIX + "PROBE_TOKEN")
    if not token:
        parser.error("--probe needs --token (the app's SHIBWSGI_PROBE_TOKEN)")
    if not _plain(token):
        parser.error("--token must be printable ASCII, as the app's SHIBWSGI_PROBE_TOKEN is")
    problem = _url_problem(args.probe)
    if problem:
        parser.error(f"--probe needs an http:// or https:// URL with a host: {problem}")
    for option, path in (("--protected", args.protected), ("--public", args.public)):
        if path is not None and not (path.startswith("/") and _plain(path) and " " not in path):
            parser.error(
                f"{option} must be a path starting with '/', printable ASCII without spaces (percent-encode the rest)"
            )
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        parser.error("--timeout must be a number of seconds above 0")
    cookies = _cookies(parser, args.cookie, args.cookie_file)
    if app is None:
        app, problems = read_settings({PREFIX + "PROFILE": args.profile or "shibboleth"}, {})
        if app is None:
            return problems
    try:
        context = ssl.create_default_context(cafile=args.cafile)
    except (OSError, ssl.SSLError) as exc:
        parser.error(f"--cafile {args.cafile}: cannot load CA certificates from it ({exc})")
    if args.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return probe(
        Site(args.probe, timeout=args.timeout, context=context),
        token,
        names=app.variable_names,
        probe_path=app.probe_path or DEFAULT_PROBE_PATH,
        protected=args.protected or app.login_path or "/login",
        public=args.public,
        cookies=cookies,
    )


def _cookies(parser: argparse.ArgumentParser, given: list[str], file: str | None) -> list[tuple[str, str]]:
    """The ``--cookie`` and ``--cookie-file`` cookies as (name, value), each checked."""
    items = [("--cookie", item) for item in given]
    if file is not None:
        try:
            with open(file, encoding="utf-8") as lines:
                text = lines.read(64 * 1024)
        except (OSError, UnicodeDecodeError) as exc:
            parser.error(f"--cookie-file {file}: cannot read it ({exc})")
        items += [
            (f"--cookie-file {file}", line.strip())
            for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
    cookies = []
    for option, item in items:
        name, equals, value = item.partition("=")
        if not (equals and _COOKIE_NAME.fullmatch(name) and _COOKIE_VALUE.fullmatch(value)):
            parser.error(
                f"{option}: give NAME=VALUE, the name a cookie name, the value printable ASCII without spaces, quotes, ',' or ';'"
            )
        cookies.append((name, value))
    return cookies


#: RFC 6265: a cookie name is a token; a value, cookie-octets.
_COOKIE_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_COOKIE_VALUE = re.compile(r"[!#-+\--:<-\[\]-~]*")


def _plain(text: str) -> bool:
    """Printable ASCII: what goes into a request line or header as it is."""
    return text.isascii() and text.isprintable()


def _url_problem(url: str) -> str:
    """Why ``url`` is no site to probe, or ``""``."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError as exc:
        return str(exc)
    if parts.scheme not in ("http", "https"):
        return f"scheme {parts.scheme or 'missing'}"
    if not parts.hostname:
        return "no host"
    if not _plain(url):
        return "not printable ASCII (percent-encode the path, write the host in its xn-- form)"
    return ""


def _report(findings: list[Finding], app: AppSettings | None, *, as_json: bool) -> int:
    errors = sum(f.severity == ERROR for f in findings)
    warnings = sum(f.severity == WARNING for f in findings)
    if isinstance(sys.stdout, io.TextIOWrapper):
        # A file name or setting that is not valid text (kept as surrogates) is shown escaped.
        sys.stdout.reconfigure(errors="backslashreplace")
    if as_json:
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
