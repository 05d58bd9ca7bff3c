"""The uwsgi packet budget: client headers and the identity share 65535 bytes.

mod_proxy_uwsgi sends every client header (as ``HTTP_*``), the request line (path and query,
more than once) and the identity's variables in one uwsgi packet, whose size field has 16
bits; over it Apache answers 500 itself (AH10259). The shipped configs bound the client's
share (``LimitRequestFields``, ``LimitRequestFieldSize``, ``LimitRequestLine``) so that an
identity within the budget docs/deployment.md gives plus the largest request Apache admits
still fits, and anything larger is refused by Apache with a 4xx.

Through the shipped apache/openidc.conf (whole site) and uwsgi.ini, a real login at
oidc-provider-mock, and a stub app answering with its environ.
"""

from __future__ import annotations

import http.client
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
MODULE_COOKIE = "mod_auth_openidc_session"


@dataclass(frozen=True)
class Limits:
    """The shipped configs' limits on what a client sends."""

    fields: int  # LimitRequestFields: header lines, Host included
    field_size: int  # LimitRequestFieldSize: Apache admits lines of one byte more
    line: int  # LimitRequestLine: "GET <target> HTTP/1.1"

    @classmethod
    def shipped(cls) -> Limits:
        text = (CONFIGS / "openidc.conf").read_text()

        def value(name: str) -> int:
            (found,) = re.findall(rf"^{name} (\d+)$", text, re.MULTILINE)
            return int(found)

        return cls(value("LimitRequestFields"), value("LimitRequestFieldSize"), value("LimitRequestLine"))

    @property
    def longest_field(self) -> int:
        return self.field_size + 1

    @property
    def longest_target(self) -> int:
        return self.line - len("GET  HTTP/1.1") + 1  # one byte more, as for fields


LIMITS = Limits.shipped()


@pytest.fixture(scope="module")
def big_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, Provider]]:
    folder = tmp_path_factory.mktemp("budget")
    with (
        self_signed_certificate() as tls,
        running_provider(folder, [BIG]) as provider,
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


def largest_request(
    site: Site, cookie: str, *, fields: int, field_length: int, target_length: int
) -> tuple[str, list[tuple[str, str]]]:
    """A request line of ``target_length`` and ``fields`` header lines of ``field_length`` bytes.

    Host and the session cookie are two of them; the cookie line is padded with another
    cookie. Every line counts ``Name: value`` without its CRLF.
    """
    host = ("Host", site.url.removeprefix("https://"))
    padding = field_length - len(f"Cookie: {MODULE_COOKIE}={cookie}; p=")
    headers = [host, ("Cookie", f"{MODULE_COOKIE}={cookie}; p={'c' * padding}")]
    for n in range(fields - len(headers)):
        name = f"X-Pad-{n:02d}"
        headers.append((name, "h" * (field_length - len(name) - 2)))
    target = "/" + "p" * (target_length - 1)
    return target, headers


def packet_sizes(app: Uwsgi) -> list[int]:
    """Sizes of the uwsgi packets uWSGI received, from its request log."""
    log = app.log.read_text(errors="replace")
    return [int(size) for size in re.findall(r"\{\d+ vars in (\d+) bytes\}", log)]


def packet_after(app: Uwsgi, seen: int) -> int:
    """The size of the packet uWSGI logs after the ``seen`` it had logged before."""
    wait_for_log(app.log, r"\{\d+ vars in \d+ bytes\}", count=seen + 1)
    return packet_sizes(app)[seen]


def test_largest_identity_and_largest_admitted_request_fit_the_packet(
    big_site: tuple[Site, Provider], session_cookie: str
) -> None:
    site, _ = big_site
    target, headers = largest_request(
        site,
        session_cookie,
        fields=LIMITS.fields,
        field_length=LIMITS.longest_field,
        target_length=LIMITS.longest_target,
    )
    seen = len(packet_sizes(site.uwsgi))
    status, body = send(site, site.tls, target, headers)
    assert status == 200, body[:500]
    assert b'"OIDC_CLAIM_groups"' in body
    assert b'"HTTP_X_PAD_29"' in body
    size = packet_after(site.uwsgi, seen)
    # Near the limit, so the budget is real: a little more identity or client would not fit.
    assert PACKET_MAX - 4096 < size <= PACKET_MAX, size


OVER_BUDGET = [
    pytest.param({"fields": LIMITS.fields + 1}, 400, id="one header too many"),
    pytest.param({"field_length": LIMITS.longest_field + 1}, 400, id="one header one byte too long"),
    pytest.param({"target_length": LIMITS.longest_target + 1}, 414, id="request line one byte too long"),
]


@pytest.mark.parametrize(("change", "status"), OVER_BUDGET)
def test_a_client_over_the_limits_gets_a_4xx_from_apache(
    big_site: tuple[Site, Provider], session_cookie: str, change: dict[str, int], status: int
) -> None:
    site, _ = big_site
    shape = {"fields": LIMITS.fields, "field_length": LIMITS.longest_field, "target_length": 64}
    target, headers = largest_request(site, session_cookie, **{**shape, **change})
    seen = len(packet_sizes(site.uwsgi))
    assert send(site, site.tls, target, headers)[0] == status
    assert len(packet_sizes(site.uwsgi)) == seen, "the request reached uWSGI"
    assert "AH10259" not in (site.root / "error.log").read_text(errors="replace")


CLIENT_FLOODS = [
    # What used to push the packet past 65535 and get a 500 (AH10259).
    pytest.param([(f"X-Big-{n}", "b" * 8000) for n in range(9)], id="72 KB in nine headers"),
    pytest.param([("Cookie", f"c{n}=" + "v" * 1000) for n in range(40)], id="forty Cookie lines"),
    pytest.param([(f"X-{n}", "") for n in range(200)], id="200 empty headers"),
]


@pytest.mark.parametrize("flood", CLIENT_FLOODS)
def test_client_header_flood_gets_400_never_500(
    big_site: tuple[Site, Provider], session_cookie: str, flood: list[tuple[str, str]]
) -> None:
    site, _ = big_site
    headers = [("Host", site.url.removeprefix("https://")), ("Cookie", f"{MODULE_COOKIE}={session_cookie}")]
    assert send(site, site.tls, "/", headers + flood)[0] == 400
    assert "AH10259" not in (site.root / "error.log").read_text(errors="replace")


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
    seen = len(packet_sizes(app))
    assert raw_request(port, tls, head_of(port, NGINX_HEAD_MAX, tiny=NGINX_TINY_HEADERS)) == 200
    size = packet_after(app, seen)
    assert 40000 < size <= PACKET_MAX, size


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
    seen = len(packet_sizes(app))
    assert raw_request(port, tls, head(port)) in (400, 431)  # nginx's own 400 past ~900 headers
    assert len(packet_sizes(app)) == seen
