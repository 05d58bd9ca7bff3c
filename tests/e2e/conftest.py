"""Fixtures for the SAML end-to-end tests: a pysaml2 IdP, shibd, and Apache + uWSGI sites.

Everything listens on 127.0.0.1 and is started once per test session, when a test first
needs it: the IdP and shibd (``shib_federation``), then per variant one Apache started from
the shipped apache/shibboleth.conf in front of one uWSGI started from the shipped
apache/uwsgi.ini (4 workers, the app's settings as docs/deployment.md gives them):

- ``shib_whole_site``: every request needs a Shibboleth session.
- ``shib_lazy_site``: ``-DPROTECTION_LAZY``; the app keeps the identity in its sqlite
  session store (``SHIBWSGI_SESSION``, ``SHIBWSGI_SECRET_KEY``).
- ``shib_small_buffer_site``: whole-site, but uWSGI with its default ``buffer-size`` (4096).
- ``shib_use_headers_site``: lazy, with ``ShibUseHeaders On`` (a broken copy, for the probe).

Teardown runs in reverse: Apache and uWSGI, then shibd, then the IdP.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING
from unittest import mock

import pytest
import requests
import stack
from stack import (
    CONFIGS,
    TLS,
    Uwsgi,
    apache_variables,
    https_client,
    require_apache,
    running_apache,
    running_uwsgi,
    self_signed_certificate,
    session_settings,
    shared_directory,
    watching,
)
from support import free_port

from .shibboleth_sp import APP_SETTINGS as SHIB_APP_SETTINGS
from .shibboleth_sp import ServiceProvider, running_federation

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from pathlib import Path

    from .saml_idp import SamlIdP

#: Test server variant -> apache2 switches
SHIB_VARIANTS = {
    "whole-site": (),
    "lazy": ("-DPROTECTION_LAZY",),
    "small-buffer": (),
    "lazy-use-headers": ("-DPROTECTION_LAZY",),
}
_LAZY_HEADERS_OFF = "ShibUseHeaders Off\n            Require shibboleth"
#: Test server variant -> edits of the shipped config (old -> new, each must apply)
SHIB_EDITS = {"lazy-use-headers": {_LAZY_HEADERS_OFF: _LAZY_HEADERS_OFF.replace("Off", "On")}}
#: The probe endpoint's token (``shibwsgi doctor --probe``), set in the Shibboleth sites.
PROBE_TOKEN = secrets.token_urlsafe(24)


@dataclass(frozen=True)
class SamlFederation:
    idp: SamlIdP
    sp: ServiceProvider
    https_ports: dict[str, int]  # variant -> the port its Apache listens on


@dataclass(frozen=True)
class ShibSite:
    """One Apache (mod_shib) in front of one uWSGI serving the movie app."""

    variant: str
    url: str  # https://127.0.0.1:<port>, no slash at the end
    root: Path  # Apache's directory: error.log, access.log
    uwsgi: Uwsgi
    tls: TLS

    def client(self) -> requests.Session:
        """A fresh client (no cookies) trusting the test certificate, ignoring REQUESTS_CA_BUNDLE & co."""
        return https_client(self.tls)


@pytest.fixture(scope="session")
def saml_tls() -> Iterator[TLS]:
    with self_signed_certificate() as certificate:
        yield certificate


@pytest.fixture(scope="session")
def shib_federation() -> Iterator[SamlFederation]:
    """The IdP (serving) and the SP's files with shibd running, all in one directory."""
    require_apache("shibboleth")  # apache2 and mod_shib
    ports = {variant: free_port() for variant in SHIB_VARIANTS}
    with (
        shared_directory("shibwsgi-saml-") as folder,
        running_federation(folder, ports.values()) as (idp, sp),
        watching(sp.log, sp.native_log),
    ):
        yield SamlFederation(idp, sp, ports)


@pytest.fixture(scope="session")
def saml_idp(shib_federation: SamlFederation) -> SamlIdP:
    return shib_federation.idp


@contextlib.contextmanager
def _shib_site(variant: str, federation: SamlFederation, tls: TLS) -> Iterator[ShibSite]:
    with (
        shared_directory(f"shibwsgi-{variant}-") as root,
        shared_directory(f"shibwsgi-{variant}-uwsgi-") as folder,
    ):
        settings = {
            **SHIB_APP_SETTINGS,
            "SHIBWSGI_PROBE_TOKEN": PROBE_TOKEN,
            "MOVIES_DB": str(folder / "movies.sqlite3"),
            "UWSGI_PROCESSES": "4",
        }
        if variant.startswith("lazy"):
            settings.update(session_settings(folder))
        buffer_size = 4096 if variant == "small-buffer" else None
        with _running_uwsgi(folder, buffer_size, **settings) as app:
            variables = apache_variables("shibboleth", root, tls, app.socket)
            variables["HTTPS_PORT"] = str(federation.https_ports[variant])
            variables["SHIB_CONFIG"] = str(federation.sp.config)
            config = _edited_config(root, SHIB_EDITS.get(variant, {}))
            # running_apache shows Apache's own logs with a failing test; this adds uWSGI's.
            with (
                watching(app.log),
                running_apache("shibboleth", root, variables, *SHIB_VARIANTS[variant], config=config),
            ):
                yield ShibSite(variant, f"https://127.0.0.1:{variables['HTTPS_PORT']}", root, app, tls)


def _edited_config(root: Path, edits: Mapping[str, str]) -> Path | None:
    """A copy of the shipped shibboleth.conf in ``root`` with ``edits``; None (the shipped file) without."""
    if not edits:
        return None
    text = (CONFIGS / "shibboleth.conf").read_text()
    for old, new in edits.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    config = root / "shibboleth.conf"
    config.write_text(text)
    return config


@contextlib.contextmanager
def _running_uwsgi(folder: Path, buffer_size: int | None, **variables: str) -> Iterator[Uwsgi]:
    """stack.running_uwsgi, with ``buffer_size`` instead of the ini's own when given."""
    if buffer_size is None:
        with running_uwsgi(folder, None, **variables) as app:
            yield app
        return
    # UWSGI_BUFFER_SIZE would not do: the ini's buffer-size wins over the environment
    # (uWSGI reads UWSGI_* first). Options after --ini win over it: a wrapper adds one.
    wrapper = folder / "uwsgi-small-buffer"
    wrapper.write_text(f'#!/bin/sh\nexec "{stack.require_uwsgi()}" "$@" --buffer-size {buffer_size}\n')
    wrapper.chmod(0o755)
    with contextlib.ExitStack() as servers:
        with mock.patch.object(stack, "require_uwsgi", return_value=str(wrapper)):
            app = servers.enter_context(running_uwsgi(folder, None, **variables))
        yield app


@pytest.fixture(scope="session")
def shib_whole_site(shib_federation: SamlFederation, saml_tls: TLS) -> Iterator[ShibSite]:
    with _shib_site("whole-site", shib_federation, saml_tls) as site:
        yield site


@pytest.fixture(scope="session")
def shib_lazy_site(shib_federation: SamlFederation, saml_tls: TLS) -> Iterator[ShibSite]:
    with _shib_site("lazy", shib_federation, saml_tls) as site:
        yield site


@pytest.fixture(scope="session")
def shib_use_headers_site(shib_federation: SamlFederation, saml_tls: TLS) -> Iterator[ShibSite]:
    with _shib_site("lazy-use-headers", shib_federation, saml_tls) as site:
        yield site


@pytest.fixture(scope="session")
def shib_small_buffer_site(shib_federation: SamlFederation, saml_tls: TLS) -> Iterator[ShibSite]:
    with _shib_site("small-buffer", shib_federation, saml_tls) as site:
        yield site
