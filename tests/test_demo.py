"""``make demo`` for real: uWSGI runs app/demo-uwsgi.ini and a browser-like client signs in over HTTP."""

from __future__ import annotations

import contextlib
import html
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests
from playwright.sync_api import Page, expect, sync_playwright
from support import IN_CI, free_port, require_program, wait_for_port

pytestmark = pytest.mark.servers

ROOT = Path(__file__).resolve().parent.parent
UWSGI = ROOT / ".venv" / "bin" / "uwsgi"
INI = ROOT / "app" / "demo-uwsgi.ini"
TIMEOUT = 10
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop uWSGI (die-on-term) and anything it left in its process group."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # its own session: workers and the HTTP router only


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of the demo under uWSGI, on a free port with a throwaway database."""
    if not os.access(UWSGI, os.X_OK):
        reason = f"{UWSGI} missing: run make demo (or pip install -e '.[test]') first"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("demo")
    port = free_port()
    # Only what this test sets: no SHIBWSGI_* or key from the developer's shell.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SHIBWSGI_", "DEVFRONTEND_", "MOVIES_"))
    }
    env.update(DEMO_PORT=str(port), MOVIES_DB=str(folder / "movies.sqlite3"))
    log_path = folder / "uwsgi.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(UWSGI), "--ini", str(INI)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=folder,
            start_new_session=True,
        )
    try:
        wait_for_port(port, process=process, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)
        # Shown by pytest only when a test failed.
        print(f"--- uWSGI log ({log_path}) ---\n{log_path.read_text(errors='replace')}")


def browser() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment for 127.0.0.1
    return session


def sign_in(session: requests.Session, base: str, user: str) -> requests.Response:
    """Follow the home page's login link to the front end's form and submit ``user``."""
    home = session.get(base + "/", timeout=TIMEOUT)
    link = re.search(r'href="(/login[^"]*)"', home.text)
    assert link, home.text
    form = session.get(urljoin(base, html.unescape(link.group(1))), timeout=TIMEOUT)
    assert form.status_code == 200
    assert form.url.startswith(base + "/Shibboleth.sso/Login?")
    assert 'value="ada"' in form.text
    target = re.search(r'name="target" value="([^"]*)"', form.text)
    assert target, form.text
    data = {"user": user, "target": html.unescape(target.group(1))}
    return session.post(base + "/Shibboleth.sso/Login", data=data, timeout=TIMEOUT)


def test_anonymous_home_page_offers_a_login_link(demo: str) -> None:
    home = browser().get(demo + "/", timeout=TIMEOUT)
    assert home.status_code == 200
    assert 'href="/login?next=/"' in home.text
    assert "Movie list" not in home.text


def test_sign_in_as_ada_shows_her_and_the_movies(demo: str) -> None:
    session = browser()
    landed = sign_in(session, demo, "ada")
    assert landed.status_code == 200
    assert landed.url == demo + "/"

    home = session.get(demo + "/", timeout=TIMEOUT)
    assert "Ada Editor" in home.text
    assert "Movie list" in home.text
    movies = session.get(demo + "/api/movies", timeout=TIMEOUT).json()
    assert movies
    for movie in movies:
        assert html.escape(movie["title"]) in home.text
    # Two worker processes: each must accept the front end's cookie.
    for _ in range(8):
        me = session.get(demo + "/api/me", timeout=TIMEOUT)
        assert me.status_code == 200
        assert me.json()["user"] == "ada@example.org"
        assert me.json()["attributes"]["groups"] == ["movie-editors", "staff"]

    logout = session.get(demo + "/logout", timeout=TIMEOUT)
    assert logout.url == demo + "/"
    assert session.get(demo + "/api/me", timeout=TIMEOUT).status_code == 401


def test_utf8_name_and_hundreds_of_groups_survive_uwsgi(demo: str) -> None:
    session = browser()
    sign_in(session, demo, "zoe")
    me = session.get(demo + "/api/me", timeout=TIMEOUT).json()
    assert me["user"] == "zoe@example.org"
    assert me["attributes"]["name"] == ["Zoë Łukasz-Müller 山田"]
    assert len(me["attributes"]["groups"]) == 402
    assert "urn:mace:example.org:group:r&d;archive" in me["attributes"]["groups"]
    assert "Zoë Łukasz-Müller 山田" in session.get(demo + "/", timeout=TIMEOUT).text


@pytest.fixture
def page() -> Iterator[Page]:
    """A fresh headless Chromium page (its own cookies)."""
    chromium = require_program("chromium", "chromium")
    with sync_playwright() as playwright:
        browser_ = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser_.new_page()
        finally:
            browser_.close()


def test_editor_changes_movies_on_the_page_in_chromium(demo: str, page: Page) -> None:
    """As a person would: sign in, add, edit, delete with the page's forms; two workers share the CSRF key."""
    page.goto(demo + "/")
    page.get_by_role("link", name="Log in").first.click()
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".badge")).to_have_text("editor")

    add = page.locator("#add-movie")
    add.get_by_label("Title").fill("Metropolis")
    add.get_by_label("Director").fill("Fritz Lang")
    add.get_by_label("Year").fill("1927")
    add.get_by_role("button", name="Add movie").click()
    expect(page.get_by_role("status")).to_have_text("Movie added.")
    row = page.locator("tr", has_text="Metropolis")
    expect(row).to_contain_text("ada@example.org")

    row.get_by_role("link", name="Edit").click()
    page.get_by_label("Main actor").fill("Brigitte Helm")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status")).to_have_text("Movie updated.")
    expect(page.locator("tr", has_text="Metropolis")).to_contain_text("Brigitte Helm")

    page.get_by_role("button", name="Delete Metropolis").click()
    expect(page.get_by_role("status")).to_have_text("Movie deleted.")
    expect(page.locator("tr", has_text="Metropolis")).to_have_count(0)


def test_reader_sees_why_there_are_no_forms_in_chromium(demo: str, page: Page) -> None:
    page.goto(demo + "/Shibboleth.sso/Login?target=/")
    page.get_by_label("Rob Reader").check()
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#read-only")).to_contain_text("movie-editors")
    expect(page.locator("form")).to_have_count(0)


def test_movie_list_fits_a_phone_in_chromium(demo: str, page: Page) -> None:
    """390 px wide: no sideways scrolling, every row's buttons on screen."""
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(demo + "/Shibboleth.sso/Login?target=/")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".badge")).to_have_text("editor")
    # Layout before the stylesheet arrives is the unstyled table (432 px): measure what a person sees.
    page.wait_for_load_state("load")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    for button in page.locator("td.actions .button").all():
        box = button.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    expect(page.locator("td[data-label='Director']").first).to_be_visible()
