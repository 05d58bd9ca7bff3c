"""The full parity run: 100,000 hostile requests through the WSGI and the ASGI middleware.

``python -m bench.parity [COUNT]`` (from the repository root) runs
:func:`tests.test_asgi_parity.compare`, which asserts for every request the same status
from both shells and, when identified, the same identity; it prints the statuses seen.
The test suite runs 20,000 of them (``SHIBWSGI_PARITY_COUNT``).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time

FULL = 100_000


def main(argv: list[str]) -> int:
    from tests.test_asgi_parity import compare

    count = int(argv[0]) if argv else FULL
    logging.getLogger("shibwsgi").disabled = True  # refusals are expected by the thousand
    started = time.perf_counter()
    statuses = asyncio.run(compare(count))
    elapsed = time.perf_counter() - started
    print(f"{count} requests, the same answer from both shells every time, in {elapsed:.0f} s")
    print("statuses:", dict(sorted(statuses.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
