"""Open-redirect protection: ``safe_next`` and ``absolute_url``."""

from __future__ import annotations

import unicodedata
from urllib.parse import urlsplit

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from shibwsgi.redirects import MAX_LENGTH, absolute_url, safe_next

DEFAULT = "/home"

MALICIOUS = [
    pytest.param(None, id="none"),
    pytest.param("", id="empty"),
    pytest.param("http://evil.example/", id="http url"),
    pytest.param("https://evil.example/x", id="https url"),
    pytest.param("HtTpS://evil.example", id="mixed-case scheme"),
    pytest.param("javascript:alert(1)", id="javascript scheme"),
    pytest.param("JaVaScRiPt:alert(1)", id="mixed-case javascript"),
    pytest.param("data:text/html,<script>alert(1)</script>", id="data scheme"),
    pytest.param(" https://evil.example", id="leading space before scheme"),
    pytest.param("\x01javascript:alert(1)", id="leading control before scheme"),
    pytest.param("\thttps://evil.example", id="leading tab before scheme"),
    pytest.param("//evil.example", id="scheme-relative"),
    pytest.param("///evil.example", id="triple slash"),
    pytest.param("//user@evil.example/", id="userinfo scheme-relative"),
    pytest.param("/\\evil.example", id="slash backslash"),
    pytest.param("\\\\evil", id="double backslash"),
    pytest.param("\\/evil", id="backslash slash"),
    pytest.param("/a\\b", id="backslash inside path"),
    pytest.param("/\t/evil", id="tab between slashes"),
    pytest.param("/\n/evil", id="newline between slashes"),
    pytest.param("/a\r\nSet-Cookie: x=1", id="header injection CRLF"),
    pytest.param("/a\x00b", id="NUL"),
    pytest.param("/a\x7fb", id="DEL"),
    pytest.param("/a\x85b", id="NEL U+0085"),
    pytest.param("/a\u2028b", id="line separator"),
    pytest.param("/a\u202eb", id="right-to-left override"),
    pytest.param("/a b", id="raw space"),
    pytest.param("/%2F%2Fevil.example", id="encoded double slash"),
    pytest.param("/%2fevil.example", id="encoded slash lowercase"),
    pytest.param("/%5Cevil.example", id="encoded backslash"),
    pytest.param("%2F%2Fevil.example", id="fully encoded scheme-relative"),
    pytest.param("/%252F%252Fevil.example", id="double-encoded double slash"),
    pytest.param("/%25252F%25252Fevil.example", id="triple-encoded double slash"),
    pytest.param("/%255Cevil.example", id="double-encoded backslash"),
    pytest.param("/%2525252F", id="too many encoding rounds"),
    pytest.param("/%09/evil", id="encoded tab"),
    pytest.param("/a%0d%0aSet-Cookie:%20x=1", id="encoded CRLF"),
    pytest.param("/a%00", id="encoded NUL"),
    pytest.param("/a%7F", id="encoded DEL"),
    pytest.param("/a%85", id="encoded NEL as latin-1"),
    pytest.param("/a%C2%85", id="encoded NEL as UTF-8"),
    pytest.param("/a%E2%80%AE", id="encoded right-to-left override"),
    pytest.param("/x%", id="stray percent"),
    pytest.param("/x%zz", id="malformed escape"),
    pytest.param("evil.com", id="bare host"),
    pytest.param("evil.com/path", id="relative path with host"),
    pytest.param("../x", id="dot-dot relative"),
    pytest.param("./x", id="dot relative"),
    pytest.param("?next=//evil", id="query only"),
    pytest.param("#frag", id="fragment only"),
    pytest.param("/\u2215evil.example", id="division slash U+2215"),
    pytest.param("/\uff0fevil.example", id="fullwidth solidus U+FF0F"),
    pytest.param("/\ufe68evil.example", id="small reverse solidus U+FE68"),
    pytest.param("/\u29f5evil.example", id="reverse solidus operator U+29F5"),
    pytest.param("/\u2044evil.example", id="fraction slash U+2044"),
    pytest.param("/%E2%88%95evil.example", id="encoded division slash"),
    pytest.param("/%EF%BC%8Fevil.example", id="encoded fullwidth solidus"),
    pytest.param("/%EF%B9%A8evil.example", id="encoded small reverse solidus"),
    pytest.param("/films/am\u00e9lie", id="raw non-ASCII"),
    pytest.param("/" + "a" * MAX_LENGTH, id="overlong"),
    pytest.param("/.//evil.example", id="dot segment then double slash"),
    pytest.param("/..//evil.example", id="dot-dot segment then double slash"),
    pytest.param("/a/..//evil.example", id="dot-dot back to root then double slash"),
    pytest.param("/%2e//evil.example", id="encoded dot then double slash"),
    pytest.param("/%2E%2E//evil.example", id="encoded dot-dot then double slash"),
    pytest.param("/./%2fevil.example", id="dot then encoded slash"),
]

GOOD = [
    pytest.param("/", id="root"),
    pytest.param("/movies?id=3#x", id="query and fragment"),
    pytest.param("/a/b%20c", id="encoded space"),
    pytest.param("/@evil", id="at sign is a path"),
    pytest.param("/a:b", id="colon in path"),
    pytest.param("/search?q=100%25", id="encoded percent"),
    pytest.param("/films/am%C3%A9lie", id="encoded UTF-8"),
    pytest.param("/a/./b/../c", id="dot segments"),
    pytest.param("/x?u=https://other.example/", id="url inside query"),
    pytest.param("/a%2Fb", id="encoded slash mid-path"),
    pytest.param("/list?ids[]=1&ids[]=2", id="brackets in query"),
    pytest.param("/movies/../admin", id="dot-dot that stays on site"),
    pytest.param("/a/./b?next=//x", id="dot segment, double slash only in the query"),
    pytest.param("/" + "a" * (MAX_LENGTH - 1), id="longest allowed"),
]


@pytest.mark.parametrize("value", MALICIOUS)
def test_malicious_values_give_default(value: str | None) -> None:
    assert safe_next(value, DEFAULT) == DEFAULT


@pytest.mark.parametrize("value", GOOD)
def test_same_site_paths_pass_unchanged(value: str) -> None:
    assert safe_next(value, DEFAULT) == value


def test_default_default_is_root() -> None:
    assert safe_next("//evil.example") == "/"


def test_non_string_gives_default() -> None:
    assert safe_next(b"/bytes", DEFAULT) == DEFAULT  # type: ignore[arg-type]


def _assert_safe(result: str, default: str) -> None:
    if result == default:
        return
    assert result.startswith("/")
    assert result[1:2] not in ("/", "\\")
    assert not any(unicodedata.category(char) in ("Cc", "Cf") for char in result)
    parts = urlsplit(result)
    assert parts.scheme == ""
    assert parts.netloc == ""


@given(st.text())
@example("/\\evil")
@example("/%2F%2Fevil")
def test_any_text_yields_a_local_path_or_default(value: str) -> None:
    _assert_safe(safe_next(value, DEFAULT), DEFAULT)


@given(st.text(alphabet="/\\%252FfCc:@?#.ae \t\r\n\x00\x85\u2215\uff0f", max_size=24))
def test_path_like_text_yields_a_local_path_or_default(value: str) -> None:
    # A narrow alphabet makes hypothesis reach slashes, escapes and controls together.
    _assert_safe(safe_next(value, DEFAULT), DEFAULT)


def _environ(**extra: str) -> dict[str, str]:
    environ = {"wsgi.url_scheme": "https", "SERVER_NAME": "app.example", "SERVER_PORT": "443"}
    environ.update(extra)
    return environ


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        pytest.param(_environ(HTTP_HOST="movies.example"), "https://movies.example/x?y=1", id="host header"),
        pytest.param(_environ(), "https://app.example/x?y=1", id="server name"),
        pytest.param(
            _environ(**{"wsgi.url_scheme": "http", "HTTP_HOST": "movies.example:8080"}),
            "http://movies.example:8080/x?y=1",
            id="http with port",
        ),
    ],
)
def test_absolute_url_uses_request_scheme_and_host(environ: dict[str, str], expected: str) -> None:
    assert absolute_url(environ, "/x?y=1") == expected


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("//evil.example/", id="scheme-relative"),
        pytest.param("https://evil.example/", id="absolute"),
        pytest.param("x", id="relative"),
        pytest.param("", id="empty"),
    ],
)
def test_absolute_url_refuses_unvalidated_paths(path: str) -> None:
    with pytest.raises(ValueError, match="same-site"):
        absolute_url(_environ(), path)


def test_absolute_url_refuses_a_malformed_host_header() -> None:
    # An empty host would yield "https:///x", which browsers read as host "x".
    with pytest.raises(ValueError, match="host"):
        absolute_url(_environ(HTTP_HOST="evil.example/@x"), "/x")


def test_absolute_url_refuses_unknown_scheme() -> None:
    with pytest.raises(ValueError, match="scheme"):
        absolute_url(_environ(**{"wsgi.url_scheme": "javascript"}), "/x")
