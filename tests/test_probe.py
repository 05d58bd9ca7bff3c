"""The probe endpoint (app side) and ``shibwsgi doctor --probe`` (client side), over real local HTTP."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from support import in_thread
from webtest import TestApp

from shibwsgi import ConfigError, SSOMiddleware
from shibwsgi.doctor import ERROR, INFO, WARNING, Finding, main
from shibwsgi.doctor.probe import probe, spellings
from shibwsgi.doctor.probe_http import Site
from shibwsgi.probe import DEFAULT_PROBE_PATH, MARKER, REACHED_HEADER, TOKEN_HEADER, marker_id

if TYPE_CHECKING:
    from pathlib import Path

    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

TOKEN = "a-probe-token-of-some-length"
HEADERS = {"profile": "oauth2-proxy", "channel": "headers", "trusted_proxies": ["127.0.0.1"]}


def plain_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"the app"]


def wrapped(**options: Any) -> TestApp:
    return TestApp(SSOMiddleware(plain_app, **options))


# --- app side -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "headers"),
    [
        pytest.param({}, {TOKEN_HEADER: TOKEN}, id="no probe token configured: the path is the app's"),
        pytest.param({"probe_token": TOKEN}, {}, id="request without the token"),
        pytest.param(
            {"probe_token": TOKEN}, {TOKEN_HEADER: TOKEN[:-1] + "x"}, id="request with a wrong token"
        ),
        pytest.param({"probe_token": TOKEN}, {TOKEN_HEADER: TOKEN + "x"}, id="request with a longer token"),
    ],
)
def test_probe_path_does_not_exist_without_its_token(
    options: dict[str, Any], headers: dict[str, str]
) -> None:
    response = wrapped(**options).get(DEFAULT_PROBE_PATH, headers=headers)
    assert response.text == "the app"


def test_probe_reports_where_markers_arrived_and_what_the_gate_removed() -> None:
    app = wrapped(probe_token=TOKEN, **HEADERS)
    response = app.get(
        DEFAULT_PROBE_PATH,
        headers={
            TOKEN_HEADER: TOKEN,
            "X-Forwarded-User": MARKER + marker_id(TOKEN, 1),
            "X-Other": MARKER + marker_id(TOKEN, 2),
        },
        extra_environ={"REMOTE_ADDR": "192.0.2.9"},  # not a trusted proxy: the gate scrubs
    )
    report = response.json
    markers = {m["key"]: m for m in report["markers"]}
    assert markers["HTTP_X_FORWARDED_USER"] == {
        "key": "HTTP_X_FORWARDED_USER",
        "ids": [marker_id(TOKEN, 1)],
        "read_by_app": True,
        "removed_by_gate": True,
    }
    assert markers["HTTP_X_OTHER"]["read_by_app"] is False and not markers["HTTP_X_OTHER"]["removed_by_gate"]
    assert report["channel"] == "headers" and report["peer"] == "192.0.2.9"
    assert report["environ"]["keys"] > 0 and report["environ"]["bytes"] > 0
    assert response.headers["Cache-Control"] == "no-store"


def test_probe_never_shows_an_identity_value_or_a_cookie() -> None:
    app = wrapped(probe_token=TOKEN, **HEADERS)
    response = app.get(
        DEFAULT_PROBE_PATH,
        headers={
            TOKEN_HEADER: TOKEN,
            "X-Forwarded-User": "real-user@example.org",
            "Cookie": "s=cookie-secret",
        },
        extra_environ={"REMOTE_ADDR": "127.0.0.1"},
    )
    assert (
        "real-user" not in response.text
        and "cookie-secret" not in response.text
        and TOKEN not in response.text
    )
    assert response.json["identity"] == {
        "present": True,
        "refused": None,
        "variables": {"HTTP_X_FORWARDED_USER": 21},
        "headers": [],  # the headers channel: identity headers are its design, not a twin
    }


SHIB_NAMES = ["eppn", "REMOTE_USER", "Shib-Session-ID"]
SIGNED_IN = {"eppn": "someone@example.org", "Shib-Session-ID": "_0123456789abcdef"}


@pytest.mark.parametrize(
    ("options", "extra", "expected"),
    [
        pytest.param(
            {},
            {**SIGNED_IN, "HTTP_EPPN": "someone@example.org", "HTTP_SHIB_SESSION_ID": "_0123456789abcdef"},
            ["HTTP_EPPN", "HTTP_SHIB_SESSION_ID"],
            id="ShibUseHeaders On: the variables arrive as headers too",
        ),
        pytest.param({}, SIGNED_IN, [], id="ShibUseHeaders Off: variables only"),
        pytest.param(
            {},
            {**SIGNED_IN, "HTTP_EPPN": MARKER + marker_id(TOKEN, 1)},
            [],
            id="the probe's own marker header is the client's, not a twin",
        ),
        pytest.param(
            HEADERS,
            {"HTTP_X_FORWARDED_USER": "someone@example.org", "REMOTE_ADDR": "127.0.0.1"},
            [],
            id="headers channel: identity headers are its design",
        ),
    ],
)
def test_probe_names_identity_variables_that_also_arrived_as_headers(
    options: dict[str, Any], extra: dict[str, str], expected: list[str]
) -> None:
    response = wrapped(probe_token=TOKEN, **options).get(
        DEFAULT_PROBE_PATH,
        headers={TOKEN_HEADER: TOKEN, "Cookie": "_shibsession_x=cookie-secret; eppn=other"},
        extra_environ=extra,
    )
    assert response.json["identity"]["headers"] == expected
    assert "someone" not in response.text and "0123456789abcdef" not in response.text
    assert "cookie-secret" not in response.text


def test_probe_token_does_not_reach_the_app_or_other_paths() -> None:
    seen: dict[str, Any] = {}

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        seen.update(environ)
        return plain_app(environ, start_response)

    response = TestApp(SSOMiddleware(app, probe_token=TOKEN)).get("/other", headers={TOKEN_HEADER: TOKEN})
    assert "shibwsgi.probe.arrived" not in seen and TOKEN not in seen.values()
    assert response.headers[REACHED_HEADER] == "reached"  # the probe learns /other is not protected
    assert REACHED_HEADER not in TestApp(SSOMiddleware(app, probe_token=TOKEN)).get("/other").headers


@pytest.mark.parametrize(
    ("options", "setting"),
    [
        pytest.param({"probe_path": "/probe"}, "probe_path", id="probe path without a token"),
        pytest.param({"probe_token": "short"}, "probe_token", id="token too short"),
        pytest.param({"probe_token": TOKEN, "probe_path": "no-slash"}, "probe_path", id="not a path"),
        pytest.param(
            {"probe_token": TOKEN, "whoami_path": DEFAULT_PROBE_PATH}, "probe_path", id="same path as whoami"
        ),
    ],
)
def test_probe_options_are_validated(options: dict[str, Any], setting: str) -> None:
    with pytest.raises(ConfigError) as raised:
        SSOMiddleware(plain_app, **options)
    assert raised.value.setting == setting


def test_probe_from_settings() -> None:
    middleware = SSOMiddleware.from_mapping(
        plain_app, {"SHIBWSGI_PROBE_TOKEN": TOKEN, "SHIBWSGI_PROBE_PATH": "/_probe"}
    )
    assert TestApp(middleware).get("/_probe", headers={TOKEN_HEADER: TOKEN}).json["probe"] == "shibwsgi"
    assert TOKEN not in repr(middleware.probe)


# --- client side --------------------------------------------------------------------------


def test_markers_cover_every_spelling() -> None:
    headers, sent = spellings(["X-Forwarded-User"], TOKEN)
    hows = {s.how for s in sent.values() if s.variable == "X-Forwarded-User"}
    assert hows == {
        "as named",
        "dashes",
        "underscores",
        "lower case",
        "upper case",
        "repeated",
        "comma-joined",
    }
    names = [name for name, _ in headers]
    assert "X_Forwarded_User" in names and names.count("X-Forwarded-User") >= 3
    assert any(", " in value for _, value in headers)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serving(app: WSGIApplication) -> Iterator[str]:
    server: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    with in_thread(server):
        yield f"http://127.0.0.1:{server.server_port}/"


def login_required(app: WSGIApplication) -> WSGIApplication:
    """A front end's protection of /login: anonymous requests go to the identity provider."""

    def front(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/login":
            start_response("302 Found", [("Location", "https://idp.example.org/")])
            return [b""]
        return app(environ, start_response)

    return front


def over_budget_fails(app: WSGIApplication, budget: int = 12000) -> WSGIApplication:
    """A front end that accepts large requests but cannot pass them on: a 502."""

    def front(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        size = sum(len(k) + len(v) for k, v in environ.items() if k.startswith("HTTP_"))
        if size > budget:
            start_response("502 Bad Gateway", [("Content-Type", "text/plain")])
            return [b"upstream failed"]
        return app(environ, start_response)

    return front


def run_probe(
    app: WSGIApplication,
    names: Iterable[str],
    protected: str | None = "/login",
    cookies: Iterable[tuple[str, str]] = (),
) -> list[Finding]:
    with serving(app) as url:
        return probe(
            Site(url),
            TOKEN,
            names=names,
            probe_path=DEFAULT_PROBE_PATH,
            protected=protected,
            cookies=list(cookies),
        )


def ids(findings: list[Finding], severity: str | None = None) -> set[str]:
    return {f.pitfall for f in findings if severity is None or f.severity == severity}


Case = Callable[[], "WSGIApplication"]


@pytest.mark.parametrize(
    ("build", "names", "errors"),
    [
        pytest.param(
            lambda: login_required(SSOMiddleware(plain_app, probe_token=TOKEN, **HEADERS)),
            ["X-Forwarded-User", "X-Auth-Request-User"],
            {"probe-client-header-passed-gate"},
            id="header profile behind a proxy that does not strip: the client's header is the identity",
        ),
        pytest.param(
            lambda: login_required(SSOMiddleware(plain_app, probe_token=TOKEN)),
            ["eppn", "REMOTE_USER", "Shib-Session-ID"],
            set(),
            id="environ channel: client headers are only HTTP_ lookalikes",
        ),
        pytest.param(
            lambda: SSOMiddleware(plain_app, probe_token=TOKEN, login_path=None),
            ["eppn"],
            {"probe-unprotected"},
            id="a protected path left open",
        ),
        pytest.param(
            lambda: SSOMiddleware(plain_app, probe_token=TOKEN),
            ["eppn"],
            {"probe-unprotected"},
            id="protected path left open, answered by the app's own redirect to the login",
        ),
        pytest.param(
            lambda: login_required(over_budget_fails(SSOMiddleware(plain_app, probe_token=TOKEN))),
            ["eppn"],
            {"probe-header-limit-500"},
            id="front end accepts what it cannot pass on: 5xx beyond",
        ),
        pytest.param(
            lambda: login_required(plain_app),
            ["eppn"],
            {"probe-unreachable"},
            id="probe endpoint off",
        ),
    ],
)
def test_probe_finds(build: Case, names: list[str], errors: set[str]) -> None:
    findings = run_probe(build(), names)
    assert ids(findings, ERROR) == errors, [str(f) for f in findings]


def signed_in_front(app: WSGIApplication, *, headers_too: bool) -> WSGIApplication:
    """mod_shib with a session cookie ``sso=ok``: the variables, and with ``ShibUseHeaders On`` headers too.

    With headers on, mod_shib answers a client's copy of one of its headers with a 500
    ("Attempt to spoof header"): the signed-in probe must go without markers to be seen.
    """

    def front(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if headers_too and any(
            environ.get(key, "").startswith(MARKER) for key in ("HTTP_EPPN", "HTTP_SHIB_SESSION_ID")
        ):
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"Attempt to spoof header"]
        if "sso=ok" in environ.get("HTTP_COOKIE", "").split("; "):
            environ.update(SIGNED_IN)
            if headers_too:  # mod_shib overwrites the client's own copy
                environ.update({"HTTP_EPPN": SIGNED_IN["eppn"], "HTTP_SHIB_SESSION_ID": "_0123456789abcdef"})
        return app(environ, start_response)

    return login_required(front)


@pytest.mark.parametrize(
    ("headers_too", "cookies", "errors", "infos"),
    [
        pytest.param(
            True,
            [("sso", "ok")],
            {"probe-unreachable", "probe-identity-in-headers"},
            set(),
            id="ShibUseHeaders On, signed in: named",
        ),
        pytest.param(False, [("sso", "ok")], set(), set(), id="ShibUseHeaders Off, signed in: clean"),
        pytest.param(
            False,
            [("sso", "expired")],
            set(),
            {"probe-cookie-not-signed-in"},
            id="cookie not accepted: said so",
        ),
        pytest.param(True, [], {"probe-unreachable"}, set(), id="anonymous: only the markers' 500, no cause"),
    ],
)
def test_signed_in_probe_finds_identity_sent_as_headers(
    headers_too: bool, cookies: list[tuple[str, str]], errors: set[str], infos: set[str]
) -> None:
    app = signed_in_front(SSOMiddleware(plain_app, probe_token=TOKEN), headers_too=headers_too)
    findings = run_probe(app, SHIB_NAMES, cookies=cookies)
    assert ids(findings, ERROR) == errors, [str(f) for f in findings]
    signed_in = {"probe-identity-in-headers", "probe-cookie-not-signed-in"}
    assert ids(findings, INFO) & signed_in == infos
    assert not any("someone" in f.problem or "0123456789abcdef" in f.problem for f in findings)


def test_probe_command_line_sends_the_cookies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = signed_in_front(SSOMiddleware(plain_app, probe_token=TOKEN), headers_too=True)
    cookies = tmp_path / "cookies"
    cookies.write_text("# from the browser\nsso=ok\n\n")
    for given in (["--cookie", "other=1", "--cookie", "sso=ok"], ["--cookie-file", str(cookies)]):
        with serving(app) as url:
            status = main(["--probe", url, "--token", TOKEN, "--json", *given])
        report = json.loads(capsys.readouterr().out)
        assert status == 1
        assert "probe-identity-in-headers" in {f["pitfall"] for f in report["findings"]}, given


@pytest.mark.parametrize(
    "cookie",
    [
        pytest.param("no-equals-sign", id="no value"),
        pytest.param("=value", id="no name"),
        pytest.param("a=b; c=d", id="two cookies in one"),
        pytest.param("a=b\r\nX-Injected: 1", id="a header injected"),
        pytest.param("a b=c", id="space in the name"),
    ],
)
def test_probe_command_line_refuses_a_malformed_cookie(
    cookie: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--probe", "http://127.0.0.1:9/", "--token", TOKEN, "--cookie", cookie])
    assert exited.value.code == 2 and "--cookie" in capsys.readouterr().err


def test_probe_reports_limits_and_plain_http() -> None:
    findings = run_probe(login_required(SSOMiddleware(plain_app, probe_token=TOKEN)), ["eppn"])
    assert {"probe-header-limit", "probe-environ-size"} <= ids(findings, INFO)
    assert "probe-plain-http" in ids(findings, WARNING)
    limits = [f.problem for f in findings if f.pitfall == "probe-header-limit"]
    assert any("header line" in p and "refused beyond with 431" in p for p in limits), limits


def test_probe_reports_cookie_flags() -> None:
    def cookie_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Set-Cookie", "session=abc; Path=/")])
        return [b""]

    findings = run_probe(login_required(SSOMiddleware(cookie_app, probe_token=TOKEN)), ["eppn"])
    flags = [f for f in findings if f.pitfall == "probe-cookie-flags"]
    assert flags and "HttpOnly" in flags[0].problem and "abc" not in flags[0].problem


def test_probe_command_line_json_and_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    app = login_required(SSOMiddleware(plain_app, probe_token=TOKEN, **HEADERS))
    with serving(app) as url:
        status = main(["--probe", url, "--token", TOKEN, "--profile", "oauth2-proxy", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert status == 1
    assert "probe-client-header-passed-gate" in {f["pitfall"] for f in report["findings"]}


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(MARKER + "S3cr3t", id="marker-shaped secret"),
        pytest.param(MARKER + "1.000000000000", id="a well-formed id with the wrong tag"),
        pytest.param(MARKER + marker_id("another-token-of-16+", 1), id="an id made with another token"),
    ],
)
def test_probe_never_echoes_a_marker_shaped_identity_or_cookie_value(value: str) -> None:
    app = wrapped(probe_token=TOKEN, **HEADERS)
    response = app.get(
        DEFAULT_PROBE_PATH,
        headers={
            TOKEN_HEADER: TOKEN,
            "X-Forwarded-User": value,
            "Cookie": f"s={MARKER}{marker_id(TOKEN, 3)}",
        },
        extra_environ={"REMOTE_ADDR": "192.0.2.9"},
    )
    assert response.json["markers"] == []
    assert value.removeprefix(MARKER) not in response.text


def test_probe_token_starting_with_a_dash_is_taken_in_the_equals_form(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """token_urlsafe() starts with '-' one time in 64: the printed commands use --token=VALUE."""
    status = main(["--probe", "http://127.0.0.1:9/", "--token=-" + TOKEN, "--timeout", "1", "--json"])
    assert status == 1  # the site is unreachable: a finding, not a usage error
    assert "probe-unreachable" in capsys.readouterr().out
