"""The doctor never hangs, never raises, never blows up memory: configs httpd and nginx refuse are findings."""

from __future__ import annotations

import os
import sys
import tracemalloc
from pathlib import Path

import pytest
from support import require_program
from test_doctor import Case

from shibwsgi.doctor import ERROR, Finding, Location, diagnose
from shibwsgi.doctor.pitfalls import PITFALLS


def pitfalls(findings: list[Finding]) -> set[str]:
    return {f.pitfall for f in findings}


LOOP_FILE = "Include {root}/conf.d/*.conf\nListen 80\n"


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        pytest.param(
            Case(
                apache="Include {root}/conf.d/*.conf\n",
                files={f"conf.d/{name}.conf": LOOP_FILE for name in "abc"},
            ),
            "include-loop",
            id="three files that each include conf.d/*.conf",
        ),
        pytest.param(
            Case(apache="Include {root}/apache.conf\n"), "include-loop", id="apache file includes itself"
        ),
        pytest.param(Case(apache="Include /dev/zero\n"), "unreadable-file", id="apache Include /dev/zero"),
        pytest.param(
            Case(apache="Include {root}/nothing/*.conf\n"),
            "missing-include",
            id="apache Include glob matching nothing",
        ),
        pytest.param(
            Case(apache="<VirtualHost *:443>\nProxyPass / uwsgi://127.0.0.1:3031/\n"),
            "unterminated-section",
            id="apache VirtualHost never closed",
        ),
        pytest.param(
            Case(apache="<VirtualHost *:443>\n</Location>\n"),
            "unterminated-section",
            id="apache section closed by another name",
        ),
        pytest.param(Case(apache="</VirtualHost>\n"), "unterminated-section", id="apache close without open"),
        pytest.param(
            Case(apache="<VirtualHost *:443\n</VirtualHost>\n"),
            "unterminated-section",
            id="apache section line without its closing bracket",
        ),
        pytest.param(
            Case(apache="<VirtualHost *:443>\nProxyPass / uwsgi://[::1:3031/\n</VirtualHost>\n"),
            "bad-proxy-url",
            id="apache ProxyPass to an unparsable IPv6 URL",
        ),
        pytest.param(
            Case(apache="<Location />\nSetHandler proxy:uwsgi://[::1/\n</Location>\n"),
            "bad-proxy-url",
            id="apache SetHandler proxy to an unparsable URL",
        ),
        pytest.param(
            Case(nginx="events {}\nhttp {\ninclude {root}/nginx.conf;\n}\n"),
            "include-loop",
            id="nginx file includes itself",
        ),
        pytest.param(
            Case(
                nginx="events {}\nhttp {\ninclude {root}/loop/*.conf;\n}\n",
                files={
                    "loop/a.conf": "include {root}/loop/*.conf;\n",
                    "loop/b.conf": "include {root}/loop/*.conf;\n",
                },
            ),
            "include-loop",
            id="nginx include loop through a glob",
        ),
        pytest.param(
            Case(nginx="http {\ninclude {root}/missing.conf;\n}\n"),
            "missing-include",
            id="nginx include of a missing file",
        ),
        pytest.param(
            Case(nginx="http {\nserver {\nlisten 80;\n}\n"),
            "unterminated-section",
            id="nginx block never closed",
        ),
        pytest.param(
            Case(nginx="http {\n}\n}\n"), "unterminated-section", id="nginx unexpected closing brace"
        ),
        pytest.param(
            Case(nginx="http {\nlisten 80\n}\n"),
            "unterminated-section",
            id="nginx directive without semicolon at the end",
        ),
        pytest.param(Case(nginx="include /dev/zero;\n"), "unreadable-file", id="nginx include /dev/zero"),
    ],
)
def test_refused_config_is_an_error_not_a_hang(tmp_path: Path, case: Case, expected: str) -> None:
    findings = case.run(tmp_path)
    assert expected in pitfalls(findings), findings
    assert all(f.severity == ERROR for f in findings if f.pitfall == expected)


def test_fifo_include_does_not_block(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.conf")
    (tmp_path / "apache.conf").write_text(f"Include {tmp_path}/pipe.conf\n")
    findings, _ = diagnose(apache=[tmp_path / "apache.conf"])
    assert pitfalls(findings) == {"unreadable-file"}


def test_entry_that_cannot_be_stat_ed_is_a_finding(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "loop.conf").symlink_to(tmp_path / "conf.d" / "loop.conf")  # ELOOP
    (tmp_path / "apache.conf").write_text(f"Include {tmp_path}/conf.d/\n")
    findings, _ = diagnose(apache=[tmp_path / "apache.conf"])
    assert pitfalls(findings) == {"unreadable-file"}


def test_symlinked_directory_loop_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "self").symlink_to(tmp_path / "conf.d")
    (tmp_path / "conf.d" / "a.conf").write_text("Listen 80\n")
    (tmp_path / "apache.conf").write_text(f"Include {tmp_path}/conf.d/\n")
    findings, _ = diagnose(apache=[tmp_path / "apache.conf"])
    assert not findings


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        pytest.param(
            "apache", "<IfModule x>\nListen 80\n" * 3000 + "</IfModule>\n" * 3000, id="3000 nested IfModule"
        ),
        pytest.param("nginx", "http {\nlisten 80;\n" * 3000 + "}\n" * 3000, id="3000 nested nginx blocks"),
    ],
)
def test_deep_nesting_takes_linear_memory(tmp_path: Path, kind: str, text: str) -> None:
    path = tmp_path / "deep.conf"
    path.write_text(text)
    tracemalloc.start()
    try:
        diagnose(**{kind: [path]})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 1024 * 1024  # copying the section stack per directive took ~1 GB


def test_roles_hook_is_not_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "imported"
    (tmp_path / "explosive_roles.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nraise SystemExit('the app ran at import')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    case = Case(uwsgi="[uwsgi]\nbuffer-size = 65535\nenv = SHIBWSGI_ROLES=explosive_roles:roles_for\n")
    assert not case.run(tmp_path)
    assert not marker.exists()
    assert "explosive_roles" not in sys.modules


def test_roles_hook_of_the_wrong_form_is_an_invalid_setting(tmp_path: Path) -> None:
    case = Case(uwsgi="[uwsgi]\nbuffer-size = 65535\nenv = SHIBWSGI_ROLES=not a hook\n")
    assert pitfalls(case.run(tmp_path)) == {"invalid-setting"}


def test_every_finding_id_is_registered_and_documented() -> None:
    with pytest.raises(ValueError, match="PITFALLS"):
        Finding(ERROR, "no-such-pitfall", Location("x"), "p", "f")
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert [pitfall for pitfall in PITFALLS if f"| `{pitfall}` |" not in readme] == []


NGINX_MAIN = "events {}\nhttp {\n    server {\n        listen 127.0.0.1:1;\n%s\n    }\n}\n"
APACHE_MAIN = "ServerRoot {root}\nLoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so\nListen 127.0.0.1:1\nErrorLog {root}/error.log\nPidFile {root}/pid\n%s\n"


@pytest.mark.servers
@pytest.mark.parametrize(
    ("case", "message"),
    [
        pytest.param(
            Case(nginx=NGINX_MAIN % "        include {root}/missing.conf;"),
            "missing.conf",
            id="nginx -t refuses an include of a missing file",
        ),
        pytest.param(
            Case(nginx=NGINX_MAIN % "        no_such_directive on;"),
            'unknown directive "no_such_directive"',
            id="nginx -t refuses what the doctor's reader accepts",
        ),
        pytest.param(
            Case(apache=APACHE_MAIN % "Include {root}/nothing*.conf"),
            "No matches for the wildcard",
            id="apache2 -t refuses an Include glob matching nothing",
        ),
        pytest.param(
            Case(apache=APACHE_MAIN % "NoSuchDirective on"),
            "NoSuchDirective",
            id="apache2 -t refuses what the doctor's reader accepts",
        ),
    ],
)
def test_installed_server_refusal_is_an_error_with_its_message(
    tmp_path: Path, case: Case, message: str
) -> None:
    require_program("apache2" if case.apache else "nginx", "apache2" if case.apache else "nginx")
    findings = case.run(tmp_path, servers=True)
    refusals = [f for f in findings if f.pitfall == "server-refuses"]
    assert refusals and message in refusals[0].problem and refusals[0].severity == ERROR, findings


@pytest.mark.servers
@pytest.mark.parametrize(
    "case",
    [
        pytest.param(Case(nginx=NGINX_MAIN % "        location / { return 200; }"), id="nginx"),
        pytest.param(Case(apache=APACHE_MAIN % "ServerName localhost"), id="apache"),
    ],
)
def test_installed_server_accepting_the_config_adds_nothing(tmp_path: Path, case: Case) -> None:
    require_program("apache2" if case.apache else "nginx", "apache2" if case.apache else "nginx")
    assert [f for f in case.run(tmp_path, servers=True) if f.pitfall.startswith("server-")] == []
