"""How the cost grows with the size of a multi-valued attribute (isMemberOf of 10 … 1,800 groups)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from shibwsgi import SSOMiddleware
from shibwsgi.testing import environ_for

from .environs import PROFILE_CASES, USER, shibboleth_values
from .inprocess import bare_app, check_identity
from .timing import Case, measure, wsgi_loop

__all__ = ["GROUP_COUNTS", "linear_fit", "run"]

#: 28 groups make ~1 KB and 1,800 ~64 KB (36 bytes a group): the two ends of the target ratio.
GROUP_COUNTS = (10, 28, 100, 1000, 1800)
SMALL, LARGE = 28, 1800
BARE = "scaling:bare"


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


def _loop(body: Callable[[], object]) -> Callable[[int], float]:
    def loop(n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            body()
        return time.perf_counter() - started

    return loop


def run(*, repeat: int, target: float, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Time the middleware, the parser alone and ``environ_for`` + parse at each size."""
    shibboleth = PROFILE_CASES[0]
    middleware = SSOMiddleware(bare_app, **shibboleth.options())
    parser = middleware.parser
    cases = [Case(BARE, "bare WSGI app", wsgi_loop(bare_app, shibboleth.environ()))]
    sizes: dict[int, dict[str, Any]] = {}
    for count in GROUP_COUNTS:
        values = shibboleth_values(count)
        environ = {**shibboleth.environ(), **environ_for("shibboleth", USER, values)}
        identity, _ = check_identity(middleware, environ)
        if len(identity.attributes["groups"]) != count or identity.dropped:
            raise RuntimeError(f"{count} groups: the middleware kept {len(identity.attributes['groups'])}")
        sizes[count] = {"groups": count, "attribute_bytes": len(environ["isMemberOf"])}

        def parse(environ: dict[str, Any] = environ) -> object:
            return parser.parse(environ)

        def round_trip(values: dict[str, Any] = values) -> object:
            return parser.parse(environ_for("shibboleth", USER, values))

        cases += [
            Case(f"middleware:{count}", f"middleware, {count} groups", wsgi_loop(middleware, environ)),
            Case(f"parse:{count}", f"parser.parse, {count} groups", _loop(parse)),
            Case(f"round_trip:{count}", f"environ_for + parse, {count} groups", _loop(round_trip)),
        ]
    timings = measure(cases, repeat=repeat, target=target, progress=progress)

    bare = timings[BARE].median
    for count, entry in sizes.items():
        kib = entry["attribute_bytes"] / 1024
        overhead = timings[f"middleware:{count}"].median - bare
        entry.update(
            middleware=timings[f"middleware:{count}"].as_dict(),
            parse=timings[f"parse:{count}"].as_dict(),
            round_trip=timings[f"round_trip:{count}"].as_dict(),
            overhead_seconds=overhead,
            overhead_seconds_per_kib=overhead / kib,
        )
    kib = [sizes[count]["attribute_bytes"] / 1024 for count in GROUP_COUNTS]
    overheads = [sizes[count]["overhead_seconds"] for count in GROUP_COUNTS]
    return {
        "repeat": repeat,
        "bare": timings[BARE].as_dict(),
        "sizes": {str(count): entry for count, entry in sizes.items()},
        "fit_overhead_vs_kib": linear_fit(kib, overheads),
        "small_groups": SMALL,
        "large_groups": LARGE,
        "ratio_large_to_small": sizes[LARGE]["overhead_seconds"] / sizes[SMALL]["overhead_seconds"],
        "large_overhead_seconds": sizes[LARGE]["overhead_seconds"],
    }
