"""A small timing harness: calibrated loops, repetitions interleaved across cases, robust statistics."""

from __future__ import annotations

import gc
import io
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = ["Case", "Stats", "Timing", "Vary", "fresh_environs", "measure", "stats", "wsgi_loop"]

#: A loop of ``n`` requests; returns the elapsed seconds.
Loop = Callable[[int], float]


@dataclass(frozen=True)
class Case:
    """One thing to time: ``loop(n)`` performs ``n`` requests."""

    key: str
    label: str
    loop: Loop


@dataclass(frozen=True)
class Stats:
    """Seconds per request over the repetitions."""

    median: float
    minimum: float
    maximum: float
    q1: float
    q3: float

    def as_dict(self) -> dict[str, float]:
        return {
            "median": self.median,
            "min": self.minimum,
            "max": self.maximum,
            "q1": self.q1,
            "q3": self.q3,
        }


@dataclass(frozen=True)
class Timing:
    """Every repetition of one case: ``per_request`` holds seconds per request, one per repetition."""

    key: str
    label: str
    n: int
    per_request: tuple[float, ...]

    @property
    def stats(self) -> Stats:
        return stats(self.per_request)

    @property
    def median(self) -> float:
        return statistics.median(self.per_request)

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "calls_per_repetition": self.n,
            "seconds_per_request": list(self.per_request),
            **{f"{name}_seconds": value for name, value in self.stats.as_dict().items()},
        }


def stats(values: Sequence[float]) -> Stats:
    if len(values) >= 2:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    else:
        q1 = q3 = values[0]
    return Stats(statistics.median(values), min(values), max(values), q1, q3)


def _no_op_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return None


#: Requests whose environs are built (untimed) before they are timed in one go: few enough
#: that their strings are still in the CPU cache, as a server's freshly decoded ones are.
CHUNK = 32

#: Per-request changes to the environ: request number -> keys to add or replace.
Vary = Callable[[int], Mapping[str, str]]


def fresh_environs(environ: Mapping[str, Any], vary: Vary | None = None) -> Callable[[int, int], list[Any]]:
    """``build(start, count)``: ``count`` environs equal to ``environ`` (plus ``vary(number)``).

    Every string value is a new object decoded from bytes, as uWSGI decodes each
    request's variables: a cache that compared objects by identity, or a string
    whose hash was computed on an earlier request, would flatter the figures.
    Keys are shared: a server's environ dict has hashed its keys on insertion anyway.
    """
    others = {key: value for key, value in environ.items() if not isinstance(value, str)}
    encoded = [(key, value.encode("latin-1")) for key, value in environ.items() if isinstance(value, str)]

    def build(start: int, count: int) -> list[Any]:
        environs = []
        for number in range(start, start + count):
            items = encoded
            if vary is not None:
                changes = {key: value.encode("latin-1") for key, value in vary(number).items()}
                items = [(key, changes.pop(key, value)) for key, value in encoded] + list(changes.items())
            built = {key: value.decode("latin-1") for key, value in items}
            built.update(others)
            built["wsgi.input"] = io.BytesIO(b"")
            environs.append(built)
        return environs

    return build


def wsgi_loop(app: WSGIApplication, environ: Mapping[str, Any], vary: Vary | None = None) -> Loop:
    """Call ``app`` on freshly built environs (see :func:`fresh_environs`), consuming and closing the body.

    Only the calls are timed, not the building of their environs.
    """
    build = fresh_environs(environ, vary)
    served = 0

    def loop(n: int) -> float:
        nonlocal served
        elapsed = 0.0
        call, start_response, clock = app, _no_op_start_response, time.perf_counter
        while n > 0:
            batch = build(served, min(n, CHUNK))
            served += len(batch)
            n -= len(batch)
            started = clock()
            for env in batch:
                body = call(env, start_response)
                for _chunk in body:
                    pass
                close = getattr(body, "close", None)
                if close is not None:
                    close()
            elapsed += clock() - started
        return elapsed

    return loop


def _calibrate(loop: Loop, target: float) -> int:
    """Calls for ``loop`` to take about ``target`` seconds of wall time (this also warms it up).

    Wall time, not the timed part: building fresh environs costs more than a cheap case's
    calls, and it is the wall time that must stay within budget.
    """
    n = 1
    while True:
        started = time.perf_counter()
        loop(n)
        elapsed = time.perf_counter() - started
        if elapsed >= target / 4 or n >= 10_000_000:
            return max(1, round(n * target / max(elapsed, 1e-9)))
        n *= 10 if elapsed < target / 100 else 2


def measure(
    cases: Iterable[Case],
    *,
    repeat: int = 7,
    target: float = 0.2,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Timing]:
    """Time every case ``repeat`` times, interleaving the cases so that drift hits them all alike.

    Each repetition runs ``n`` calls, ``n`` chosen so that one repetition takes about
    ``target`` seconds. The garbage collector is off during a repetition, as in ``timeit``.
    """
    cases = list(cases)
    sizes = {}
    for case in cases:
        sizes[case.key] = _calibrate(case.loop, target)
        if progress:
            progress(f"calibrated {case.label}: {sizes[case.key]} calls per repetition")
    samples: dict[str, list[float]] = {case.key: [] for case in cases}
    for _ in range(repeat):
        for case in cases:
            n = sizes[case.key]
            gc.collect()
            gc.disable()
            try:
                elapsed = case.loop(n)
            finally:
                gc.enable()
            samples[case.key].append(elapsed / n)
    return {
        case.key: Timing(case.key, case.label, sizes[case.key], tuple(samples[case.key])) for case in cases
    }
