"""A real OpenID Connect provider for the end-to-end tests: oidc-provider-mock on loopback.

It runs with client registration and nonces required, so a test registers the exact
redirect URI the deployment docs tell users to register, and mod_auth_openidc must send
a nonce. Users are JSON claims, given at start or changed at run time; a test "logs in"
by posting the user's ``sub`` to the authorization URL, as the provider's form does.
"""

from __future__ import annotations

import contextlib
import html
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import requests
from stack import stop
from support import free_port, require_pip_program, wait_for_port

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

#: The provider's paths (its discovery document names the same ones).
AUTHORIZE_PATH = "/oauth2/authorize"
END_SESSION_PATH = "/oauth2/end_session"
_HIDDEN_REDIRECT = re.compile(r'name="redirect_uri" value="([^"]*)"')
#: What apache/openidc.conf registers as its redirect URI, in both variants.
REDIRECT_PATH = "/login/redirect_uri"
#: The app's settings for mod_auth_openidc, as docs/deployment.md gives them.
APP_SETTINGS = {
    "SHIBWSGI_PROFILE": "openidc",
    "SHIBWSGI_ENCODING": "base64url",
    "SHIBWSGI_USER": "sub",
    "SHIBWSGI_ATTRIBUTES": "name=name email=email groups=groups:multi",
}
#: The test users: an editor whose claims carry what breaks weaker integrations (a name outside
#: latin-1, a group with a comma), and a reader.
ZOE = {
    "sub": "zoe",
    "name": "Zoë Łukasz-Müller 山田",
    "email": "zoe@example.org",
    "preferred_username": "zoe",
    "groups": ["movie-editors", "cn=a,b", "staff"],
}
RITA = {
    "sub": "rita",
    "name": "Rita Reader",
    "email": "rita@example.org",
    "preferred_username": "rita",
    "groups": ["staff"],
}


@dataclass(frozen=True)
class Registration:
    """A client registered at the provider."""

    client_id: str
    client_secret: str
    redirect_uri: str


@dataclass(frozen=True)
class Provider:
    url: str
    log: Path

    @property
    def metadata_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    def register(self, redirect_uri: str) -> Registration:
        """Register a confidential client (client_secret_basic) for ``redirect_uri``."""
        answer = self._call("POST", "/oauth2/clients", {"redirect_uris": [redirect_uri]})
        assert answer.status_code == 201, answer.text
        document = answer.json()
        return Registration(document["client_id"], document["client_secret"], redirect_uri)

    def client_variables(self, site_url: str) -> dict[str, str]:
        """Register the site at ``site_url`` (its REDIRECT_PATH); return Apache's OIDC_* variables for it."""
        client = self.register(site_url + REDIRECT_PATH)
        return {
            "OIDC_PROVIDER_METADATA_URL": self.metadata_url,
            "OIDC_CLIENT_ID": client.client_id,
            "OIDC_CLIENT_SECRET": client.client_secret,
        }

    def set_user(self, claims: Mapping[str, Any]) -> None:
        """Create or replace the user ``claims["sub"]`` with these claims."""
        body = {name: value for name, value in claims.items() if name != "sub"}
        answer = self._call("PUT", f"/users/{claims['sub']}", body)
        assert answer.status_code == 204, answer.text

    def is_login(self, url: str) -> bool:
        return url.startswith(f"{self.url}{AUTHORIZE_PATH}?")

    def log_in(self, browser: requests.Session, authorize_url: str, sub: str) -> str:
        """Approve ``authorize_url`` as user ``sub``; return where the provider sends the browser."""
        assert self.is_login(authorize_url), authorize_url
        for _ in range(3):
            answer = browser.post(authorize_url, data={"sub": sub}, allow_redirects=False, timeout=30)
            # The mock provider's list of recent users is not thread-safe: under parallel logins it
            # sometimes answers 500 "deque mutated during iteration". That is the stand-in's race,
            # not the app's: ask again.
            if not (answer.status_code == 500 and "deque mutated during iteration" in answer.text):
                break
        assert answer.status_code == 302, answer.text
        location = answer.headers["Location"]
        redirect_uri = parse_qs(urlsplit(authorize_url).query)["redirect_uri"][0]
        assert location.startswith(f"{redirect_uri}?code="), location
        return location

    def end_session(self, browser: requests.Session, end_session_url: str) -> str:
        """Confirm the provider's end-session page; return where it sends the browser back."""
        assert end_session_url.startswith(f"{self.url}{END_SESSION_PATH}?"), end_session_url
        page = browser.get(end_session_url, allow_redirects=False, timeout=30)
        assert page.status_code == 200, page.text
        found = _HIDDEN_REDIRECT.search(page.text)
        assert found is not None, f"no post_logout_redirect_uri in the end-session page:\n{page.text}"
        answer = browser.post(
            f"{self.url}{END_SESSION_PATH}/confirm",
            data={"redirect_uri": html.unescape(found.group(1))},
            allow_redirects=False,
            timeout=30,
        )
        assert answer.status_code == 302, answer.text
        return str(answer.headers["Location"])

    def _call(self, method: str, path: str, body: Any) -> requests.Response:
        with requests.Session() as session:
            session.trust_env = False  # no proxy for loopback, whatever the environment says
            return session.request(method, f"{self.url}{path}", json=body, timeout=30)


def require_oidc_provider() -> str:
    """The oidc-provider-mock program (pip install -e .[test]); a skip, or a failure in CI."""
    return require_pip_program("oidc-provider-mock")


@contextlib.contextmanager
def running_provider(folder: Path, users: Iterable[Mapping[str, Any]] = ()) -> Iterator[Provider]:
    """The provider on 127.0.0.1, knowing ``users`` (claims with a ``sub``), its log in ``folder``."""
    program = require_oidc_provider()
    port = free_port()
    command = [program, "--host", "127.0.0.1", "--port", str(port)]
    command += ["--require-registration", "true", "--require-nonce", "true"]
    for claims in users:
        command += ["--user-claims", json.dumps(claims, ensure_ascii=False)]
    log = folder / "oidc-provider.log"
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        try:
            wait_for_port(port, timeout=30, process=process)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{log.read_text(errors='replace')}") from exc
        yield Provider(f"http://127.0.0.1:{port}", log)
    finally:
        stop(process)
