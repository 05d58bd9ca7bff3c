"""The uwsgi packet budget: client headers and the identity share 65535 bytes.

mod_proxy_uwsgi sends every client header (as ``HTTP_*``), the request line (path and query,
more than once) and the identity's variables in one uwsgi packet, whose size field has 16
bits; over it Apache answers 500 itself (AH10259). The shipped configs bound the client's
share: ``apache/header-budget.lua`` caps the total of the headers (431 past it), Apache's own
``LimitRequestFields``, ``LimitRequestFieldSize`` and ``LimitRequestLine`` the number of
lines and each line, so that an identity within the budget docs/deployment.md gives plus the
largest request Apache admits still fits, while ordinary big headers (a browser's 6 KB of
parent-domain cookies, an 8 KB Kerberos ``Authorization: Negotiate``) are served.

Through the shipped apache/openidc.conf (whole site) and uwsgi.ini, a real login at
oidc-provider-mock, and a stub app answering with its environ.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING
from unittest import mock

import pytest
from stack import (
    CONFIGS,
    TLS,
    Uwsgi,
    nginx_variables,
    running_fake_oauth2_proxy,
    running_nginx,
    running_uwsgi,
    self_signed_certificate,
    shared_directory,
    wait_for_log,
    watching,
)

from .oidc_provider import Provider, running_provider
from .test_oidc import ECHO_APP, Site, movie_site

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

pytestmark = pytest.mark.servers

#: The identity's share of the packet (docs/deployment.md, "The uwsgi packet budget").
IDENTITY_BUDGET = 24 * 1024
PACKET_MAX = 65535
#: Claims whose variables (three base64url copies of the groups) fill the identity budget.
BIG = {
    "sub": "big",
    "name": "Big Groups",
    "email": "big@example.org",
    "groups": [f"group-{n:05d}" for n in range(435)],
}
#: Claims past the identity budget (38.5 KB as they travel): served only to clients sending little.
HUGE = {
    "sub": "huge",
    "name": "Huge Groups",
    "email": "huge@example.org",
    "groups": [f"group-{n:05d}" for n in range(700)],
}
MODULE_COOKIE = "mod_auth_openidc_session"
Headers = list[tuple[str, str]]


@dataclass(frozen=True)
class Limits:
    """The shipped configs' limits on what a client sends."""

    fields: int  # LimitRequestFields: header lines, Host included
    field_size: int  # LimitRequestFieldSize: Apache admits lines of one byte more
    line: int  # LimitRequestLine: "GET <target> HTTP/1.1"
    headers: int  # header-budget.lua's BUDGET: the headers' total cost in the packet

    @classmethod
    def shipped(cls) -> Limits:
        text = (CONFIGS / "openidc.conf").read_text()
        (budget,) = re.findall(r"^local BUDGET = (\d+)$", (CONFIGS / "header-budget.lua").read_text(), re.M)

        def value(name: str) -> int:
            (found,) = re.findall(rf"^{name} (\d+)$", text, re.MULTILINE)
            return int(found)

        return cls(
            value("LimitRequestFields"),
            value("LimitRequestFieldSize"),
            value("LimitRequestLine"),
            int(budget),
        )

    @property
    def longest_field(self) -> int:
        return self.field_size + 1

    @property
    def longest_target(self) -> int:
        return self.line - len("GET  HTTP/1.1") + 1  # one byte more, as for fields


LIMITS = Limits.shipped()


def cost(headers: Sequence[tuple[str, str]]) -> int:
    """What the headers take in the packet, as header-budget.lua counts: ``HTTP_NAME`` + value + 4."""
    return sum(len(name) + len(value) + 9 for name, value in headers)


@pytest.fixture(scope="module")
def big_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, Provider]]:
    folder = tmp_path_factory.mktemp("budget")
    with (
        self_signed_certificate() as tls,
        running_provider(folder, [BIG, HUGE]) as provider,
        movie_site(folder, tls, provider, app_source=ECHO_APP, UWSGI_PROCESSES="1") as site,
    ):
        yield site, provider


@pytest.fixture(scope="module")
def session_cookie(big_site: tuple[Site, Provider]) -> str:
    """The module session of ``big``, logged in for real; its identity fills the budget."""
    site, _ = big_site
    with site.browser() as browser:
        environ = site.log_in(browser, "/", "big").json()
        cookie: str = browser.cookies[MODULE_COOKIE]
    identity = sum(
        4 + len(name) + len(value.encode("latin-1"))
        for name, value in environ.items()
        if name.startswith("OIDC_") or name in ("REMOTE_USER", "AUTH_TYPE")
    )
    assert IDENTITY_BUDGET - 1024 < identity <= IDENTITY_BUDGET, identity
    return cookie


@pytest.fixture(scope="module")
def huge_cookie(big_site: tuple[Site, Provider]) -> str:
    """The module session of ``huge``, whose identity is far over its budget."""
    site, _ = big_site
    with site.browser() as browser:
        environ = site.log_in(browser, "/", "huge").json()
        cookie: str = browser.cookies[MODULE_COOKIE]
    assert sum(len(value) for name, value in environ.items() if name.startswith("OIDC_")) > 36_000
    return cookie


def send(site: Site, tls: TLS, target: str, headers: Sequence[tuple[str, str]]) -> tuple[int, bytes]:
    """One request exactly as given: no header added (http.client adds none with these flags)."""
    port = int(site.url.rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=str(tls.cert))
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
    try:
        connection.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def signed_in(site: Site, cookie: str, extra_cookies: str = "") -> Headers:
    """Host and the module's session cookie (after ``extra_cookies``, as a browser may order them)."""
    return [
        ("Host", site.url.removeprefix("https://")),
        ("Cookie", f"{extra_cookies}{MODULE_COOKIE}={cookie}"),
    ]


def filled(headers: Headers, total: int, *, line: int) -> Headers:
    """``headers`` and padding headers of at most ``line`` bytes (``Name: value``) costing ``total`` in all."""
    headers = list(headers)
    while (room := total - cost(headers)) > 0:
        name = f"X-Pad-{len(headers):02d}"
        value_length = min(line - len(name) - 2, room - len(name) - 9)
        if value_length < 0:  # too little room for one more header: widen the last padding one
            last, value = headers[-1]
            headers[-1] = (last, value + "h" * room)
            break
        headers.append((name, "h" * value_length))
    assert cost(headers) == total, cost(headers)
    return headers


def largest_request(
    site: Site, cookie: str, *, total: int, line: int, target_length: int
) -> tuple[str, Headers]:
    """A request line of ``target_length`` and headers costing ``total``, lines of ``line`` bytes at most."""
    return "/" + "p" * (target_length - 1), filled(signed_in(site, cookie), total, line=line)


def packet_after(app: Uwsgi, seen: int) -> int:
    """The size of the packet uWSGI logs after the ``seen`` it had logged before."""
    wait_for_log(app.log, r"\{\d+ vars in \d+ bytes\}", count=seen + 1)
    return app.packet_sizes()[seen]


def no_ah10259(site: Site) -> bool:
    return "AH10259" not in (site.root / "error.log").read_text(errors="replace")


def test_largest_identity_and_largest_admitted_request_fit_the_packet(
    big_site: tuple[Site, Provider], session_cookie: str
) -> None:
    site, _ = big_site
    target, headers = largest_request(
        site,
        session_cookie,
        total=LIMITS.headers,
        line=LIMITS.longest_field,
        target_length=LIMITS.longest_target,
    )
    seen = site.uwsgi.settled_packet_count()
    status, body = send(site, site.tls, target, headers)
    assert status == 200, body[:500]
    assert b'"OIDC_CLAIM_groups"' in body
    assert f'"HTTP_{headers[-1][0].upper().replace("-", "_")}"'.encode() in body
    size = packet_after(site.uwsgi, seen)
    # Near the limit, so the budget is real: a little more identity or client would not fit.
    assert PACKET_MAX - 4096 < size <= PACKET_MAX, size


IDENTITY_OVER_THE_PACKET = b"Your sign-in carries too much information for this site"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param(0, 200, id="few headers: served"),
        pytest.param(16_384, 200, id="16 KB of headers: served"),
        pytest.param(28_000, 431, id="28 KB of headers: over the packet"),
        pytest.param(LIMITS.headers, 431, id="the whole header budget: over the packet"),
    ],
)
def test_identity_over_its_budget_gets_431_not_500_when_the_packet_would_not_fit(
    big_site: tuple[Site, Provider], huge_cookie: str, headers: int, status: int
) -> None:
    site, provider = big_site
    request = (
        filled(signed_in(site, huge_cookie), headers, line=LIMITS.longest_field)
        if headers
        else signed_in(site, huge_cookie)
    )
    seen = site.uwsgi.settled_packet_count()
    got, body = send(site, site.tls, "/", request)
    assert got == status, body[:500]
    assert no_ah10259(site)
    if status == 200:
        assert json.loads(body)["REMOTE_USER"] == f"huge@{provider.url}"
        return
    assert IDENTITY_OVER_THE_PACKET in body
    assert b"group-0" not in body  # no attribute value in the body
    assert site.uwsgi.settled_packet_count() == seen, "the request reached uWSGI"
    log = (site.root / "error.log").read_text(errors="replace")
    assert "packet budget: the uwsgi packet would take about" in log
    assert "Filter attributes at the SP/IdP" in log


def negotiate(line: int) -> tuple[str, str]:
    """A Kerberos SPNEGO header line of ``line`` bytes (a token with a large PAC)."""
    prefix = "Negotiate YII"
    return "Authorization", prefix + "A" * (line - len("Authorization: ") - len(prefix))


ORDINARY_BIG = [
    pytest.param("c=" + "v" * 6000 + "; ", [], id="6 KB of other apps' cookies"),
    pytest.param("", [negotiate(LIMITS.longest_field)], id="8 KB Kerberos Negotiate"),
    pytest.param("", [("Authorization", "Bearer " + "t" * 4096)], id="4 KB bearer token"),
    pytest.param(
        "; ".join(f"app{n}={'v' * 500}" for n in range(12)) + "; ",
        [negotiate(LIMITS.longest_field), ("Accept", "text/html," * 100), ("User-Agent", "u" * 500)],
        id="6 KB cookies and 8 KB Negotiate together",
    ),
]


@pytest.mark.parametrize(("cookies", "extra"), ORDINARY_BIG)
def test_ordinary_big_headers_are_served_as_the_right_user(
    big_site: tuple[Site, Provider], session_cookie: str, cookies: str, extra: Headers
) -> None:
    site, provider = big_site
    headers = signed_in(site, session_cookie, cookies) + extra
    status, body = send(site, site.tls, "/", headers)
    assert status == 200, body[:500]
    environ = json.loads(body)
    assert environ["REMOTE_USER"] == f"big@{provider.url}"
    assert len(environ["HTTP_COOKIE"]) >= len(cookies)


@pytest.mark.parametrize(
    "line", [pytest.param(LIMITS.longest_field, id="8 KB lines"), pytest.param(1024, id="1 KB lines")]
)
def test_one_byte_over_the_header_total_gets_431_with_a_clear_body(
    big_site: tuple[Site, Provider], session_cookie: str, line: int
) -> None:
    site, _ = big_site
    target, headers = largest_request(
        site, session_cookie, total=LIMITS.headers + 1, line=line, target_length=64
    )
    assert len(headers) <= LIMITS.fields
    seen = site.uwsgi.settled_packet_count()
    status, body = send(site, site.tls, target, headers)
    assert status == 431, body[:500]
    assert f"headers take {LIMITS.headers + 1} bytes".encode() in body
    assert f"at most {LIMITS.headers} in all".encode() in body
    assert site.uwsgi.settled_packet_count() == seen, "the request reached uWSGI"
    assert no_ah10259(site)


OVER_LIMITS = [
    pytest.param({"fields": LIMITS.fields + 1}, 400, id="one header too many"),
    pytest.param({"field_length": LIMITS.longest_field + 1}, 400, id="one header one byte too long"),
    pytest.param({"target_length": LIMITS.longest_target + 1}, 414, id="request line one byte too long"),
]


@pytest.mark.parametrize(("change", "status"), OVER_LIMITS)
def test_a_client_over_apaches_own_limits_gets_a_4xx_from_apache(
    big_site: tuple[Site, Provider], session_cookie: str, change: dict[str, int], status: int
) -> None:
    site, _ = big_site
    shape = {"fields": 3, "field_length": 64, "target_length": 64, **change}
    headers = signed_in(site, session_cookie)
    for n in range(shape["fields"] - len(headers)):
        name = f"X-Pad-{n:03d}"
        headers.append((name, "h" * (shape["field_length"] - len(name) - 2)))
    assert cost(headers) <= LIMITS.headers
    seen = site.uwsgi.settled_packet_count()
    assert send(site, site.tls, "/" + "p" * (shape["target_length"] - 1), headers)[0] == status
    assert site.uwsgi.settled_packet_count() == seen, "the request reached uWSGI"
    assert no_ah10259(site)


CLIENT_FLOODS = [
    # What used to push the packet past 65535 and get a 500 (AH10259).
    pytest.param([(f"X-Big-{n}", "b" * 8000) for n in range(9)], 431, id="72 KB in nine headers"),
    # Apache merges repeated lines and refuses a merged line over LimitRequestFieldSize.
    pytest.param([("Cookie", f"c{n}=" + "v" * 1000) for n in range(40)], 400, id="forty Cookie lines"),
    pytest.param([(f"X-Mid-{n}", "m" * 1000) for n in range(40)], 431, id="forty 1 KB headers"),
    pytest.param([(f"X-{n}", "") for n in range(200)], 400, id="200 empty headers"),
]


@pytest.mark.parametrize(("flood", "status"), CLIENT_FLOODS)
def test_client_header_flood_gets_4xx_never_500(
    big_site: tuple[Site, Provider], session_cookie: str, flood: Headers, status: int
) -> None:
    site, _ = big_site
    assert send(site, site.tls, "/", signed_in(site, session_cookie) + flood)[0] == status
    assert no_ah10259(site)


# --- nginx: the template caps the whole request head --------------------------------------------

NGINX_HEAD_MAX = 12288  # nginx-oauth2-proxy.conf: $request_head_too_large
#: Empty headers in the largest admitted head (nginx itself refuses some 900 or more with 400).
NGINX_TINY_HEADERS = 800
#: oauth2-proxy's answer for "big": the identity headers nginx passes on fill the budget.
NGINX_BIG = {
    "X-Auth-Request-User": "big",
    "X-Auth-Request-Email": "big@example.org",
    "X-Auth-Request-Groups": ",".join(f"group-{n:05d}" for n in range(2220)),
    "X-Auth-Request-Preferred-Username": "Big",
}


@pytest.fixture(scope="module")
def nginx_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, TLS, Uwsgi]]:
    """nginx from the template (site protection) in front of an echo app; "big" signed in."""
    folder = tmp_path_factory.mktemp("nginx-budget")
    with (
        self_signed_certificate() as tls,
        shared_directory("shibwsgi-nginx-budget-") as root,
        running_uwsgi(folder, ECHO_APP, UWSGI_PROCESSES="1") as app,
        running_fake_oauth2_proxy({"big": NGINX_BIG}) as oauth2_proxy,
        # auth_request passes every client header on; the real oauth2-proxy (Go's net/http)
        # takes any number of them, Python's http.server at most 100.
        mock.patch.object(http.client, "_MAXHEADERS", 100_000),
    ):
        variables = nginx_variables(tls, "site", oauth2_proxy, app.socket)
        with watching(app.log), running_nginx(root, variables):
            yield variables["HTTPS_PORT"], tls, app


def raw_request(port: str, tls: TLS, head: bytes) -> int:
    """Send ``head`` byte for byte over TLS; return the status code."""
    context = ssl.create_default_context(cafile=str(tls.cert))
    with (
        socket.create_connection(("127.0.0.1", int(port)), timeout=30) as plain,
        context.wrap_socket(plain, server_hostname="127.0.0.1") as connection,
    ):
        connection.sendall(head)
        reply = connection.makefile("rb").readline()
    return int(reply.split()[1])


def head_of(port: str, length: int, *, tiny: int) -> bytes:
    """A request head of exactly ``length`` bytes: ``tiny`` empty headers ``A:`` (the costliest
    per byte in the packet: 4 bytes on the wire, 10 in the packet), then padding headers."""
    start = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: _oauth2_proxy=big\r\n".encode()
    start += b"A:\r\n" * tiny
    end = b"Connection: close\r\n\r\n"
    padding = b""
    while (room := length - len(start) - len(padding) - len(end)) > 0:
        name = f"P{len(padding)}:".encode()
        value = b"p" * max(0, min(8000, room - len(name) - 2))
        padding += name + value + b"\r\n"
    head = start + padding + end
    assert len(head) == length, len(head)
    return head


def test_nginx_largest_identity_and_largest_admitted_head_fit_the_packet(
    nginx_site: tuple[str, TLS, Uwsgi],
) -> None:
    port, tls, app = nginx_site
    seen = app.settled_packet_count()
    assert raw_request(port, tls, head_of(port, NGINX_HEAD_MAX, tiny=NGINX_TINY_HEADERS)) == 200
    size = packet_after(app, seen)
    assert 40000 < size <= PACKET_MAX, size


NGINX_ORDINARY_BIG = [
    pytest.param(f"Cookie: c={'v' * 6000}; _oauth2_proxy=big", id="6 KB of other apps' cookies"),
    pytest.param(
        "Cookie: _oauth2_proxy=big\r\nAuthorization: Negotiate YII" + "A" * 8150, id="8 KB Negotiate"
    ),
]


@pytest.mark.parametrize("lines", NGINX_ORDINARY_BIG)
def test_nginx_serves_ordinary_big_headers(nginx_site: tuple[str, TLS, Uwsgi], lines: str) -> None:
    port, tls, _ = nginx_site
    head = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{lines}\r\nConnection: close\r\n\r\n".encode()
    assert len(head) <= NGINX_HEAD_MAX
    assert raw_request(port, tls, head) == 200


NGINX_OVER_BUDGET = [
    pytest.param(
        lambda port: head_of(port, NGINX_HEAD_MAX + 1, tiny=NGINX_TINY_HEADERS),
        id="one byte over the head cap",
    ),
    pytest.param(
        lambda port: (
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: _oauth2_proxy=big\r\n"
            + "".join(f"X-Big-{n}: {'b' * 8000}\r\n" for n in range(9))
            + "\r\n"
        ).encode(),
        id="72 KB in nine headers",
    ),
    pytest.param(lambda port: head_of(port, 60000, tiny=14000), id="14000 empty headers"),
    pytest.param(lambda port: head_of(port, 8000, tiny=1900), id="1900 empty headers within the cap"),
]


@pytest.mark.parametrize("head", NGINX_OVER_BUDGET)
def test_nginx_client_over_the_head_cap_gets_4xx_never_500(
    nginx_site: tuple[str, TLS, Uwsgi], head: Callable[[str], bytes]
) -> None:
    port, tls, app = nginx_site
    seen = app.settled_packet_count()
    assert raw_request(port, tls, head(port)) in (400, 431)  # nginx's own 400 past ~900 headers
    assert app.settled_packet_count() == seen
