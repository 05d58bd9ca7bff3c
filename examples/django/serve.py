#!/usr/bin/env python3
"""Try the example on a laptop: Django + shibwsgi behind the development front end.

DEVELOPMENT ONLY: anyone who reaches the port can sign in as anyone; it listens on
127.0.0.1 only. Open http://127.0.0.1:8000/ and pick a sample user.
"""

import os
from wsgiref.simple_server import make_server

from mysite.wsgi import application

from shibwsgi.testing import DevFrontEnd

if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8000"))
    with make_server("127.0.0.1", port, DevFrontEnd(application, protected_paths=["/"])) as server:
        print(f"http://127.0.0.1:{port}/ (development front end: never expose it)", flush=True)
        server.serve_forever()
