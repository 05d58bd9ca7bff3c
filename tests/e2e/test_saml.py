"""SAML end to end: a pysaml2 IdP, Shibboleth SP 3 (shibd + mod_shib in Apache), uWSGI, the movie app.

The servers are the fixtures of conftest.py, started from the shipped apache/shibboleth.conf
and apache/uwsgi.ini. A test picks its IdP user with ``/select`` (see saml_idp.py) and then
browses the site with ``requests``, following redirects and submitting the IdP's POST form
the way a browser does; the last test drives a real browser.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
from playwright.sync_api import expect, sync_playwright
from stack import wait_for_log
from support import require_program

from .saml_idp import (
    EDITOR_GROUP,
    SEMICOLON_GROUP,
    USERS,
    Visit,
    browse,
    choose_user,
    released_groups,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    import requests

    from .conftest import ShibSite
    from .saml_idp import SamlIdP

pytestmark = pytest.mark.servers

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ACS = "/Shibboleth.sso/SAML2/POST"
#: Client headers that try to pass for an identity; Apache, mod_shib and shibwsgi all stand between.
FORGED_HEADERS = {
    "eppn": "mallory@example.org",
    "Remote-User": "mallory@example.org",
    "X-Remote-User": "mallory@example.org",
    "Shib-Session-ID": "_0123456789abcdef0123456789abcdef",
    "X-Forwarded-User": "mallory@example.org",
    "OIDC-CLAIM-sub": "mallory@example.org",
    "displayName": "Mallory",
    "isMemberOf": EDITOR_GROUP,
}
MOVIE = {"title": "Nosferatu", "director": "F. W. Murnau", "main_actor": "Max Schreck", "published": 1922}


def sign_in_at_idp(client: requests.Session, idp: SamlIdP, user: str, groups: int = 0) -> None:
    assert client.get(idp.select_url(user, groups), timeout=30).status_code == 204


def log_in(
    client: requests.Session,
    site: ShibSite,
    idp: SamlIdP,
    user: str,
    *,
    groups: int = 0,
    path: str = "/api/me",
) -> Visit:
    """Go to ``path`` on the site as ``user``, through the whole SAML login."""
    sign_in_at_idp(client, idp, user, groups)
    visit = browse(client, f"{site.url}{path}")
    assert visit.went_through(idp.sso_url), visit.hops
    assert visit.went_through(f"{site.url}{ACS}"), visit.hops
    return visit


def get(client: requests.Session, url: str, **kwargs: Any) -> requests.Response:
    return client.get(url, allow_redirects=False, timeout=30, **kwargs)


def expected_me(user: str, groups: int = 0) -> dict[str, Any]:
    """What /api/me must show: the IdP's values, decoded and split as they were released."""
    released = USERS[user]
    return {
        "user": released.eppn,
        "attributes": {
            "name": [released.display_name],
            "email": [released.mail],
            "groups": released_groups(user, groups),
        },
        "profile": "shibboleth",
        "dropped": [],
    }


def assert_me(me: dict[str, Any], user: str, idp: SamlIdP, groups: int = 0) -> None:
    assert {key: me[key] for key in ("user", "attributes", "profile", "dropped")} == expected_me(user, groups)
    assert me["provider"] == idp.entity_id
    assert "session_id" not in me  # the SP's session key (its HttpOnly cookie) stays out of page JavaScript


def sp_session(client: requests.Session, site: ShibSite) -> str:
    """The SP's own view of the client's session (/Shibboleth.sso/Session)."""
    return get(client, f"{site.url}/Shibboleth.sso/Session").text


def isMemberOf_bytes(user: str, groups: int) -> int:
    """The SP's isMemberOf variable's length: values joined with ``;``, a ``;`` inside escaped."""
    return len(";".join(value.replace(";", "\\;") for value in released_groups(user, groups)))


def groups_of_size(user: str, size: int) -> int:
    """How many generated groups make ``user``'s isMemberOf variable at most ``size`` bytes long."""
    return (size - isMemberOf_bytes(user, 0)) // (isMemberOf_bytes(user, 1) - isMemberOf_bytes(user, 0))


# -- 1. whole-site protection --------------------------------------------------------------------


def test_whole_site_login_crud_logout_and_login_again(shib_whole_site: ShibSite, saml_idp: SamlIdP) -> None:
    """Login at the first request, the identity intact, editor and reader rights, logout of both sessions."""
    site = shib_whole_site
    with site.client() as editor, site.client() as reader:
        _log_in_and_edit(site, saml_idp, editor, reader)
        _log_out_and_in_again(site, saml_idp, editor)


def _log_in_and_edit(
    site: ShibSite, idp: SamlIdP, editor: requests.Session, reader: requests.Session
) -> None:
    home = log_in(editor, site, idp, "zoe", path="/")
    assert home.hops[0] == f"{site.url}/"
    assert home.hops[1].startswith(f"{idp.sso_url}?SAMLRequest=")  # mod_shib's AuthnRequest
    assert home.hops[2:] == [f"{site.url}{ACS}", f"{site.url}/"]  # signed POST back, then the target
    assert home.response.status_code == 200
    assert "Signed in as Zoë Łukasz-Müller 山田" in home.response.text
    me = get(editor, f"{site.url}/api/me")
    assert me.status_code == 200
    assert_me(me.json(), "zoe", idp)
    assert SEMICOLON_GROUP in me.json()["attributes"]["groups"]  # sent as "\;", split right
    # The SP kept the scoped attributes (thanks to the IdP's <shibmd:Scope>), affiliation too.
    session = sp_session(editor, site)
    assert "<strong>affiliation</strong>: member@example.org;staff@example.org" in session, session

    created = editor.post(f"{site.url}/api/movies", json=MOVIE, timeout=30)
    assert created.status_code == 201, created.text
    movie = created.json()
    assert movie["created_by"] == "zoe@example.org"
    assert created.headers["Location"].endswith(f"/api/movies/{movie['id']}")
    url = f"{site.url}/api/movies/{movie['id']}"
    changed = editor.put(url, json={"published": 1921}, timeout=30)
    assert changed.status_code == 200, changed.text
    assert changed.json()["published"] == 1921
    assert changed.json()["created_by"] == changed.json()["updated_by"] == "zoe@example.org"

    # A reader, logged in separately, reads but may not write.
    read = log_in(reader, site, idp, "bob", path=f"/api/movies/{movie['id']}")
    assert read.response.status_code == 200
    assert read.response.json()["title"] == "Nosferatu"
    assert get(reader, f"{site.url}/api/me").json()["user"] == "bob@example.org"
    writes = [
        reader.post(f"{site.url}/api/movies", json=MOVIE, timeout=30),
        reader.put(url, json={"title": "x"}, timeout=30),
        reader.delete(url, timeout=30),
    ]
    assert [response.status_code for response in writes] == [403, 403, 403]

    assert editor.delete(url, timeout=30).status_code == 204
    assert get(editor, url).status_code == 404


def _log_out_and_in_again(site: ShibSite, idp: SamlIdP, client: requests.Session) -> None:
    # The app sends the browser to the SP's logout, which does SAML single logout with the
    # IdP and comes back to the site, where whole-site protection starts a new login.
    before = _sp_session_keys(client)
    logout = browse(client, f"{site.url}/logout")
    back_home = f"{site.url}/"
    assert logout.hops[1] == f"{site.url}/Shibboleth.sso/Logout?return={quote(back_home, safe='')}"
    assert logout.went_through(idp.slo_url), logout.hops
    assert logout.went_through(f"{site.url}/Shibboleth.sso/SLO/Redirect"), logout.hops
    assert back_home in logout.hops
    assert logout.hops[-1].startswith(idp.sso_url)  # a new login...
    assert "Test IdP" in logout.response.text  # ...and the IdP's login ended too: it asks who
    assert not [cookie for cookie in client.cookies if cookie.name.startswith("_shibsession_")]
    after = get(client, f"{site.url}/api/me")
    assert after.status_code == 302
    assert after.headers["Location"].startswith(idp.sso_url)
    assert "A valid session was not found" in sp_session(client, site)

    # Logging in again (this time through the IdP's sign-in page) works.
    again = choose_user(client, logout.response, "zoe")
    assert again.hops[-1] == back_home
    assert "Signed in as Zoë Łukasz-Müller 山田" in again.response.text
    me_again = get(client, f"{site.url}/api/me").json()
    assert_me(me_again, "zoe", idp)
    assert before and _sp_session_keys(client) and not before & _sp_session_keys(client)  # a new SP session


def _sp_session_keys(client: requests.Session) -> set[str | None]:
    return {cookie.value for cookie in client.cookies if cookie.name.startswith("_shibsession_")}


# -- 2. lazy protection: the app's own session ---------------------------------------------------


def test_lazy_anonymous_pages_then_login_honours_next_and_keeps_app_session(
    shib_lazy_site: ShibSite, saml_idp: SamlIdP
) -> None:
    """Only /login needs the SP; the app's session carries the identity afterwards."""
    site = shib_lazy_site
    with site.client() as client:
        home = get(client, f"{site.url}/")
        assert home.status_code == 200
        assert "You are not signed in" in home.text
        assert 'href="/login?next=/"' in home.text
        anonymous = get(client, f"{site.url}/api/me")
        assert anonymous.status_code == 401
        assert anonymous.headers["Content-Type"] == "application/json"

        login = log_in(client, site, saml_idp, "zoe", path="/login?next=/api/movies")
        assert login.hops[0] == f"{site.url}/login?next=/api/movies"  # mod_shib: /login needs a session
        assert login.hops[-2] == login.hops[0]  # the SP brings the browser back to it...
        assert login.hops[-1] == f"{site.url}/api/movies"  # ...and the app sends it on to next
        assert login.response.status_code == 200
        assert "Titanic" in [movie["title"] for movie in login.response.json()]
        assert "__Host-shibwsgi" in client.cookies

        # The app's cookie alone keeps the user logged in: forget the SP's session cookie.
        for cookie in list(client.cookies):
            if cookie.name.startswith("_shibsession_"):
                client.cookies.clear(cookie.domain, cookie.path, cookie.name)
        assert "A valid session was not found" in sp_session(client, site)
        me = get(client, f"{site.url}/api/me")
        assert me.status_code == 200
        assert_me(me.json(), "zoe", saml_idp)
        assert "Signed in as Zoë Łukasz-Müller 山田" in get(client, f"{site.url}/").text
        assert get(client, f"{site.url}/api/movies").status_code == 200

        # The app's logout ends its session, then goes through the SP's logout back home.
        logout = browse(client, f"{site.url}/logout")
        assert logout.went_through(f"{site.url}/Shibboleth.sso/Logout?return="), logout.hops
        assert logout.hops[-1] == f"{site.url}/"
        assert "You are not signed in" in logout.response.text
        assert "__Host-shibwsgi" not in client.cookies
        assert get(client, f"{site.url}/api/me").status_code == 401


# -- 4. large attributes -------------------------------------------------------------------------


@pytest.mark.parametrize("size", [3_000, 20_000, 60_000], ids=["3KB", "20KB", "60KB"])
def test_large_group_lists_pass_the_shipped_configs(
    size: int, shib_whole_site: ShibSite, saml_idp: SamlIdP
) -> None:
    """uwsgi.ini's buffer-size = 65535 carries a group list up to the uwsgi packet's limit."""
    site = shib_whole_site
    groups = groups_of_size("bob", size)
    assert size - 50 < isMemberOf_bytes("bob", groups) <= size
    with site.client() as client:
        visit = log_in(client, site, saml_idp, "bob", groups=groups)
    assert visit.hops[-1] == f"{site.url}/api/me"
    assert visit.response.status_code == 200, visit.response.text[:500]
    assert_me(visit.response.json(), "bob", saml_idp, groups)


def test_large_group_list_with_many_client_headers_gets_431_not_500(
    shib_whole_site: ShibSite, saml_idp: SamlIdP
) -> None:
    """40 KB of groups and 28 KB of client headers do not fit one uwsgi packet: header-budget.lua
    sees mod_shib's variables (loaded before mod_lua) and answers 431, not Apache's 500."""
    site = shib_whole_site
    with site.client() as client:
        visit = log_in(client, site, saml_idp, "bob", groups=groups_of_size("bob", 40_000))
        assert visit.response.status_code == 200, visit.response.text[:500]
        seen = site.uwsgi.settled_packet_count()
        padding = {f"X-Pad-{n}": "p" * 7000 for n in range(4)}
        response = get(client, f"{site.url}/api/me", headers=padding)
    assert response.status_code == 431, response.text[:500]
    assert "Your sign-in carries too much information" in response.text
    assert site.uwsgi.settled_packet_count() == seen, "the request reached uWSGI"
    assert "AH10259" not in (site.root / "error.log").read_text(errors="replace")


@pytest.mark.parametrize(
    ("size", "status"),
    [
        pytest.param(0, 200, id="small identity passes"),
        pytest.param(3_000, 500, id="3KB dropped"),
        pytest.param(20_000, 500, id="20KB dropped"),
    ],
)
def test_default_uwsgi_buffer_size_drops_large_group_lists(
    size: int, status: int, shib_small_buffer_site: ShibSite, saml_idp: SamlIdP
) -> None:
    """The same request through uWSGI's default buffer-size (4096): the shipped setting matters."""
    site = shib_small_buffer_site
    groups = groups_of_size("bob", size) if size else 0
    dropped = site.uwsgi.log.read_text(errors="replace").count("invalid request block size")
    with site.client() as client:
        visit = log_in(client, site, saml_idp, "bob", groups=groups)
    assert visit.hops[-1] == f"{site.url}/api/me"
    assert visit.response.status_code == status, visit.response.text[:500]
    if status == 200:
        assert_me(visit.response.json(), "bob", saml_idp)
    else:
        wait_for_log(site.uwsgi.log, r"invalid request block size: \d+ \(max 4096\)", count=dropped + 1)


# -- 5. forged identity headers ------------------------------------------------------------------


@pytest.fixture(scope="module")
def saml_reader(shib_whole_site: ShibSite, saml_idp: SamlIdP) -> Iterator[requests.Session]:
    """bob (a reader), logged in on the whole-site server."""
    with shib_whole_site.client() as client:
        log_in(client, shib_whole_site, saml_idp, "bob")
        yield client


@pytest.mark.parametrize(("header", "value"), FORGED_HEADERS.items(), ids=FORGED_HEADERS)
def test_client_header_cannot_log_in_an_anonymous_request(
    header: str, value: str, shib_lazy_site: ShibSite, saml_idp: SamlIdP
) -> None:
    site = shib_lazy_site
    forged = {header: value}
    with site.client() as client:
        me = get(client, f"{site.url}/api/me", headers=forged)
        home = get(client, f"{site.url}/", headers=forged)
        write = client.post(f"{site.url}/api/movies", json=MOVIE, headers=forged, timeout=30)
        login = get(client, f"{site.url}/login?next=/", headers=forged)
    assert me.status_code == 401
    assert home.status_code == 200
    assert "You are not signed in" in home.text
    assert "mallory" not in home.text.lower()
    assert write.status_code == 401
    assert login.status_code == 302  # /login still needs a real SP session
    assert login.headers["Location"].startswith(saml_idp.sso_url)


@pytest.mark.parametrize(("header", "value"), FORGED_HEADERS.items(), ids=FORGED_HEADERS)
def test_client_header_cannot_change_a_logged_in_identity(
    header: str, value: str, shib_whole_site: ShibSite, saml_reader: requests.Session, saml_idp: SamlIdP
) -> None:
    site = shib_whole_site
    honest = get(saml_reader, f"{site.url}/api/me")
    forged = get(saml_reader, f"{site.url}/api/me", headers={header: value})
    assert honest.status_code == forged.status_code == 200
    assert forged.json() == honest.json()
    assert_me(forged.json(), "bob", saml_idp)
    write = saml_reader.post(f"{site.url}/api/movies", json=MOVIE, headers={header: value}, timeout=30)
    assert write.status_code == 403  # a forged isMemberOf does not make bob an editor


def test_all_forged_headers_at_once_change_nothing(
    shib_whole_site: ShibSite, saml_reader: requests.Session, saml_idp: SamlIdP
) -> None:
    site = shib_whole_site
    me = get(saml_reader, f"{site.url}/api/me", headers=FORGED_HEADERS)
    assert me.status_code == 200
    assert_me(me.json(), "bob", saml_idp)


# -- 8. a real browser ---------------------------------------------------------------------------

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.mark.parametrize("javascript", [True, False], ids=["auto-submit", "button without JavaScript"])
def test_browser_signs_in_through_saml_and_sees_the_movie_list(
    javascript: bool, shib_whole_site: ShibSite, saml_idp: SamlIdP
) -> None:
    chromium = require_program("chromium", "chromium")
    site = shib_whole_site
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(ignore_https_errors=True, java_script_enabled=javascript)
            page = context.new_page()
            page.goto(f"{site.url}/")
            # mod_shib sent the browser to the IdP, which asks who is signing in.
            assert page.url.startswith(saml_idp.sso_url)
            page.get_by_role("button", name=re.compile("Zoë Łukasz-Müller")).click()
            if not javascript:  # the POST form waits for its button
                page.get_by_role("button", name="Continue").click()
            page.wait_for_url(f"{site.url}/")
            expect(page.get_by_role("heading", name="Signed in as Zoë Łukasz-Müller 山田")).to_be_visible()
            expect(page.locator("#identity")).to_contain_text("editor")
            expect(page.locator("#movies tbody tr").first).to_be_visible()
            expect(page.locator("#movies")).to_contain_text("Titanic")
            if javascript:
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "saml-home.png"), full_page=True)
            context.close()
        finally:
            browser.close()
