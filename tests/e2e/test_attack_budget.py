"""Attacks on the header budget through the shipped Apache config (openidc.conf + header-budget.lua).

The promise (issue 16 item 17, docs/deployment.md "The uwsgi packet budget"): the client's
headers may cost 32,768 bytes of the uwsgi packet in all, counted as they travel (merged
repeats included); past it a 431 with a plain-text body, before any authentication module;
never a 500 (AH10259); a 6 KB Cookie line and an 8 KB Negotiate still served. Each attack
sends raw bytes (folded lines, HTTP/1.0, bodies), and checks nothing over budget reaches uWSGI.
"""

from __future__ import annotations

import socket
import ssl
from typing import TYPE_CHECKING

import pytest

from .test_auth_request import log_in
from .test_auth_request import site as auth_site  # noqa: F401 (a fixture)
from .test_packet_budget import (
    LIMITS,
    MODULE_COOKIE,
    big_site,  # noqa: F401 (a fixture)
    cost,
    negotiate,
    nginx_site,  # noqa: F401 (a fixture)
    no_ah10259,
    session_cookie,  # noqa: F401 (a fixture)
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from stack import TLS, Uwsgi

    from .oidc_provider import Provider
    from .test_auth_request import Site as AuthSite
    from .test_oidc import Site

pytestmark = pytest.mark.servers


def exchange(
    site: Site, head: bytes, body: bytes = b"", *, wait_for_continue: bool = False
) -> tuple[int, bytes]:
    """Send ``head`` (and ``body``) byte for byte; the status and the response body."""
    port = int(site.url.rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=str(site.tls.cert))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=30) as plain,
        context.wrap_socket(plain, server_hostname="127.0.0.1") as connection,
    ):
        connection.sendall(head)
        reader = connection.makefile("rb")
        if wait_for_continue:
            status_line = reader.readline()
            if b" 100 " in status_line:
                reader.readline()  # the blank line after "100 Continue"
                connection.sendall(body)
                status_line = reader.readline()
        else:
            connection.sendall(body)
            status_line = reader.readline()
        reply = reader.read()  # Connection: close
    status = int(status_line.split()[1])
    return status, reply.partition(b"\r\n\r\n")[2]


def start(
    site: Site, cookie: str, method: str = "GET", version: str = "HTTP/1.1", *, cookies: str = ""
) -> bytes:
    """The request line, Host, the module's session cookie (after ``cookies``) and Connection."""
    host = site.url.removeprefix("https://")
    return (
        f"{method} / {version}\r\nHost: {host}\r\nCookie: {cookies}{MODULE_COOKIE}={cookie}\r\n"
        "Connection: close\r\n"
    ).encode()


def start_cost(site: Site, cookie: str) -> int:
    host = site.url.removeprefix("https://")
    return cost([("Host", host), ("Cookie", f"{MODULE_COOKIE}={cookie}"), ("Connection", "close")])


def padding(total: int, *, name: str = "X-Pad", line: int = 8000) -> list[tuple[str, str]]:
    """Distinct headers costing exactly ``total`` (each at least 10)."""
    headers: list[tuple[str, str]] = []
    while (room := total - cost(headers)) > 0:
        header = f"{name}-{len(headers):02d}"
        headers.append((header, "p" * max(0, min(line, room - len(header) - 9))))
    assert cost(headers) == total
    return headers


def lines(headers: list[tuple[str, str]]) -> bytes:
    return b"".join(f"{name}: {value}\r\n".encode() for name, value in headers)


def over_budget(site: Site, cookie: str, extra: int = 1) -> bytes:
    """Padding lines that take the request's headers ``extra`` bytes past the budget."""
    return lines(padding(LIMITS.headers - start_cost(site, cookie) + extra))


def reached_uwsgi(site: Site, seen: int) -> bool:
    return site.uwsgi.settled_packet_count() != seen


def assert_431(site: Site, status: int, body: bytes, seen: int) -> None:
    assert status == 431, body[:300]
    assert b"this site accepts at most 32768 in all" in body
    assert not reached_uwsgi(site, seen)
    assert no_ah10259(site)


# --- repeated headers: Apache merges them, the hook must count the merged line ----------------


def merged_cost(name: str, values: list[str]) -> int:
    return len(name) + len(", ".join(values)) + 9


@pytest.mark.parametrize(
    "extra", [pytest.param(0, id="at the budget: served"), pytest.param(1, id="one over: 431")]
)
def test_repeated_headers_are_counted_as_apache_merges_them(
    big_site: tuple[Site, Provider],  # noqa: F811
    session_cookie: str,  # noqa: F811
    extra: int,
) -> None:
    site, _ = big_site
    room = LIMITS.headers - start_cost(site, session_cookie) + extra
    # Four names, each repeated in lines of 2 KB (their merged line stays under 8190).
    head = start(site, session_cookie)
    used = 0
    for n in range(4):
        name = f"X-Rep-{n}"
        share = room // 4 if n < 3 else room - used
        # merged: name + 9 + k values joined by ", "; three values and the rest in the fourth.
        total_values = share - len(name) - 9 - 3 * 2
        part = total_values // 4
        values = [("r" * part)] * 3 + ["r" * (total_values - 3 * part)]
        assert merged_cost(name, values) == share
        used += share
        # Alternate the spelling: Apache merges case-insensitively.
        head += b"".join(
            f"{name if i % 2 else name.lower()}: {value}\r\n".encode() for i, value in enumerate(values)
        )
    seen = site.uwsgi.settled_packet_count()
    status, body = exchange(site, head + b"\r\n")
    if extra:
        assert_431(site, status, body, seen)
    else:
        assert status == 200, body[:300]


def test_many_repeats_of_one_header_get_400_or_431_never_500(
    big_site: tuple[Site, Provider],  # noqa: F811
    session_cookie: str,  # noqa: F811
) -> None:
    site, _ = big_site
    head = start(site, session_cookie) + b"X-Same: v\r\n" * 90 + b"\r\n"
    status, _ = exchange(site, head)
    assert status == 200  # 90 x "v, " merged: about 270 bytes
    assert no_ah10259(site)


# --- odd framing: folded lines, HTTP/1.0, bodies, Expect ---------------------------------------


def test_folded_header_lines_over_budget_get_4xx_never_500(
    big_site: tuple[Site, Provider],  # noqa: F811
    session_cookie: str,  # noqa: F811
) -> None:
    site, _ = big_site
    folded = b"".join(f"X-Fold-{n}: a\r\n {'f' * 4000}\r\n {'f' * 3000}\r\n".encode() for n in range(6))
    seen = site.uwsgi.settled_packet_count()
    status, _ = exchange(site, start(site, session_cookie) + folded + b"\r\n")
    assert status in (400, 431)
    assert not reached_uwsgi(site, seen)
    assert no_ah10259(site)


def test_http_1_0_over_budget_gets_the_431_body(
    big_site: tuple[Site, Provider],  # noqa: F811
    session_cookie: str,  # noqa: F811
) -> None:
    site, _ = big_site
    seen = site.uwsgi.settled_packet_count()
    head = start(site, session_cookie, version="HTTP/1.0") + over_budget(site, session_cookie) + b"\r\n"
    assert_431(site, *exchange(site, head), seen)


def test_expect_100_continue_over_budget_gets_431_without_the_body(
    big_site: tuple[Site, Provider],  # noqa: F811
    session_cookie: str,  # noqa: F811
) -> None:
    site, _ = big_site
    body = b"x" * 5000
    extra = f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\nExpect: 100-continue\r\n".encode()
    room = cost(
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body))), ("Expect", "100-continue")]
    )
    head = (
        start(site, session_cookie, "POST")
        + extra
        + lines(padding(LIMITS.headers - start_cost(site, session_cookie) - room + 1))
    )
    seen = site.uwsgi.settled_packet_count()
    assert_431(site, *exchange(site, head + b"\r\n", body, wait_for_continue=True), seen)


def test_chunked_post_over_budget_gets_431(
    big_site: tuple[Site, Provider],  # noqa: F811
    session_cookie: str,  # noqa: F811
) -> None:
    site, _ = big_site
    room = cost([("Transfer-Encoding", "chunked")])
    head = (
        start(site, session_cookie, "POST")
        + b"Transfer-Encoding: chunked\r\n"
        + lines(padding(LIMITS.headers - start_cost(site, session_cookie) - room + 1))
    )
    seen = site.uwsgi.settled_packet_count()
    assert_431(site, *exchange(site, head + b"\r\n", b"5\r\nhello\r\n0\r\n\r\n"), seen)


def test_head_request_over_budget_gets_431(
    big_site: tuple[Site, Provider],  # noqa: F811
    session_cookie: str,  # noqa: F811
) -> None:
    site, _ = big_site
    seen = site.uwsgi.settled_packet_count()
    head = start(site, session_cookie, "HEAD") + over_budget(site, session_cookie) + b"\r\n"
    status, body = exchange(site, head)
    assert status == 431
    assert body == b""
    assert not reached_uwsgi(site, seen)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(b"X-\x80Bad", id="non-ASCII byte"),
        pytest.param(b"X Space", id="space"),
        pytest.param(b"X-Nul\x00", id="NUL"),
        pytest.param(b"X(paren)", id="separator"),
    ],
)
def test_header_name_with_odd_bytes_gets_400_never_500(
    big_site: tuple[Site, Provider],  # noqa: F811
    session_cookie: str,  # noqa: F811
    name: bytes,
) -> None:
    site, _ = big_site
    seen = site.uwsgi.settled_packet_count()
    status, _ = exchange(
        site, start(site, session_cookie) + name + b": v\r\n" + over_budget(site, session_cookie) + b"\r\n"
    )
    assert status in (400, 431)
    assert not reached_uwsgi(site, seen)
    assert no_ah10259(site)


def test_underscore_headers_count_though_apache_drops_them(
    big_site: tuple[Site, Provider],  # noqa: F811
    session_cookie: str,  # noqa: F811
) -> None:
    site, _ = big_site
    seen = site.uwsgi.settled_packet_count()
    pads = [
        (name.replace("-", "_"), value)
        for name, value in padding(LIMITS.headers - start_cost(site, session_cookie) + 1)
    ]
    assert_431(site, *exchange(site, start(site, session_cookie) + lines(pads) + b"\r\n"), seen)


# --- the hook is server wide: paths Apache answers itself, the identity's module --------------


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(
            "/login/redirect_uri?logout=https%3A%2F%2Fexample.org", id="mod_auth_openidc's own path"
        ),
        pytest.param("/nope/../", id="dot segments"),
        pytest.param("/%2e%2e/", id="encoded dot segments"),
        pytest.param("/?" + "q" * 2000, id="longest query"),
    ],
)
def test_over_budget_on_any_path_gets_431(
    big_site: tuple[Site, Provider],  # noqa: F811
    session_cookie: str,  # noqa: F811
    path: str,
) -> None:
    site, _ = big_site
    seen = site.uwsgi.settled_packet_count()
    head = start(site, session_cookie).replace(b"GET / ", f"GET {path} ".encode(), 1)
    status, body = exchange(site, head + over_budget(site, session_cookie) + b"\r\n")
    assert status in (400, 431), body[:300]  # 400: Apache refuses "/%2e%2e/" above the root itself
    assert not reached_uwsgi(site, seen)
    assert no_ah10259(site)


def test_longest_query_and_full_budget_and_largest_identity_fit(
    big_site: tuple[Site, Provider],  # noqa: F811
    session_cookie: str,  # noqa: F811
) -> None:
    site, provider = big_site
    query = "/?" + "q" * (LIMITS.line - len("GET  HTTP/1.1") - 2)
    head = start(site, session_cookie).replace(b"GET / ", f"GET {query} ".encode(), 1)
    head += lines(padding(LIMITS.headers - start_cost(site, session_cookie), line=LIMITS.field_size - 20))
    status, body = exchange(site, head + b"\r\n")
    assert status == 200, body[:300]
    assert f"big@{provider.url}".encode() in body
    assert no_ah10259(site)


@pytest.mark.parametrize(
    ("cookies", "extra"),
    [
        pytest.param("c=" + "v" * 6000 + "; ", [], id="6 KB Cookie line"),
        pytest.param("", [negotiate(LIMITS.longest_field)], id="8 KB Negotiate"),
        pytest.param(
            "c=" + "v" * 6000 + "; ",
            [negotiate(LIMITS.longest_field), ("X-Many", "m" * 8000)],
            id="both and an 8 KB custom header",
        ),
    ],
)
def test_ordinary_big_headers_pass_sent_raw(
    big_site: tuple[Site, Provider],  # noqa: F811
    session_cookie: str,  # noqa: F811
    cookies: str,
    extra: list[tuple[str, str]],
) -> None:
    site, provider = big_site
    status, body = exchange(site, start(site, session_cookie, cookies=cookies) + lines(extra) + b"\r\n")
    assert status == 200, body[:300]
    assert f"big@{provider.url}".encode() in body


def test_over_budget_post_body_is_never_read_as_a_second_request(
    big_site: tuple[Site, Provider],  # noqa: F811
    session_cookie: str,  # noqa: F811
) -> None:
    site, _ = big_site
    host = site.url.removeprefix("https://")
    smuggled = (
        f"GET /smuggled HTTP/1.1\r\nHost: {host}\r\nCookie: {MODULE_COOKIE}={session_cookie}\r\n\r\n".encode()
    )
    room = cost([("Content-Length", str(len(smuggled)))])
    head = (
        start(site, session_cookie, "POST").replace(b"Connection: close\r\n", b"Connection: keep-alive\r\n")
        + f"Content-Length: {len(smuggled)}\r\n".encode()
        + lines(padding(LIMITS.headers - start_cost(site, session_cookie) - room + 1))
    )
    seen = site.uwsgi.settled_packet_count()
    port = int(site.url.rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=str(site.tls.cert))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=30) as plain,
        context.wrap_socket(plain, server_hostname="127.0.0.1") as connection,
    ):
        connection.sendall(head + b"\r\n" + smuggled)
        connection.settimeout(3)  # a keep-alive connection: read until Apache closes it or goes quiet
        replies = b""
        try:
            while chunk := connection.recv(65536):
                replies += chunk
        except (TimeoutError, ssl.SSLError, ConnectionError):
            pass
    assert replies.startswith(b"HTTP/1.1 431 ")
    assert replies.count(b"HTTP/1.1 ") == 1, replies[:2000]
    assert not reached_uwsgi(site, seen)


# --- nginx (nginx-oauth2-proxy.conf): the whole head is capped at 12,288 bytes ----------------


def nginx_exchange(port: str, tls: TLS, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    context = ssl.create_default_context(cafile=str(tls.cert))
    with (
        socket.create_connection(("127.0.0.1", int(port)), timeout=30) as plain,
        context.wrap_socket(plain, server_hostname="127.0.0.1") as connection,
    ):
        connection.sendall(head + body)
        reply = connection.makefile("rb").read()
    status_line, _, rest = reply.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def nginx_head(port: str, *lines_: str, version: str = "HTTP/1.1", target: str = "/") -> bytes:
    return (
        f"GET {target} {version}\r\nHost: 127.0.0.1:{port}\r\nCookie: _oauth2_proxy=big\r\n"
        + "".join(f"{line}\r\n" for line in lines_)
        + "Connection: close\r\n\r\n"
    ).encode()


NGINX_ATTACKS = [
    pytest.param(
        lambda port: nginx_head(port, f"X-A: {'a' * 13000}", version="HTTP/1.0"), id="HTTP/1.0 over"
    ),
    pytest.param(
        lambda port: nginx_head(port, *[f"X-Rep: {'r' * 1000}"] * 13), id="thirteen repeats of one header"
    ),
    pytest.param(
        lambda port: nginx_head(port, *[f"Cookie: c{n}={'c' * 1000}" for n in range(13)]), id="Cookie lines"
    ),
    pytest.param(lambda port: nginx_head(port, target="/?" + "q" * 13000), id="13 KB query"),
    pytest.param(
        lambda port: nginx_head(port, target="/" + "p" * 17000), id="17 KB path: past the 16k buffer"
    ),
    pytest.param(lambda port: nginx_head(port, f"X-Fold: a\r\n {'f' * 13000}"), id="folded line"),
    pytest.param(
        lambda port: nginx_head(port, *[f"X_Under_{n}: {'u' * 1000}" for n in range(13)]), id="underscores"
    ),
    pytest.param(
        lambda port: nginx_head(
            port, "Expect: 100-continue", "Content-Length: 5", f"X-A: {'a' * 13000}"
        ).replace(b"GET", b"POST", 1),
        id="Expect 100-continue",
    ),
]


@pytest.mark.parametrize("head", NGINX_ATTACKS)
def test_nginx_over_the_head_cap_gets_4xx_never_500(
    nginx_site: tuple[str, TLS, Uwsgi],  # noqa: F811
    head: Callable[[str], bytes],
) -> None:
    port, tls, app = nginx_site
    seen = app.settled_packet_count()
    status, body = nginx_exchange(port, tls, head(port))
    assert 400 <= status < 500 and status != 401, status
    if status == 431:
        assert b"this site accepts at most 12288" in body, body
    assert app.settled_packet_count() == seen


@pytest.mark.parametrize(
    "lines_",
    [
        pytest.param([f"X-Rep: {'r' * 1000}"] * 10, id="ten repeats of one header"),
        pytest.param(["Cookie: c=" + "v" * 6000], id="6 KB cookie line besides the session"),
        pytest.param(["Authorization: Negotiate YII" + "A" * 8150], id="8 KB Negotiate"),
    ],
)
def test_nginx_ordinary_big_heads_are_served(
    nginx_site: tuple[str, TLS, Uwsgi],  # noqa: F811
    lines_: list[str],
) -> None:
    port, tls, _ = nginx_site
    status, body = nginx_exchange(port, tls, nginx_head(port, *lines_))
    assert status == 200, body[:300]


def test_auth_request_template_over_the_head_cap_gets_431_with_a_body(auth_site: AuthSite) -> None:  # noqa: F811
    client = log_in(auth_site, "alice")
    answer = auth_site.get(client, "/api/movies", headers={f"X-Big-{n}": "b" * 8000 for n in range(2)})
    assert answer.status_code == 431
    assert "this site accepts at most 12288" in answer.text
    assert answer.headers["Content-Type"].startswith("text/plain")
