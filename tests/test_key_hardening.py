"""Signing keys and verified tokens under attack: slow key URLs, floods of made-up kids, rotation races,
ambiguous key sets, deep claims, the token cache's memory, and the openidc ID token's user."""

from __future__ import annotations

import gc
import json
import logging
import secrets
import socket
import threading
import time
import tracemalloc
import urllib.error
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from helpers import echo_app
from support import in_thread
from webtest import TestApp

from shibwsgi import ConfigError, Identity, SSOMiddleware
from shibwsgi.assertions import AssertionVerifier, TokenCache, _pem_key, flatten, load_jwks
from shibwsgi.keys import MAX_REMEMBERED_KIDS, KeysUnavailable, RemoteKeys, StaticKeys, http_get
from shibwsgi.lru import footprint
from shibwsgi.testing import environ_for
from shibwsgi.testing.signed import TestSigner

POMERIUM = "HTTP_X_POMERIUM_JWT_ASSERTION"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def signer() -> TestSigner:
    return TestSigner("ES256")


@pytest.fixture(scope="module")
def rsa_signer() -> TestSigner:
    return TestSigner("RS256")


# -- a total deadline per fetch ---------------------------------------------------------------


class DrippingServer:
    """A raw socket server on loopback that answers one line every ``pause`` seconds, for a long time."""

    def __init__(self, lines: list[bytes], pause: float = 0.1) -> None:
        self.lines = lines
        self.pause = pause
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)  # accept() wakes up to see ``stop``
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/jwks.json"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with connection:
                connection.recv(65536)
                for line in self.lines:
                    if self.stop.wait(self.pause):
                        return
                    try:
                        connection.sendall(line)
                    except OSError:
                        break

    def __enter__(self) -> DrippingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.listener.close()


#: 300 lines at 0.1 s: half a minute of answer, each read well inside any per-read timeout.
DRIP_HEADERS = [b"HTTP/1.1 200 OK\r\n", *[b"X-Drip: 1\r\n"] * 300]
DRIP_BODY = [b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", *[b" "] * 300]


@pytest.mark.parametrize(
    "lines",
    [
        pytest.param(DRIP_HEADERS, id="drips header lines"),
        pytest.param(DRIP_BODY, id="drips a body without length"),
    ],
)
def test_key_url_that_drips_its_answer_is_cut_at_the_total_deadline(lines: list[bytes]) -> None:
    with DrippingServer(lines) as server:
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"within 0\.5 s"):
            http_get(server.url, 0.5)
        # The answer would take 30 s; a per-read timeout never fires on it.
        assert time.monotonic() - started < 10


def test_dripping_key_url_is_a_503_within_the_deadline(signer: TestSigner) -> None:
    with DrippingServer(DRIP_HEADERS) as server:
        keys = RemoteKeys(server.url, load_jwks, timeout=0.5)
        verifier = AssertionVerifier(
            key=POMERIUM, keys=keys, audience=(signer.audience,), algorithms=("ES256",), issuer=signer.issuer
        )
        with pytest.raises(Exception, match="unavailable") as excinfo:
            verifier.claims({POMERIUM: signer.sign(signer.claims("alice"))})
        assert excinfo.value.status == 503  # type: ignore[attr-defined]


class RedirectingServer:
    """A loopback HTTP server: ``/jwks.json`` is the key set, any other path redirects as told."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        self.redirects: dict[str, str] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path in server.redirects:
                    self.send_response(302)
                    self.send_header("Location", server.redirects[self.path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps(jwks).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def redirecting(signer: TestSigner) -> Iterator[RedirectingServer]:
    server = RedirectingServer(signer.jwks)
    with in_thread(server.httpd):
        yield server


def test_redirect_on_the_key_urls_origin_is_followed(
    redirecting: RedirectingServer, signer: TestSigner
) -> None:
    redirecting.redirects["/old"] = "/jwks.json"
    assert json.loads(http_get(redirecting.origin + "/old", 5)) == signer.jwks


@pytest.mark.parametrize(
    "location",
    [
        pytest.param("http://localhost:{port}/jwks.json", id="another host name"),
        pytest.param("http://127.0.0.1:1/jwks.json", id="another port"),
        pytest.param("https://127.0.0.1:{port}/jwks.json", id="another scheme"),
        pytest.param("http://evil.example.net/jwks.json", id="another site"),
        pytest.param("file:///etc/passwd", id="a file url"),
    ],
)
def test_redirect_off_the_key_urls_origin_is_refused(redirecting: RedirectingServer, location: str) -> None:
    port = redirecting.origin.rsplit(":", 1)[1]
    redirecting.redirects["/moved"] = location.format(port=port)
    with pytest.raises(ValueError, match="another origin"):
        http_get(redirecting.origin + "/moved", 5)


def test_redirect_loop_is_refused(redirecting: RedirectingServer) -> None:
    redirecting.redirects["/a"] = "/b"
    redirecting.redirects["/b"] = "/a"
    with pytest.raises(ValueError, match="more than 3"):
        http_get(redirecting.origin + "/a", 5)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://keys.example.org/jwks.json", id="plain http to a remote host"),
        pytest.param("http://10.0.0.5/jwks.json", id="plain http to a private address"),
        pytest.param("ftp://keys.example.org/jwks.json", id="ftp"),
        pytest.param("https:///jwks.json", id="no host"),
        pytest.param("https://keys.example.org:99999/jwks.json", id="port out of range"),
    ],
)
def test_key_url_that_could_be_swapped_on_the_way_is_refused_at_start_up(url: str) -> None:
    with pytest.raises(ConfigError, match="jwks_url"):
        RemoteKeys(url, load_jwks)


@pytest.mark.parametrize(
    "url",
    [
        "https://keys.example.org/jwks.json",
        "http://127.0.0.1:8080/jwks",
        "http://[::1]/jwks",
        "http://localhost/k",
    ],
)
def test_https_and_loopback_http_key_urls_are_accepted(url: str) -> None:
    assert RemoteKeys(url, load_jwks).url == url


# -- no lock across I/O; cached keys served while one refresh runs ----------------------------


class BlockingFetch:
    """A key URL whose answers are held until the test lets them go."""

    def __init__(self, documents: Callable[[str], bytes]) -> None:
        self.documents = documents
        self.release = threading.Event()
        self.release.set()
        self.started = threading.Event()
        self.urls: list[str] = []

    def __call__(self, url: str, timeout: float) -> bytes:
        self.urls.append(url)
        self.started.set()
        assert self.release.wait(10)
        return self.documents(url)


def run(target: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(target()), daemon=True)
    thread.start()
    return thread, results


def test_requests_with_cached_keys_do_not_wait_for_a_slow_refresh(signer: TestSigner) -> None:
    fetch = BlockingFetch(lambda url: json.dumps(signer.jwks).encode())
    clock = FakeClock()
    keys = RemoteKeys("https://idp.example.org/jwks", load_jwks, fetch=fetch, clock=clock)
    cached = keys.get(signer.kid)
    assert cached is not None

    clock.now += 3601  # the hourly refresh is due, and the key URL is slow today
    fetch.release.clear()
    fetch.started.clear()
    refresher, refreshed = run(lambda: keys.get(signer.kid))
    assert fetch.started.wait(5)
    others = [run(lambda: keys.get(signer.kid)) for _ in range(8)]
    for thread, results in others:
        thread.join(5)
        # Served while the refresh is still held: they did not wait for it, nor start another.
        assert results == [cached]
    assert refresher.is_alive()
    assert keys.fetches == 2
    fetch.release.set()
    refresher.join(5)
    assert refreshed == [cached]


def test_unknown_kid_waits_for_the_running_fetch_that_brings_it(signer: TestSigner) -> None:
    newcomer = TestSigner("ES256")
    published = [signer]
    fetch = BlockingFetch(lambda url: json.dumps({"keys": [s.jwk for s in published]}).encode())
    clock = FakeClock()
    keys = RemoteKeys("https://idp.example.org/jwks", load_jwks, fetch=fetch, clock=clock)
    assert keys.get(signer.kid) is not None
    clock.now += 10
    published.append(newcomer)
    fetch.release.clear()
    fetch.started.clear()
    first, first_result = run(lambda: keys.get(newcomer.kid))
    assert fetch.started.wait(5)
    second, second_result = run(lambda: keys.get(newcomer.kid))
    fetch.release.set()
    first.join(5)
    second.join(5)
    assert first_result[0] is not None and second_result == first_result
    assert keys.fetches == 2  # one flight for both


# -- made-up kids: negative cache, own budget, bounded rate -------------------------------------


def jwks_fetch(published: list[TestSigner]) -> Callable[[str, float], bytes]:
    return lambda url, timeout: json.dumps({"keys": [s.jwk for s in published]}).encode()


def test_flood_of_random_kids_does_not_keep_a_real_new_key_out(signer: TestSigner) -> None:
    published = [signer]
    clock = FakeClock()
    keys = RemoteKeys("https://idp.example.org/jwks", load_jwks, fetch=jwks_fetch(published), clock=clock)
    assert keys.get(signer.kid) is not None
    rotated = TestSigner("ES256")
    published.append(rotated)  # not announced in advance: it appears with its first tokens
    waited = 0
    while keys.get(rotated.kid) is None and waited < 30:
        for _ in range(20):
            assert keys.get(secrets.token_hex(8)) is None
        clock.now += 1
        waited += 1
    assert waited <= 6, "the new key waited longer than the refetch interval"


def test_flood_of_random_kids_does_not_starve_a_real_new_alb_key(signer: TestSigner) -> None:
    pems = {signer.kid: signer.public_pem}

    def fetch(url: str, timeout: float) -> bytes:
        kid = url.rsplit("/", 1)[1]
        if kid not in pems:
            raise urllib.error.HTTPError(url, 404, "Not Found", None, None)  # type: ignore[arg-type]
        return pems[kid]

    clock = FakeClock()
    keys = RemoteKeys("https://public-keys.example.org/{kid}", _pem_key, fetch=fetch, clock=clock)
    assert keys.get(signer.kid) is not None
    rotated = TestSigner("ES256")
    pems[rotated.kid] = rotated.public_pem
    loaded_after = None
    for second in range(120):
        # Each second: the attacker's fresh kids, interleaved with the real users' requests.
        for _ in range(10):
            keys.get(secrets.token_hex(8))
            keys.get(secrets.token_hex(8))
            if keys.get(rotated.kid) is not None:
                loaded_after = second
                break
        if loaded_after is not None:
            break
        clock.now += 1
    assert loaded_after is not None and loaded_after <= 12


@pytest.mark.parametrize(
    "per_kid", [pytest.param(False, id="key set"), pytest.param(True, id="one key per kid")]
)
def test_flood_of_random_kids_fetches_at_most_ten_times_a_minute(per_kid: bool, signer: TestSigner) -> None:
    fetched: list[str] = []

    def fetch(url: str, timeout: float) -> bytes:
        fetched.append(url)
        if per_kid:
            raise urllib.error.HTTPError(url, 404, "Not Found", None, None)  # type: ignore[arg-type]
        return json.dumps(signer.jwks).encode()

    clock = FakeClock()
    url = "https://keys.example.org/{kid}" if per_kid else "https://keys.example.org/jwks"
    keys = RemoteKeys(url, _pem_key if per_kid else load_jwks, fetch=fetch, clock=clock)
    for _ in range(600):  # ten made-up kids a second for a minute
        for _ in range(10):
            assert keys.get(secrets.token_hex(8)) is None
        clock.now += 0.1
    assert len(fetched) <= 11


def test_a_kid_that_missed_starts_no_fetch_until_its_miss_expires(signer: TestSigner) -> None:
    fetched: list[str] = []

    def fetch(url: str, timeout: float) -> bytes:
        fetched.append(url)
        return json.dumps(signer.jwks).encode()

    clock = FakeClock()
    keys = RemoteKeys("https://keys.example.org/jwks", load_jwks, fetch=fetch, clock=clock, miss_ttl=30)
    assert keys.get("made-up") is None
    for _ in range(25):
        clock.now += 1
        assert keys.get("made-up") is None
    assert len(fetched) == 1  # remembered as missing, though the refetch interval allowed more
    clock.now += 10
    assert keys.get("made-up") is None
    assert len(fetched) == 2


def test_remembered_kids_are_bounded(signer: TestSigner) -> None:
    clock = FakeClock()
    keys = RemoteKeys("https://keys.example.org/jwks", load_jwks, fetch=jwks_fetch([signer]), clock=clock)
    for _ in range(5):
        for _ in range(MAX_REMEMBERED_KIDS * 2):
            keys.get(secrets.token_hex(8))
        clock.now += 7
    assert len(keys._misses) <= MAX_REMEMBERED_KIDS
    assert len(keys._wanted) <= MAX_REMEMBERED_KIDS


# -- the generation race ------------------------------------------------------------------------


class RotatingKeys(StaticKeys[Any]):
    """Keys whose set is replaced (a key retired) while a token is being verified."""

    def get(self, kid: str | None) -> Any:
        key = super().get(kid)
        self.generation += 1
        return key


def test_token_verified_while_its_key_is_retired_is_not_cached(signer: TestSigner) -> None:
    keys = RotatingKeys(load_jwks(json.dumps(signer.jwks).encode()))
    verifier = AssertionVerifier(
        key=POMERIUM, keys=keys, audience=(signer.audience,), algorithms=("ES256",), issuer=signer.issuer
    )
    token = signer.sign(signer.claims("alice"))
    assert verifier.claims({POMERIUM: token})["sub"] == "alice"
    assert verifier.cache.get(token, keys.generation) is None  # stamped with the generation before


# -- key sets: duplicate kids, alg binding ------------------------------------------------------


def test_static_key_set_with_a_duplicate_kid_is_refused(signer: TestSigner) -> None:
    twin = TestSigner("ES256", kid=signer.kid)
    with pytest.raises(ConfigError, match="more than once"):
        SSOMiddleware(
            echo_app,
            profile="pomerium",
            jwks={"keys": [signer.jwk, twin.jwk]},
            issuer=signer.issuer,
            audience=signer.audience,
        )


def test_fetched_key_set_with_a_duplicate_kid_refuses_that_kid(
    signer: TestSigner, caplog: pytest.LogCaptureFixture
) -> None:
    twin, other = TestSigner("ES256", kid=signer.kid), TestSigner("ES256")
    document = {"keys": [signer.jwk, twin.jwk, other.jwk]}
    keys = RemoteKeys(
        "https://keys.example.org/jwks", load_jwks, fetch=lambda url, t: json.dumps(document).encode()
    )
    with caplog.at_level(logging.WARNING, logger="shibwsgi"):
        assert keys.get(signer.kid) is None  # neither: the twin's holder would be anyone with either key
    assert "more than once" in caplog.text
    assert keys.get(other.kid) is not None


def pss_token(signer: TestSigner, claims: dict[str, Any]) -> str:
    return jwt.encode(claims, signer.private_key, algorithm="PS256", headers={"kid": signer.kid})


def test_rs256_key_does_not_verify_a_ps256_token(rsa_signer: TestSigner) -> None:
    app = TestApp(
        SSOMiddleware(
            echo_app,
            profile="pomerium",
            jwks=rsa_signer.jwks,  # the JWK says alg RS256
            issuer=rsa_signer.issuer,
            audience=rsa_signer.audience,
            algorithms=["RS256", "PS256"],
        )
    )
    app.get("/", extra_environ={POMERIUM: pss_token(rsa_signer, rsa_signer.claims("alice"))}, status=401)
    token = rsa_signer.sign(rsa_signer.claims("alice"))
    assert app.get("/", extra_environ={POMERIUM: token}).json["remote_user"] == "alice"


def test_jwk_without_alg_verifies_any_configured_algorithm_its_key_fits(rsa_signer: TestSigner) -> None:
    jwk = {name: value for name, value in rsa_signer.jwk.items() if name != "alg"}
    app = TestApp(
        SSOMiddleware(
            echo_app,
            profile="pomerium",
            jwks={"keys": [jwk]},
            issuer=rsa_signer.issuer,
            audience=rsa_signer.audience,
            algorithms=["RS256", "PS256"],
        )
    )
    token = pss_token(rsa_signer, rsa_signer.claims("alice"))
    assert app.get("/", extra_environ={POMERIUM: token}).json["remote_user"] == "alice"


# -- deep claims --------------------------------------------------------------------------------


def nested(depth: int) -> dict[str, Any]:
    document: dict[str, Any] = {"leaf": "x"}
    for _ in range(depth):
        document = {"a": document}
    return document


def test_claims_nested_100k_deep_flatten_without_recursion_error() -> None:
    flat = flatten({"sub": "alice", "deep": nested(100_000)})
    assert flat["sub"] == "alice"
    assert "deep.a.a" in flat
    assert footprint(flat) > 0


def test_dotted_claim_name_does_not_shadow_the_nested_claim() -> None:
    flat = flatten({"realm_access.roles": ["admin"], "realm_access": {"roles": ["reader"]}})
    assert flat["realm_access.roles"] == ["reader"]
    assert flatten({"realm_access.roles": ["admin"]})["realm_access.roles"] == ["admin"]


def test_signed_token_nested_past_the_json_parsers_limit_is_never_a_500(signer: TestSigner) -> None:
    app = TestApp(
        SSOMiddleware(
            echo_app, profile="pomerium", jwks=signer.jwks, issuer=signer.issuer, audience=signer.audience
        )
    )
    claims = json.dumps(signer.claims("alice"))
    deep = '{"a":' * 1500 + "1" + "}" * 1500  # deeper than json.loads nests on Python 3.11
    payload = (claims[:-1] + ', "deep": ' + deep + "}").encode()
    token = jwt.api_jws.PyJWS().encode(payload, signer.private_key, "ES256", {"kid": signer.kid})
    assert len(token) < 16384
    response = app.get("/", extra_environ={POMERIUM: token}, status="*")
    # Refused where the JSON parser gives up, alice where it copes (and flattening must not recurse).
    assert response.status_int == 401 or response.json["remote_user"] == "alice"


# -- the token cache's memory -------------------------------------------------------------------


def test_token_cache_stays_within_its_byte_bound(signer: TestSigner) -> None:
    """Tokens of 1 KB with identities of 40 groups: sized as twice the token, the cache held about 4x."""
    bound = 1 << 20
    cache = TokenCache(max_entries=100_000, max_bytes=bound)
    groups = [f"cn=group-{n:03d},ou=groups,dc=example,dc=org" for n in range(40)]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for number in range(2000):
            token = f"eyJ{number:08d}." + "x" * 1000 + ".sig"
            identity = Identity(
                f"user-{number}@example.org",
                {"groups": tuple(f"{g}-{number}" for g in groups), "email": (f"u{number}@example.org",)},
            )
            cache.put(token, identity, time.time() + 300, 0)
        del token, identity
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < bound * 1.25 + 256 * 1024, f"{held / 2**20:.2f} MiB held"
    assert len(cache._tokens) > 50  # it does keep tokens


# -- openidc: the verified ID token names the user ---------------------------------------------


def openidc(signer: TestSigner, **options: Any) -> TestApp:
    defaults: dict[str, Any] = {
        "profile": "openidc",
        "jwks": signer.jwks,
        "issuer": signer.issuer,
        "audience": signer.audience,
    }
    return TestApp(SSOMiddleware(echo_app, **{**defaults, **options}))


@pytest.mark.parametrize(
    ("options", "environ"),
    [
        pytest.param({"user": "REMOTE_USER"}, {"REMOTE_USER": "mallory"}, id="REMOTE_USER for another user"),
        pytest.param(
            {"user": "REMOTE_USER"},
            {"REMOTE_USER": "mallory@issuer.example.org"},
            id="REMOTE_USER another user at the issuer",
        ),
        pytest.param(
            {"user": "email"}, {"OIDC_CLAIM_email": "mallory@example.org"}, id="user claim the id token lacks"
        ),
        pytest.param(
            {"user": ["eppn", "sub"]},
            {"OIDC_CLAIM_eppn": "mallory@example.org"},
            id="first user claim only in the variables",
        ),
        pytest.param(
            {"user": "email"},
            {"OIDC_userinfo_json": json.dumps({"sub": "alice", "email": "mallory@example.org"})},
            id="user claim from userinfo",
        ),
    ],
)
def test_alices_id_token_does_not_sign_in_another_user(
    rsa_signer: TestSigner, options: dict[str, Any], environ: dict[str, str]
) -> None:
    token = rsa_signer.sign(rsa_signer.claims("alice"))
    response = openidc(rsa_signer, **options).get(
        "/", extra_environ={**environ, "OIDC_id_token": token}, status=401
    )
    assert "mallory" not in response.text


@pytest.mark.parametrize(
    "remote_user",
    [
        pytest.param("alice", id="OIDCRemoteUserClaim sub"),
        pytest.param("alice@issuer.example.org", id="OIDCRemoteUserClaim sub@ (the default)"),
    ],
)
def test_remote_user_in_mod_auth_openidc_forms_of_the_tokens_sub_is_accepted(
    rsa_signer: TestSigner, remote_user: str
) -> None:
    token = rsa_signer.sign(rsa_signer.claims("alice"))
    app = openidc(rsa_signer, user="REMOTE_USER")
    environ = {"REMOTE_USER": remote_user, "OIDC_id_token": token}
    assert app.get("/", extra_environ=environ).json["remote_user"] == remote_user


def test_user_claim_in_the_id_token_is_accepted(rsa_signer: TestSigner) -> None:
    token = rsa_signer.sign(rsa_signer.claims("alice", {"email": "alice@example.org"}))
    app = openidc(rsa_signer, user="email")
    environ = {**environ_for("openidc", "alice", {"email": "alice@example.org"}), "OIDC_id_token": token}
    assert app.get("/", extra_environ=environ).json["remote_user"] == "alice@example.org"


def headers_environ(user: str, token: str) -> dict[str, str]:
    environ = environ_for("openidc", user, channel="headers")
    return {**environ, "HTTP_OIDC_ID_TOKEN": token, "REMOTE_ADDR": "10.0.0.2"}


def test_openidc_id_token_through_the_headers_channel_is_verified(rsa_signer: TestSigner) -> None:
    app = openidc(rsa_signer, channel="headers", trusted_proxies=["10.0.0.0/24"])
    token = rsa_signer.sign(rsa_signer.claims("alice"))
    assert app.get("/", extra_environ=headers_environ("alice", token)).json["remote_user"] == "alice"
    # The claim headers say mallory, the verified token alice: sources naming two users are refused.
    app.get("/", extra_environ=headers_environ("mallory", token), status=400)
    forged = TestSigner("RS256").sign(rsa_signer.claims("mallory"))
    app.get("/", extra_environ=headers_environ("mallory", forged), status=401)


def test_openidc_id_token_header_from_an_untrusted_peer_is_dropped(rsa_signer: TestSigner) -> None:
    app = openidc(rsa_signer, channel="headers", trusted_proxies=["10.0.0.0/24"])
    token = rsa_signer.sign(rsa_signer.claims("alice"))
    environ = {**headers_environ("alice", token), "REMOTE_ADDR": "192.0.2.1"}
    response = app.get("/", extra_environ=environ)
    assert response.json["identity"] is None
    assert "HTTP_OIDC_ID_TOKEN" not in response.json["http_keys"]


def test_keys_unavailable_is_the_exception_a_503_maps_from() -> None:
    def down(url: str, timeout: float) -> bytes:
        raise ConnectionRefusedError("refused")

    keys = RemoteKeys("https://keys.example.org/jwks", load_jwks, fetch=down)
    with pytest.raises(KeysUnavailable, match="refused"):
        keys.get("any")
