"""How the cost grows with the size of a multi-valued attribute (isMemberOf of 10 … 1,800 groups).

Each size is timed at first sight (a new front-end session on every request, so the
identity memo misses, parses and stores) and on repeat (the memo's steady state).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from shibwsgi import SSOMiddleware
from shibwsgi.testing import environ_for

from .environs import PROFILE_CASES, USER, shibboleth_values
from .inprocess import bare_app, check_identity
from .timing import Case, measure, wsgi_loop

__all__ = ["GROUP_COUNTS", "first_sight", "linear_fit", "run"]

#: 28 groups make ~1 KB and 1,800 ~64 KB (36 bytes a group).
GROUP_COUNTS = (10, 28, 100, 1000, 1800)
SMALL, LARGE = 28, 1800
BARE = "scaling:bare"


def first_sight(number: int) -> dict[str, str]:
    """Request ``number`` comes from a new front-end session: nothing cached can match it."""
    return {"Shib-Session-ID": f"_first-sight-{number:012d}"}


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> dict[str, float]:
    """Least squares ``y = intercept + slope * x`` and its r²."""
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    syy = sum((y - mean_y) ** 2 for y in ys)
    slope = sxy / sxx
    intercept = mean_y - slope * mean_x
    r2 = (sxy * sxy) / (sxx * syy) if syy > 0 else 1.0
    return {"intercept": intercept, "slope": slope, "r2": r2}


def run(*, repeat: int, target: float, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Time the middleware at each size, at first sight and on repeat."""
    shibboleth = PROFILE_CASES[0]
    cases = [Case(BARE, "bare WSGI app", wsgi_loop(bare_app, shibboleth.environ()))]
    sizes: dict[int, dict[str, Any]] = {}
    for count in GROUP_COUNTS:
        values = shibboleth_values(count)
        environ = {**shibboleth.environ(), **environ_for("shibboleth", USER, values)}
        # One middleware per size and per kind: each memo holds only its own entries.
        first, repeated = (SSOMiddleware(bare_app, **shibboleth.options()) for _ in range(2))
        identity, _ = check_identity(repeated, environ)
        if len(identity.attributes["groups"]) != count or identity.dropped:
            raise RuntimeError(f"{count} groups: the middleware kept {len(identity.attributes['groups'])}")
        sizes[count] = {"groups": count, "attribute_bytes": len(environ["isMemberOf"])}
        cases += [
            Case(f"first:{count}", f"first sight, {count} groups", wsgi_loop(first, environ, first_sight)),
            Case(f"repeat:{count}", f"repeat, {count} groups", wsgi_loop(repeated, environ)),
        ]
    timings = measure(cases, repeat=repeat, target=target, progress=progress)

    bare = timings[BARE].median
    for count, entry in sizes.items():
        kib = entry["attribute_bytes"] / 1024
        first_overhead = timings[f"first:{count}"].median - bare
        entry.update(
            first_sight=timings[f"first:{count}"].as_dict(),
            repeat=timings[f"repeat:{count}"].as_dict(),
            first_sight_overhead_seconds=first_overhead,
            repeat_overhead_seconds=timings[f"repeat:{count}"].median - bare,
            first_sight_seconds_per_kib=first_overhead / kib,
        )
    kib = [sizes[count]["attribute_bytes"] / 1024 for count in GROUP_COUNTS]
    overheads = [sizes[count]["first_sight_overhead_seconds"] for count in GROUP_COUNTS]
    return {
        "repeat": repeat,
        "bare": timings[BARE].as_dict(),
        "sizes": {str(count): entry for count, entry in sizes.items()},
        "fit_first_sight_overhead_vs_kib": linear_fit(kib, overheads),
        "small_groups": SMALL,
        "large_groups": LARGE,
        "large_first_sight_seconds": sizes[LARGE]["first_sight_overhead_seconds"],
        "large_repeat_seconds": sizes[LARGE]["repeat_overhead_seconds"],
    }
