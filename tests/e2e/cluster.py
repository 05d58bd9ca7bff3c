"""Two app nodes behind Apache's mod_proxy_balancer, sessions in one redis-server.

Shared by tests/e2e/test_app_nodes.py and the soak (bench/soak.py). Started from the shipped
files: apache/openidc.conf with ``-DPROTECTION_LAZY -DUWSGI_BALANCER`` (lazy style: the app
keeps the identity in its Redis session), two uWSGI instances from apache/uwsgi.ini
(``UWSGI_SOCKET`` and ``UWSGI_SOCKET_2``, 2 workers each), real logins at oidc-provider-mock.
The balancer has no stickiness, so consecutive requests alternate between the nodes; which
node served a request is read from the nodes' own request logs (each request carries a
unique marker ``n=...`` in its query string).

After a login a :class:`Visitor` sends only the app's cookie: the identity then comes from
the shared session store alone, which is what the nodes must agree on.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import os
import random
import re
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stack import (
    Redis,
    Uwsgi,
    apache_variables,
    running_apache,
    running_uwsgi,
    self_signed_certificate,
    shared_directory,
    wait_for_log,
    watching,
)

from .test_oidc import API, APP_COOKIE, APP_SETTINGS, REDIRECT_PATH, Site

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    import requests

    from .oidc_provider import Provider

USERS = [
    {
        "sub": f"node-user-{n}",
        "name": f"Node User {n}",
        "email": f"u{n}@example.org",
        "groups": ["movie-editors"],
    }
    for n in range(8)
]
_markers = itertools.count()


@dataclass(frozen=True)
class Cluster:
    site: Site  # site.uwsgi is node A
    nodes: tuple[Uwsgi, Uwsgi]
    redis: Redis
    folder: Path
    later: contextlib.ExitStack  # servers a test restarts, stopped with the cluster

    def served_by(self, marker: str) -> int:
        """Which node (0 or 1) logged the request carrying ``marker``."""
        pattern = rf"[?&]n={marker}[& ]"
        for _ in range(100):
            found = [n for n, node in enumerate(self.nodes) if _logged(node, pattern)]
            if found:
                (node,) = found
                return node
            time.sleep(0.05)
        raise AssertionError(f"no node logged the request {marker}")

    def app_client(self, cookie: str) -> requests.Session:
        """A client holding only the app's session cookie."""
        client = self.site.browser()
        client.cookies.set(APP_COOKIE, cookie, domain="127.0.0.1", path="/")
        return client

    def log_in(self, sub: str) -> str:
        """Log ``sub`` in for real; return the app's session cookie."""
        with self.site.browser() as browser:
            landed = self.site.log_in(browser, "/login?next=/api/me", sub)
            assert landed.status_code == 200, landed.text
            assert landed.json()["user"] == sub
            return str(browser.cookies[APP_COOKIE])


def _logged(node: Uwsgi, pattern: str) -> bool:
    return re.search(pattern, node.log.read_text(errors="replace")) is not None


def marker() -> str:
    """A value unique to one request, for its ``n=`` query parameter."""
    return f"{next(_markers)}x{secrets.token_hex(3)}"


@contextlib.contextmanager
def running_cluster(
    folder: Path, provider: Provider, redis: Redis, later: contextlib.ExitStack
) -> Iterator[Cluster]:
    """Two uWSGI nodes (the movie database in ``folder``, sessions in ``redis``) behind Apache."""
    settings = {
        **APP_SETTINGS,
        "UWSGI_PROCESSES": "2",
        "MOVIES_DB": str(folder / "movies.sqlite3"),
        "SHIBWSGI_SESSION": redis.url,
        "SHIBWSGI_SECRET_KEY": secrets.token_urlsafe(32),
    }
    with (
        shared_directory("shibwsgi-nodes-") as root,
        shared_directory("shibwsgi-node-a-") as folder_a,
        shared_directory("shibwsgi-node-b-") as folder_b,
        running_uwsgi(folder_a, None, **settings) as node_a,
        running_uwsgi(folder_b, None, **settings) as node_b,
        self_signed_certificate() as tls,
    ):
        for node in (node_a, node_b):
            wait_for_log(node.log, r"WSGI app 0 \(mountpoint=''\) ready", count=2, timeout=60)
        variables = apache_variables("openidc", root, tls, node_a.socket)
        variables["UWSGI_SOCKET_2"] = node_b.socket
        url = f"https://127.0.0.1:{variables['HTTPS_PORT']}"
        client = provider.register(url + REDIRECT_PATH)
        variables["OIDC_PROVIDER_METADATA_URL"] = provider.metadata_url
        variables["OIDC_CLIENT_ID"] = client.client_id
        variables["OIDC_CLIENT_SECRET"] = client.client_secret
        with (
            watching(node_a.log, node_b.log, redis.log),
            running_apache("openidc", root, variables, "-DPROTECTION_LAZY", "-DUWSGI_BALANCER"),
        ):
            yield Cluster(Site(url, root, node_a, tls, provider), (node_a, node_b), redis, folder, later)


def excerpt(text: str) -> str:
    """The start of a page's readable text (an HTML page's style sheet would hide its message)."""
    text = re.sub(r"(?s)<style.*?</style>|<[^>]+>", " ", text)
    return " ".join(text.split())[:300]


@dataclass
class Outcome:
    kind: str
    status: int
    seen: str | None  # the user the response names, if any
    body: str
    movie: int | None = None  # the movie a successful write made or changed


class Visitor:
    """One client with only the app's session cookie, sending mixed requests; every answer
    is checked for the user it names."""

    def __init__(self, cluster: Cluster, user: str, cookie: str, seed: int) -> None:
        self.cluster = cluster
        self.user = user
        self.client = cluster.app_client(cookie)
        self.random = random.Random(seed)
        self.movies: list[int] = []

    def request(self, tag: str) -> Outcome:
        site, mark = self.cluster.site, f"{tag}{marker()}"
        roll = self.random.random()
        if roll < 0.35:
            answer = site.get(self.client, f"/api/me?n={mark}", headers=API)
            return self._outcome("me", answer, lambda d: d.get("user"))
        if roll < 0.55:
            answer = site.get(self.client, f"/?n={mark}")
            seen = self.user if answer.ok and f"<dd>{self.user}</dd>" in answer.text else None
            return Outcome("page", answer.status_code, seen, excerpt(answer.text))
        if roll < 0.75 or not self.movies:
            answer = self.client.post(
                f"{site.url}/api/movies?n={mark}",
                json={"title": f"{self.user} {mark}"},
                headers=API,
                timeout=30,
            )
            return self._outcome("create", answer, lambda d: d.get("created_by"))
        movie = self.random.choice(self.movies)
        if roll < 0.95:
            answer = self.client.put(
                f"{site.url}/api/movies/{movie}?n={mark}", json={"director": mark}, headers=API, timeout=30
            )
            return self._outcome("update", answer, lambda d: d.get("updated_by"))
        answer = site.get(self.client, f"/api/movies/{movie}?n={mark}", headers=API)
        return self._outcome("read", answer, lambda d: d.get("created_by"))

    def delete(self) -> Outcome:
        """Delete one of this visitor's movies (204 names nobody: checked by status only)."""
        movie = self.movies.pop(self.random.randrange(len(self.movies)))
        answer = self.client.delete(f"{self.cluster.site.url}/api/movies/{movie}?n=D{marker()}", timeout=30)
        return Outcome(
            "delete", answer.status_code, self.user if answer.status_code == 204 else None, answer.text
        )

    def log_out(self) -> Outcome:
        """The app's /logout, then the old cookie must be anonymous (401)."""
        site = self.cluster.site
        out = site.get(self.client, f"/logout?n=O{marker()}")
        after = site.get(self.client, f"/api/me?n=A{marker()}", headers=API)
        self.client.close()
        ok = out.status_code == 302 and after.status_code == 401
        return Outcome(
            "logout", 302 if ok else out.status_code, self.user if ok else None, excerpt(after.text)
        )

    def _outcome(self, kind: str, answer: requests.Response, named: Callable[[Any], Any]) -> Outcome:
        seen, movie = None, None
        if answer.ok:
            document = answer.json()
            seen, movie = named(document), document.get("id")
            if kind == "create":
                self.movies.append(movie)
        return Outcome(kind, answer.status_code, seen, excerpt(answer.text), movie)


def logged_in_visitors(cluster: Cluster, count: int) -> list[Visitor]:
    """``count`` visitors, each a different one of USERS, logged in for real at once."""
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        cookies = list(pool.map(cluster.log_in, [user["sub"] for user in USERS[:count]]))
    return [Visitor(cluster, USERS[n]["sub"], cookies[n], seed=n) for n in range(count)]


EXPECTED = {"me": 200, "page": 200, "create": 201, "update": 200, "read": 200, "delete": 204, "logout": 302}


def worker_pids(node: Uwsgi) -> list[int]:
    """The node's live worker processes, from its log."""
    pids = [
        int(pid) for pid in re.findall(r"uWSGI worker \d+ \(pid: (\d+)", node.log.read_text(errors="replace"))
    ]
    return [pid for pid in pids if _alive(pid)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
