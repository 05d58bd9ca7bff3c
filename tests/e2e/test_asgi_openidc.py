"""A real mod_auth_openidc identity carried to an ASGI server as headers, as the docs say.

Apache with mod_auth_openidc, logged in for real at oidc-provider-mock, proxies with
``mod_proxy_http`` to uvicorn (``--no-proxy-headers``) serving tests/e2e/asgi_site.py under
``shibwsgi.asgi.SSOMiddleware`` (profile openidc, channel headers, Apache's address trusted,
the proxy secret). The ``<Location>`` block and ``ProxyPass`` lines are read from
docs/deployment.md ("Apache in front of an ASGI server", the mod_auth_openidc block) and run
as written: only the app's port and the secret are filled in.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
from typing import TYPE_CHECKING, Any

import pytest
import requests
from stack import REPO, serving, shared_directory
from support import free_port, require_program

from .oidc_provider import APP_SETTINGS, REDIRECT_PATH, RITA, ZOE, Provider, running_provider
from .test_asgi_stack import running_asgi

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.servers

SECRET = secrets.token_urlsafe(24)
BROWSER_ACCEPT = "text/html,application/xhtml+xml,*/*;q=0.8"
#: The docs' mod_auth_openidc recipe: the first apache block after this sentence.
RECIPE_MARK = "For mod_auth_openidc"
MODULES = [
    "mpm_event",
    "authn_core",
    "authz_core",
    "authz_user",
    "headers",
    "proxy",
    "proxy_http",
    "auth_openidc",
]


def docs_recipe(app_port: int) -> str:
    """The mod_auth_openidc block of docs/deployment.md, pointed at ``app_port``."""
    text = (REPO / "docs" / "deployment.md").read_text()
    after = text[text.index(RECIPE_MARK) :]
    found = re.search(r"```apache\n(.*?)```", after, re.DOTALL)
    assert found is not None, "no apache block after the mod_auth_openidc sentence"
    assert "127.0.0.1:8000" in found.group(1)
    return found.group(1).replace("127.0.0.1:8000", f"127.0.0.1:{app_port}")


def apache_config(root: Path, port: int, app_port: int, provider: Provider) -> str:
    client = provider.client_variables(f"http://127.0.0.1:{port}")
    loads = [f"LoadModule {name}_module /usr/lib/apache2/modules/mod_{name}.so" for name in MODULES]
    return "\n".join(
        [
            f'ServerRoot "{root}"',
            "ServerName 127.0.0.1",
            f"Listen 127.0.0.1:{port}",
            "DefaultRuntimeDir .",
            "PidFile httpd.pid",
            "ErrorLog error.log",
            "LogLevel warn",
            *loads,
            *(["User www-data", "Group www-data"] if os.geteuid() == 0 else []),
            f'Define SHIBWSGI_PROXY_SECRET "{SECRET}"',
            f"OIDCProviderMetadataURL {client['OIDC_PROVIDER_METADATA_URL']}",
            f"OIDCClientID {client['OIDC_CLIENT_ID']}",
            f"OIDCClientSecret {client['OIDC_CLIENT_SECRET']}",
            f"OIDCCryptoPassphrase {secrets.token_urlsafe(32)}",
            f"OIDCRedirectURI {REDIRECT_PATH}",
            'OIDCScope "openid email profile"',
            # As apache/openidc.conf passes them.
            "OIDCPassClaimsAs environment base64url",
            "OIDCPassIDTokenAs claims payload",
            "OIDCPassUserInfoAs claims json",
            docs_recipe(app_port),
        ]
    )


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    with running_provider(tmp_path_factory.mktemp("oidc-provider"), [ZOE, RITA]) as running:
        yield running


@pytest.fixture(scope="module")
def site(provider: Provider) -> Iterator[tuple[str, str]]:
    """Apache + mod_auth_openidc in front of uvicorn: Apache's URL and the app's."""
    apache2 = require_program("apache2", "apache2")
    settings = {
        **APP_SETTINGS,
        "SHIBWSGI_CHANNEL": "headers",
        "SHIBWSGI_TRUSTED_PROXIES": "127.0.0.1",
        "SHIBWSGI_PROXY_SECRET": SECRET,
    }
    with shared_directory("shibwsgi-asgi-openidc-") as root, running_asgi("uvicorn", root, settings) as app:
        port = free_port()
        config = root / "httpd.conf"
        config.write_text(apache_config(root, port, app, provider))
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        with serving([apache2, "-d", str(root), "-f", str(config), "-DFOREGROUND"], root, port, env):
            yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{app}"


def signed_in(url: str, provider: Provider, sub: str) -> requests.Session:
    """A client logged in as ``sub`` at the provider, through Apache's module."""
    browser = requests.Session()
    browser.trust_env = False
    browser.headers["Accept"] = BROWSER_ACCEPT
    start = browser.get(url + "/identity", allow_redirects=False, timeout=30)
    assert start.status_code == 302, f"{start.status_code} {start.text[:500]}"
    callback = provider.log_in(browser, start.headers["Location"], sub)
    assert callback.startswith(url + REDIRECT_PATH), callback
    answer = browser.get(callback, timeout=30)
    assert answer.status_code == 200, f"{answer.status_code} {answer.text[:500]}"
    return browser


@pytest.fixture(scope="module")
def zoe(site: tuple[str, str], provider: Provider) -> Iterator[requests.Session]:
    with contextlib.closing(signed_in(site[0], provider, "zoe")) as browser:
        yield browser


def _b64(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


#: Rita's identity as a client would forge it, every header the recipe sets and more.
FORGED = {
    "OIDC-CLAIM-sub": _b64("rita"),
    "OIDC-CLAIM-email": _b64("rita@example.org"),
    "Oidc-Claim-Groups": _b64("admins"),
    "OIDC-CLAIM-iss": _b64("https://idp.evil.example"),
    "OIDC-CLAIM-sid": _b64("forged-session"),
    "OIDC-CLAIM-auth-time": _b64("0"),
    "OIDC-userinfo-json": _b64(json.dumps({"sub": "rita", "groups": ["admins"]})),
    "OIDC-id-token-payload": _b64(json.dumps({"sub": "rita", "iss": "https://idp.evil.example"})),
    "OIDC_CLAIM_sub": _b64("rita"),
    "Remote-User": "rita",
}


def identity(browser: requests.Session, url: str, **kwargs: Any) -> dict[str, Any]:
    answer = browser.get(url + "/identity", allow_redirects=False, timeout=30, **kwargs)
    assert answer.status_code == 200, f"{answer.status_code} {answer.text[:500]}"
    document: dict[str, Any] = answer.json()
    return document


def assert_is_zoe(document: dict[str, Any], provider: Provider) -> None:
    assert document["user"] == "zoe"
    assert document["profile"] == "openidc"
    assert document["provider"] == provider.url
    # UTF-8 intact through base64url headers; the comma group one value (the JSON documents).
    assert document["attributes"] == {
        "name": ["Zoë Łukasz-Müller 山田"],
        "email": ["zoe@example.org"],
        "groups": ["movie-editors", "cn=a,b", "staff"],
    }
    assert document["session_id"] != "forged-session"
    assert not document["authenticated_at"].startswith("1970")


def test_provider_login_is_seen_by_the_asgi_app(
    site: tuple[str, str], provider: Provider, zoe: requests.Session
) -> None:
    assert_is_zoe(identity(zoe, site[0]), provider)


def test_client_forged_oidc_headers_through_apache_are_overwritten(
    site: tuple[str, str], provider: Provider, zoe: requests.Session
) -> None:
    assert_is_zoe(identity(zoe, site[0], headers=FORGED), provider)


def test_forged_oidc_headers_through_apache_without_a_login_reach_nothing(site: tuple[str, str]) -> None:
    answer = requests.get(site[0] + "/me", headers={**FORGED, "Accept": "application/json"}, timeout=30)
    assert answer.status_code == 401


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(FORGED, id="forged claims"),
        pytest.param({**FORGED, "X-Shibwsgi-Proxy-Secret": "guess"}, id="guessed secret"),
    ],
)
def test_forged_oidc_headers_straight_to_uvicorn_identify_nobody(
    site: tuple[str, str], headers: dict[str, str]
) -> None:
    assert requests.get(site[1] + "/me", headers=headers, timeout=30).json() == {"user": None}
