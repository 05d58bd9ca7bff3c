"""An Authelia-style front end for real: nginx auth_request + Remote-* headers -> uWSGI -> the app.

The forward-auth stand-in of tests/stack.py answers nginx's subrequest for Authelia's
``/api/authz/auth-request``: its session cookie names the user, and it answers 2xx with the
``Remote-*`` headers Authelia sets for that user, else 401. nginx copies the answer into
the uwsgi vars the way Authelia's nginx guide copies it into ``proxy_set_header``. The
movie app (apache/uwsgi.ini) runs the ``authelia`` profile, trusting nginx's address
(127.0.0.2) only; attackers connect from 127.0.0.3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
import requests
from requests.adapters import HTTPAdapter
from stack import (
    OAUTH2_PROXY_COOKIE,
    running_fake_oauth2_proxy,
    running_uwsgi,
    serving,
    shared_directory,
    wait_for_log,
    watching,
)
from support import free_port, require_program, wait_for_port

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

pytestmark = pytest.mark.servers

NGINX_ADDRESS = "127.0.0.2"
ATTACKER_ADDRESS = "127.0.0.3"
PORTAL = "https://auth.example.org/"

#: What the stand-in answers per session cookie, as Authelia's handleAuthzAuthorizedStandard
#: does (http.server writes header values as latin-1: UTF-8 bytes are handed over that way).
USERS: Mapping[str, Mapping[str, str]] = {
    "zoe": {
        "Remote-User": "zoe",
        "Remote-Groups": "movie-editors,staff",
        "Remote-Name": "Zoë Łukasz 山田".encode().decode("latin-1"),
        "Remote-Email": "zoe@example.org",
    },
    "bob": {"Remote-User": "bob", "Remote-Groups": "", "Remote-Name": "Bob", "Remote-Email": ""},
}
FORGED = {
    "Remote-User": "mallory",
    "Remote-Groups": "movie-editors",
    "Remote-Name": "Mallory",
    "Remote-Email": "mallory@example.org",
    "Remote_User": "mallory",
    "Remote_Groups": "movie-editors",
    "X-Remote-User": "mallory",
}

NGINX_CONFIG = """
worker_processes 1;
pid nginx.pid;
error_log error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log access.log;
    client_body_temp_path client_body_temp;
    proxy_temp_path proxy_temp;
    fastcgi_temp_path fastcgi_temp;
    uwsgi_temp_path uwsgi_temp;
    scgi_temp_path scgi_temp;
    underscores_in_headers off;
    server {{
        listen {nginx}:{port};
        location / {{
            auth_request /internal/authelia/authz;
            auth_request_set $user $upstream_http_remote_user;
            auth_request_set $groups $upstream_http_remote_groups;
            auth_request_set $name $upstream_http_remote_name;
            auth_request_set $email $upstream_http_remote_email;
            error_page 401 =302 {portal}?rd=$scheme://$http_host$request_uri;
            uwsgi_param QUERY_STRING $query_string;
            uwsgi_param REQUEST_METHOD $request_method;
            uwsgi_param CONTENT_TYPE $content_type;
            uwsgi_param CONTENT_LENGTH $content_length;
            uwsgi_param PATH_INFO $document_uri;
            uwsgi_param SERVER_PROTOCOL $server_protocol;
            uwsgi_param SERVER_NAME $server_name;
            uwsgi_param SERVER_PORT $server_port;
            uwsgi_param REMOTE_ADDR $server_addr;
            uwsgi_param HTTP_REMOTE_USER $user;
            uwsgi_param HTTP_REMOTE_GROUPS $groups;
            uwsgi_param HTTP_REMOTE_NAME $name;
            uwsgi_param HTTP_REMOTE_EMAIL $email;
            uwsgi_pass {uwsgi};
        }}
        location = /internal/authelia/authz {{
            internal;
            # Authelia: /api/authz/auth-request; the stand-in serves the same contract here.
            proxy_pass http://{authelia}/oauth2/auth;
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
            proxy_set_header Content-Length "";
            proxy_pass_request_body off;
        }}
    }}
}}
"""


@dataclass(frozen=True)
class Stack:
    nginx: str  # http://127.0.0.2:<port>
    http_socket: int  # uWSGI's plain-HTTP port on 127.0.0.1


@pytest.fixture(scope="module")
def authelia_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    nginx = require_program("nginx", "nginx")
    folder = tmp_path_factory.mktemp("authelia")
    http_port = free_port()
    settings = {
        "UWSGI_PROCESSES": "2",
        "UWSGI_HTTP_SOCKET": f"127.0.0.1:{http_port}",
        "SHIBWSGI_PROFILE": "authelia",
        "SHIBWSGI_TRUSTED_PROXIES": NGINX_ADDRESS,
        "MOVIES_DB": str(folder / "movies.sqlite3"),
    }
    with (
        running_fake_oauth2_proxy(USERS) as authelia,
        running_uwsgi(folder, None, **settings) as uwsgi,
        watching(uwsgi.log),
        shared_directory("shibwsgi-nginx-authelia-") as root,
    ):
        wait_for_port(http_port, process=uwsgi.process)
        wait_for_log(uwsgi.log, r"WSGI app 0 \(mountpoint=''\) ready", count=2)
        port = free_port()
        config = root / "nginx.conf"
        config.write_text(
            NGINX_CONFIG.format(
                nginx=NGINX_ADDRESS, port=port, portal=PORTAL, uwsgi=uwsgi.socket, authelia=authelia
            )
        )
        command = [nginx, "-p", f"{root}/", "-c", str(config), "-e", "stderr", "-g", "daemon off;"]
        with serving(command, root, port, host=NGINX_ADDRESS):
            yield Stack(f"http://{NGINX_ADDRESS}:{port}", http_port)


class SourceAddress(HTTPAdapter):
    def __init__(self, source: str) -> None:
        self.source = source  # before super().__init__(), which builds the pool manager
        super().__init__()

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **kwargs, source_address=(self.source, 0))


def get(
    url: str, *, session_user: str | None = None, headers: Mapping[str, str] | None = None
) -> requests.Response:
    with requests.Session() as client:
        client.trust_env = False
        client.mount("http://", SourceAddress(ATTACKER_ADDRESS if session_user is None else "127.0.0.1"))
        cookies = {OAUTH2_PROXY_COOKIE: session_user} if session_user else {}
        return client.get(
            url, headers=dict(headers or {}), cookies=cookies, allow_redirects=False, timeout=30
        )


def test_authelia_user_reaches_the_app_with_utf8_name_and_groups(authelia_stack: Stack) -> None:
    me = get(authelia_stack.nginx + "/api/me", session_user="zoe").json()
    assert me["user"] == "zoe"
    assert me["attributes"] == {
        "name": ["Zoë Łukasz 山田"],
        "email": ["zoe@example.org"],
        "groups": ["movie-editors", "staff"],
    }


def test_authelia_empty_headers_give_no_attributes(authelia_stack: Stack) -> None:
    me = get(authelia_stack.nginx + "/api/me", session_user="bob").json()
    assert me["user"] == "bob"
    assert me["attributes"] == {"name": ["Bob"]}


def test_forged_remote_headers_through_nginx_cannot_change_the_user(authelia_stack: Stack) -> None:
    # nginx's uwsgi_param HTTP_REMOTE_* replace the client's; underscore spellings are dropped.
    me = get(authelia_stack.nginx + "/api/me", session_user="bob", headers=FORGED).json()
    assert me["user"] == "bob"
    assert me["attributes"] == {"name": ["Bob"]}


def test_no_authelia_session_is_sent_to_the_portal(authelia_stack: Stack) -> None:
    response = get(authelia_stack.nginx + "/api/me", headers=FORGED)
    assert response.status_code == 302
    assert response.headers["Location"].startswith(PORTAL + "?rd=")


def test_forged_remote_headers_straight_to_uwsgi_are_anonymous(authelia_stack: Stack) -> None:
    # Another peer than nginx: the headers are ignored and removed; /api/me needs a login.
    response = get(f"http://127.0.0.1:{authelia_stack.http_socket}/api/me", headers=FORGED)
    assert response.status_code == 401
    assert "mallory" not in response.text
