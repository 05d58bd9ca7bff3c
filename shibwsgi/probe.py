"""Internal: the ``probe_path`` endpoint: what the front end really let through, for ``shibwsgi doctor --probe``.

It exists only when ``probe_token`` is set, and answers only a request carrying that token
(``X-Shibwsgi-Probe-Token``, compared in constant time); any other request for the path goes
to the app as if the endpoint did not exist. It reports, for that request alone, where the
probe's own marker values arrived (before and after the trust gate), the channel, the peer,
the size of the environ, the names and sizes of the identity variables present and, in the
environ channel, which of them also arrived as request headers (``ShibUseHeaders On``):
never a value of a real identity, never a cookie.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, RequestError
from .identity import Identity
from .responses import Response

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

Header = tuple[str, str]

__all__ = [
    "DEFAULT_PROBE_PATH",
    "MARKER",
    "REACHED_HEADER",
    "TOKEN_HEADER",
    "Probe",
    "marker_id",
    "probing",
]

DEFAULT_PROBE_PATH = "/_shibwsgi/probe"
TOKEN_HEADER = "X-Shibwsgi-Probe-Token"  # noqa: S105 - a header name
#: Added to the answer of a token-carrying request for any other path: it reached the app.
REACHED_HEADER = "X-Shibwsgi-Probe"
#: Every marker value the probe sends starts with this, then an id made with the token
#: (:func:`marker_id`): only such ids are reported, so no value of a real identity or
#: cookie is ever echoed, whatever its shape.
MARKER = "shibwsgi-probe-"
_MARKER_ID = re.compile(re.escape(MARKER) + r"([0-9a-f]{1,4}\.[0-9a-f]{12})")
_TOKEN_KEY = "HTTP_" + TOKEN_HEADER.upper().replace("-", "_")
_ARRIVED_KEY = "shibwsgi.probe.arrived"
_REFUSED_KEY = "shibwsgi.probe.refused"
_MIN_TOKEN = 16
_MAX_IDS = 256


class Probe:
    """The endpoint; ``read_keys``: the environ keys the app reads identity from."""

    def __init__(
        self, *, path: str, token: str, channel: str, profile: str, read_keys: Iterable[str]
    ) -> None:
        if (
            not isinstance(token, str)
            or len(token) < _MIN_TOKEN
            or not token.isascii()
            or not token.isprintable()
            or token != token.strip()  # front ends strip a header value's edges: it could never match
        ):
            raise ConfigError(
                "probe_token",
                f"must be at least {_MIN_TOKEN} printable ASCII characters, without spaces at either end",
            )
        self.path = path
        self._token = token.encode("ascii")
        self.channel = channel
        self.profile = profile
        self.read_keys = frozenset(read_keys)
        #: The request header keys an environ-channel variable would have if a front end also
        #: sent it as a header: the app reads the variable, any hop after the front end can forge the header.
        self.header_twins = (
            frozenset(_header_key(key) for key in self.read_keys if not key.startswith("HTTP_"))
            - {"HTTP_COOKIE"}
            if channel == "environ"
            else frozenset()
        )

    def __repr__(self) -> str:
        return f"<Probe path={self.path!r} token='***'>"

    def _marker_ids(self, value: str) -> list[str]:
        """The ids in ``value`` that this token made: nothing else a value holds is reported."""
        token = self._token.decode("ascii")
        ids = []
        for found in _MARKER_ID.findall(value)[:_MAX_IDS]:
            number = int(found.partition(".")[0], 16)
            if hmac.compare_digest(found, marker_id(token, number)):
                ids.append(found)
        return ids

    def admit(self, environ: WSGIEnvironment, path: str) -> tuple[bool, list[Header]]:
        """Before the trust gate: whether this is a probe request (if so, note where markers arrived).

        A request carrying the token to any other path is answered as usual, with
        ``X-Shibwsgi-Probe: reached`` added (the headers returned): the probe learns
        the path is not protected.
        """
        presented = environ.get(_TOKEN_KEY)
        if not isinstance(presented, str) or not hmac.compare_digest(
            presented.encode("latin-1", "replace"), self._token
        ):
            return False, []
        del environ[_TOKEN_KEY]
        if path != self.path:
            return False, [(REACHED_HEADER, "reached")]
        arrived = {
            key: ids
            for key, value in environ.items()
            if key != "HTTP_COOKIE"
            and isinstance(value, str)
            and MARKER in value
            and (ids := self._marker_ids(value))
        }
        # Before the gate, which may remove them; a key carrying the probe's own marker is the
        # client's header, reported under "markers", not the front end's.
        twins = sorted(
            key for key in self.header_twins if isinstance(environ.get(key), str) and key not in arrived
        )
        environ[_ARRIVED_KEY] = (arrived, _size(environ), twins)
        return True, []

    def identify(
        self, identify: Callable[[WSGIEnvironment], Identity | None], environ: WSGIEnvironment
    ) -> Identity | None:
        """The middleware's ``identify``, a refusal noted instead of raised: the probe reports it."""
        try:
            return identify(environ)
        except RequestError as exc:
            environ[_REFUSED_KEY] = exc.status
            return None

    def __call__(self, environ: WSGIEnvironment, front: Identity | None) -> Response:
        arrived, (keys, size), twins = environ.pop(_ARRIVED_KEY, ({}, (0, 0), []))
        report: dict[str, Any] = {
            "probe": "shibwsgi",
            "profile": self.profile,
            "channel": self.channel,
            "peer": environ.get("REMOTE_ADDR", ""),
            "markers": [
                {
                    "key": key,
                    "ids": ids,
                    "read_by_app": key in self.read_keys,
                    "removed_by_gate": key not in environ,
                }
                for key, ids in sorted(arrived.items())
            ],
            "environ": {"keys": keys, "bytes": size},
            "identity": {
                "present": front is not None,
                "refused": environ.pop(_REFUSED_KEY, None),
                "variables": {
                    key: len(value)
                    for key in sorted(self.read_keys)
                    if key != "HTTP_COOKIE" and isinstance(value := environ.get(key), str)
                },
                "headers": twins,
            },
        }
        body = json.dumps(report).encode()
        return Response(
            200,
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
            ],
            body if environ.get("REQUEST_METHOD") != "HEAD" else b"",
        )


def probing(probe: Probe | None, environ: WSGIEnvironment, path: str) -> tuple[Probe | None, list[Header]]:
    """The probe when this request is one for it, and the headers to add to the answer."""
    if probe is None:
        return None, []
    admitted, headers = probe.admit(environ, path)
    return (probe if admitted else None), headers


def marker_id(token: str, number: int) -> str:
    """The ``number``-th marker id of a probe run with ``token``: the number and its tag."""
    tag = hmac.new(token.encode("ascii"), f"marker {number}".encode(), "sha256").hexdigest()[:12]
    return f"{number:x}.{tag}"


def _header_key(name: str) -> str:
    """The WSGI key of a request header named ``name``."""
    return "HTTP_" + name.upper().replace("-", "_")


def _size(environ: WSGIEnvironment) -> tuple[int, int]:
    """Keys and bytes of the environ's text: what the front end sent, in effect."""
    texts = [(key, value) for key, value in environ.items() if isinstance(value, str)]
    return len(texts), sum(len(key) + len(value) for key, value in texts)
