"""TestSigner keys saved and loaded: a key set in one process, its tokens from another."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from webtest import TestApp

from shibwsgi import SSOMiddleware
from shibwsgi.testing import environ_for
from shibwsgi.testing.signed import TestSigner
from tests.helpers import echo_app

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
def test_saved_signer_loads_with_the_same_key(algorithm: str, tmp_path: Path) -> None:
    signer = TestSigner(algorithm, issuer="https://idp.example.org", audience="movies")
    signer.save(tmp_path / "key.json")
    loaded = TestSigner.load(tmp_path / "key.json")
    assert (loaded.algorithm, loaded.kid, loaded.issuer, loaded.audience) == (
        algorithm,
        signer.kid,
        signer.issuer,
        "movies",
    )
    assert loaded.jwks == signer.jwks


def test_key_file_is_private(tmp_path: Path) -> None:
    TestSigner().save(tmp_path / "key.json")
    assert (tmp_path / "key.json").stat().st_mode & 0o777 == 0o600
    assert [path.name for path in tmp_path.iterdir()] == ["key.json"]  # no temporary file left


def test_save_without_replace_keeps_the_first_key(tmp_path: Path) -> None:
    first = TestSigner()
    first.save(tmp_path / "key.json")
    with pytest.raises(FileExistsError):
        TestSigner().save(tmp_path / "key.json", replace=False)
    assert TestSigner.load(tmp_path / "key.json").kid == first.kid
    assert [path.name for path in tmp_path.iterdir()] == ["key.json"]


def test_save_replaces_by_default(tmp_path: Path) -> None:
    TestSigner().save(tmp_path / "key.json")
    second = TestSigner()
    second.save(tmp_path / "key.json")
    assert TestSigner.load(tmp_path / "key.json").kid == second.kid


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("{}", id="empty document"),
        pytest.param(
            '{"algorithm": "ES256", "kid": "k", "issuer": "i", "audience": "a", "private_key": "x"}',
            id="not a key",
        ),
    ],
)
def test_load_refuses_what_save_did_not_write(text: str, tmp_path: Path) -> None:
    (tmp_path / "key.json").write_text(text)
    with pytest.raises(ValueError, match=r"is not a key file TestSigner\.save wrote"):
        TestSigner.load(tmp_path / "key.json")


def test_load_refuses_a_key_of_the_wrong_type(tmp_path: Path) -> None:
    TestSigner("RS256").save(tmp_path / "key.json")
    text = (tmp_path / "key.json").read_text().replace('"RS256"', '"ES256"')
    (tmp_path / "key.json").write_text(text)
    with pytest.raises(ValueError, match="cannot sign ES256"):
        TestSigner.load(tmp_path / "key.json")


def test_token_from_another_process_verifies_against_this_key_set(tmp_path: Path) -> None:
    signer = TestSigner()
    signer.save(tmp_path / "key.json")
    app = SSOMiddleware(
        echo_app, profile="pomerium", jwks=signer.jwks, issuer=signer.issuer, audience=signer.audience
    )
    script = (
        "import sys, json\n"
        "from shibwsgi.testing import environ_for\n"
        "from shibwsgi.testing.signed import TestSigner\n"
        "signer = TestSigner.load(sys.argv[1])\n"
        "print(json.dumps(environ_for('pomerium', 'zoe@example.org', signer=signer)))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "key.json")],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    environ = json.loads(output)
    assert TestApp(app).get("/", extra_environ=environ).json["identity"]["user"] == "zoe@example.org"
    # And a key the server never saw is refused.
    stranger = environ_for("pomerium", "zoe@example.org", signer=TestSigner())
    assert TestApp(app).get("/", extra_environ=stranger, status=401)
