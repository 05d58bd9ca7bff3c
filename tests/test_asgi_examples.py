"""The FastAPI, Quart and Django-ASGI examples, driven in-process through the ASGI test client."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from shibwsgi.testing import sso_asgi_client

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EDITOR = ("ada", {"email": "ada@example.org", "groups": ["movie-editors", "staff"]})
READER = ("rob", {"email": "rob@example.org", "groups": ["staff"]})


def load(framework: str) -> ModuleType:
    """examples/<framework>/app.py, imported from its file (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(
        f"asgi_example_{framework}", EXAMPLES / framework / "app.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def get(app: Any, path: str, who: tuple[str, dict[str, Any]] | None, **headers: str) -> httpx.Response:
    async def run() -> httpx.Response:
        user, attributes = who if who else (None, None)
        async with sso_asgi_client(app, user, attributes) as client:
            return await client.get(path, headers={"Accept": "application/json", **headers})

    return asyncio.run(run())


CASES = [
    pytest.param("/", EDITOR, 200, {"user": "ada", "email": "ada@example.org"}, id="signed in user"),
    pytest.param("/editors", EDITOR, 200, {"editor": "ada"}, id="editor passes the group check"),
    pytest.param("/editors", READER, 403, None, id="reader refused by the group check"),
    pytest.param("/", None, 401, None, id="anonymous refused"),
]


@pytest.mark.parametrize("framework", ["fastapi", "quart"])
@pytest.mark.parametrize(("path", "who", "status", "body"), CASES)
def test_example(framework: str, path: str, who: Any, status: int, body: dict[str, Any] | None) -> None:
    response = get(load(framework).app, path, who)
    assert response.status_code == status
    if body is not None:
        assert {key: response.json()[key] for key in body} == body


@pytest.mark.parametrize("framework", ["fastapi", "quart"])
def test_example_forged_headers_straight_to_the_server_are_nobody(framework: str) -> None:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=load(framework).app, client=("203.0.113.7", 4444))
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
            return await client.get("/", headers={"X-Forwarded-User": "ada", "Remote-User": "ada"})

    assert asyncio.run(run()).status_code == 401


def test_fastapi_example_roles_and_websocket() -> None:
    app = load("fastapi").app
    assert get(app, "/admin", EDITOR).status_code == 200
    assert get(app, "/admin", READER).json() == {
        "error": "access denied: requires role 'admin'",
        "status": 403,
    }
    assert get(app, "/health", None).json() == {"ok": True, "signed_in": False}


DJANGO_SCRIPT = """
import asyncio, json, sys
sys.path.insert(0, sys.argv[1])
from asgisite.asgi import application
from shibwsgi.testing import sso_asgi_client

async def main():
    results = []
    for path, user, attributes in json.loads(sys.argv[2]):
        async with sso_asgi_client(application, user, attributes) as client:
            response = await client.get(path)
        results.append([response.status_code, response.json()])
    print(json.dumps(results))

asyncio.run(main())
"""


def test_django_asgi_example() -> None:
    # A process of its own: Django's settings are global, and the Django tests configure others.
    requests = [["/", *EDITOR], ["/editors", *EDITOR], ["/editors", *READER], ["/", None, None]]
    done = subprocess.run(
        [sys.executable, "-c", DJANGO_SCRIPT, str(EXAMPLES / "django-asgi"), json.dumps(requests)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        [200, {"user": "ada", "email": "ada@example.org"}],
        [200, {"editor": "ada"}],
        [403, {"error": "only movie editors"}],
        [401, {"error": "log in first"}],
    ]


def readme_block(heading: str) -> str:
    """The first python code block after ``heading`` in README.md."""
    text = (EXAMPLES.parent / "README.md").read_text()
    after = text[text.index(f"\n{heading}\n") :]
    return after[after.index("```python\n") + len("```python\n") :].split("\n```", 1)[0]


@pytest.mark.parametrize(
    ("heading", "path", "body"),
    [
        pytest.param("### FastAPI", "/editors", {"editor": "ada"}, id="FastAPI"),
        pytest.param("### Quart", "/", {"user": "ada", "email": "ada@example.org"}, id="Quart"),
    ],
)
def test_readme_quick_start_runs(heading: str, path: str, body: dict[str, str]) -> None:
    namespace: dict[str, Any] = {"__name__": "readme_quick_start"}  # Quart(__name__) finds no file: cwd
    exec(compile(readme_block(heading), f"README {heading}", "exec"), namespace)
    app = namespace["app"]
    assert get(app, path, EDITOR).json() == body
    assert get(app, path, None).status_code == 401


def test_readme_fastapi_quick_start_roles_and_refusals() -> None:
    namespace: dict[str, Any] = {}
    exec(compile(readme_block("### FastAPI"), "README", "exec"), namespace)
    app = namespace["app"]
    assert get(app, "/admin", EDITOR).json() == {"area": "admin"}
    assert get(app, "/admin", READER).status_code == 403
    assert get(app, "/editors", READER).json()["status"] == 403


def test_readme_django_asgi_quick_start_is_the_example_s_entry_point() -> None:
    example = (EXAMPLES / "django-asgi" / "asgisite" / "asgi.py").read_text()
    code = readme_block("### Django under ASGI").split("\n", 1)[1]  # after the comment line
    assert code.strip() in example


def test_readme_testing_snippet_runs() -> None:
    namespace: dict[str, Any] = {"sso_asgi_client": sso_asgi_client, "app": load("fastapi").app}
    exec(compile(readme_block("### Testing ASGI apps"), "README", "exec"), namespace)
    asyncio.run(namespace["test_editor_page"]())
