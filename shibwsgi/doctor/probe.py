"""``shibwsgi doctor --probe URL``: hostile requests through the deployed front end, and what reached the app.

Markers for every identity variable of the profile, in every spelling a front end may
confuse (dashes, underscores, case, repeated, comma-joined), go to the app's probe endpoint
(:mod:`shibwsgi.probe`), which says where each arrived and whether the trust gate removed
it. Then: the largest header line and request the front end accepts and how it refuses
beyond; the protected path refused to an anonymous client; cookie flags; TLS. With the
session cookies of a signed-in browser (``cookies``), one more request, without markers, is
signed in: its report shows whether the front end also sends the identity as request headers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from ..probe import MARKER, REACHED_HEADER, TOKEN_HEADER, marker_id
from .findings import ERROR, INFO, WARNING, Finding, Location
from .probe_http import Answer, Site

__all__ = ["Spelling", "probe", "spellings"]

#: Names any front end's user may travel under, whatever the profile.
GENERIC = ("REMOTE_USER", "Remote-User", "X-Remote-User", "X-Forwarded-User", "X-User")
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
#: Headers per request: the shipped Apache configs refuse more than 32 (LimitRequestFields).
_BATCH = 20
#: Refusals that say "too large" the way a front end should.
_REFUSALS = (400, 413, 414, 431, 494)
_LARGEST = 256 * 1024
_PAD = "X-Shibwsgi-Probe-Pad"
#: An environ key as the app side reports it: printable, one line.
_KEY = re.compile(r"[!-~]{1,256}")


@dataclass(frozen=True)
class Spelling:
    id: str
    variable: str  # the front end's name for it
    header: str  # as sent
    how: str


def spellings(names: Iterable[str], token: str) -> tuple[list[tuple[str, str]], dict[str, Spelling]]:
    """Headers carrying a marker for each name, in each spelling; marker id -> what was sent.

    The ids are made with ``token``: the app reports only ids its own token made.
    """
    headers: list[tuple[str, str]] = []
    sent: dict[str, Spelling] = {}
    seen: set[tuple[str, str]] = set()

    def add(variable: str, header: str, how: str, count: int = 1) -> None:
        if (header, how) in seen or not _TOKEN.fullmatch(header):
            return
        seen.add((header, how))
        ids = []
        for _ in range(count):
            ids.append(marker_id(token, len(sent)))
            sent[ids[-1]] = Spelling(ids[-1], variable, header, how)
        if how == "comma-joined":
            headers.append((header, ", ".join(MARKER + i for i in ids)))
        else:
            headers.extend((header, MARKER + i) for i in ids)

    for name in sorted({*names, *GENERIC}):
        dashed = name.replace("_", "-")
        add(name, name, "as named")
        add(name, dashed, "dashes")
        add(name, name.replace("-", "_"), "underscores")
        add(name, dashed.lower(), "lower case")
        add(name, dashed.upper(), "upper case")
        add(name, dashed, "repeated", 2)
        add(name, dashed, "comma-joined", 2)
    return headers, sent


def probe(
    site: Site,
    token: str,
    *,
    names: Iterable[str],
    probe_path: str,
    protected: str | None,
    public: str = "/",
    cookies: Sequence[tuple[str, str]] = (),
) -> list[Finding]:
    """Every finding of a live probe of ``site``; ``cookies``: (name, value) of a signed-in browser."""
    where = Location(site.url)
    headers, sent = spellings(names, token)
    reports = []
    answers: list[Answer] = []
    unreachable: list[Finding] = []
    for start in range(0, len(headers), _BATCH):
        answer = site.get(probe_path, [(TOKEN_HEADER, token), *headers[start : start + _BATCH]])
        answers.append(answer)
        report = _report(answer)
        if report is None:
            unreachable = [_unreachable(site, probe_path, answer)]
            break
        reports.append(report)
    findings = _tls(site, answers[0], where) + unreachable
    if reports and not unreachable:
        findings += _markers(reports, sent, _at(site, probe_path))
        findings += _limits(site, probe_path, token, _at(site, probe_path))
    signed: dict[str, Any] | None = None
    if cookies:
        # Alone, without markers: mod_shib with ShibUseHeaders On answers 500 to a client
        # header spelled like one of its own, which would hide what a session brings.
        cookie = "; ".join(f"{name}={value}" for name, value in cookies)
        answer = site.get(probe_path, [(TOKEN_HEADER, token), ("Cookie", cookie)])
        signed = _report(answer)
        if signed is None and not unreachable:
            findings.append(_unreachable(site, probe_path, answer))
    findings += _signed_in(reports, signed, bool(cookies), _at(site, probe_path))
    if protected is not None:
        answer = site.get(protected, [(TOKEN_HEADER, token), *headers[:_BATCH]])
        answers.append(answer)
        findings += _protection(answer, _at(site, protected))
    answers.append(site.get(public))
    findings += _cookies(answers, site.https, where)
    return findings


def _at(site: Site, path: str) -> Location:
    return Location(site.url.rstrip("/") + site.path(path)[len(site.path("")) :])


def _tls(site: Site, answer: Answer, where: Location) -> list[Finding]:
    if not site.https:
        return [
            Finding(
                WARNING,
                "probe-plain-http",
                where,
                "probed over plain http: identities and session cookies travel in clear.",
                f"serve the site over https and probe {site.url.replace('http://', 'https://', 1)}",
            )
        ]
    if not answer.tls:
        return []
    old = answer.tls.split()[0] in ("SSLv3", "TLSv1", "TLSv1.1")
    return [
        Finding(
            WARNING if old else INFO,
            "probe-tls",
            where,
            f"TLS: {answer.tls}.",
            "SSLProtocol -all +TLSv1.2 +TLSv1.3 (nginx: ssl_protocols TLSv1.2 TLSv1.3;)"
            if old
            else "none needed.",
        )
    ]


def _report(answer: Answer) -> dict[str, Any] | None:
    if answer.status != 200:
        return None
    try:
        report = json.loads(answer.body)
    except ValueError:
        return None
    if not isinstance(report, dict) or report.get("probe") != "shibwsgi":
        return None
    markers, size = report.get("markers", []), report.get("environ", {})
    if not (isinstance(markers, list) and all(map(_arrival, markers)) and isinstance(size, dict)):
        return None  # not what shibwsgi.probe writes: nothing in it can be trusted
    return report


def _arrival(arrival: object) -> bool:
    """One entry of the report's ``markers``, as the app side writes it."""
    return (
        isinstance(arrival, dict)
        and isinstance(arrival.get("key"), str)
        and _KEY.fullmatch(arrival["key"]) is not None
        and isinstance(arrival.get("ids"), list)
        and all(isinstance(i, str) for i in arrival["ids"])
    )


def _shown(value: object) -> str:
    """A value from the site's answer, safe to print on one line."""
    text = str(value)
    return text if text.isascii() and text.isprintable() else ascii(text)


def _unreachable(site: Site, path: str, answer: Answer) -> Finding:
    if answer.status == 200:
        got = "status 200, but not with the probe's report"
    elif answer.status == 500:
        got = "status 500; with mod_shib, 'Attempt to spoof header' in Apache's error log means ShibUseHeaders On"
    else:
        got = f"status {answer.status}" if answer.status else f"no answer ({answer.error})"
    return Finding(
        ERROR,
        "probe-unreachable",
        _at(site, path),
        f"the app's probe endpoint did not answer ({got}): nothing can be said about what reaches the app.",
        f"set SHIBWSGI_PROBE_TOKEN in the app to the --token given, and leave {path} reachable without a login.",
    )


def _markers(reports: list[dict[str, Any]], sent: dict[str, Spelling], where: Location) -> list[Finding]:
    findings = []
    through: dict[str, set[str]] = {}
    for report in reports:
        for arrival in report.get("markers", []):
            key = str(arrival.get("key", ""))
            spelled = sorted({f"{s.header} ({s.how})" for i in arrival.get("ids", []) if (s := sent.get(i))})
            if not spelled:
                continue  # the marker's text where the probe did not put it (a path, say)
            what = ", ".join(spelled)
            if arrival.get("read_by_app") and not arrival.get("removed_by_gate"):
                findings.append(
                    Finding(
                        ERROR,
                        "probe-client-header-passed-gate",
                        where,
                        f"the client's {what} reached the app as {key}, which it reads identity from, and passed its trust gate: any client can be any user.",
                        f'make the front end overwrite or remove {key} on every request (RequestHeader unset / uwsgi_param ... "").',
                    )
                )
            elif arrival.get("read_by_app"):
                findings.append(
                    Finding(
                        WARNING,
                        "probe-client-header-stopped-by-gate",
                        where,
                        f"the front end lets the client's {what} through as {key}; only the app's trust gate removed it.",
                        f"make the front end overwrite or remove {key} too: one safeguard is not two.",
                    )
                )
            elif not key.startswith("HTTP_"):
                findings.append(
                    Finding(
                        ERROR,
                        "probe-client-header-reached-app",
                        where,
                        f"the client's {what} arrived as the server variable {key}: the front end copies a client header into its own variables.",
                        "find the front end directive that sets this variable from a request header, and remove it.",
                    )
                )
            else:
                through.setdefault(key, set()).update(
                    s.header for i in arrival.get("ids", []) if (s := sent.get(i))
                )
    first = reports[0]
    if through:
        keys = ", ".join(sorted(through))
        findings.append(
            Finding(
                INFO,
                "probe-headers-let-through",
                where,
                f"client headers the front end passes on, which the app does not read identity from: {keys}.",
                "none needed; the app's gate ignores them.",
            )
        )
    size = first.get("environ", {})
    findings.append(
        Finding(
            INFO,
            "probe-environ-size",
            where,
            f"channel {_shown(first.get('channel'))}, peer {_shown(first.get('peer'))}, environ {_shown(size.get('keys'))} keys / {_shown(size.get('bytes'))} bytes.",
            "none needed.",
        )
    )
    return findings


def _signed_in(
    reports: list[dict[str, Any]], signed: dict[str, Any] | None, cookies: bool, where: Location
) -> list[Finding]:
    """Identity variables that also arrived as request headers; a session cookie the front end ignored."""
    findings = []
    every = [*reports, signed] if signed is not None else reports
    twins = sorted(
        {key for report in every for key in _listed(_identity(report).get("headers")) if _is_key(key)}
    )
    if twins:
        findings.append(
            Finding(
                ERROR,
                "probe-identity-in-headers",
                where,
                f"the front end also sends the identity as request headers ({', '.join(twins)}): any hop after it can forge them (ShibUseHeaders On?).",
                "turn it off where the front end sets it (ShibUseHeaders Off); the app reads the server variables.",
            )
        )
    if cookies and signed is not None and _identity(signed).get("present") is not True:
        findings.append(
            Finding(
                INFO,
                "probe-cookie-not-signed-in",
                where,
                "the probe's request with the --cookie given reached the app without an identity it accepts (cookie not accepted, or its session over): what only a signed-in request carries was not seen.",
                "copy the front end's session cookie (Shibboleth: _shibsession_...) from a signed-in browser for this site, and probe again.",
            )
        )
    return findings


def _identity(report: dict[str, Any]) -> dict[str, Any]:
    identity = report.get("identity")
    return identity if isinstance(identity, dict) else {}


def _listed(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _is_key(key: object) -> TypeGuard[str]:
    return isinstance(key, str) and _KEY.fullmatch(key) is not None


def _limits(site: Site, path: str, token: str, where: Location) -> list[Finding]:
    auth = (TOKEN_HEADER, token)
    line_ok, line_refused = _largest(lambda n: site.get(path, [auth, (_PAD, "a" * n)]), 1024)
    piece = max(256, min(line_ok or 1024, 4096) - 64)
    total_ok, total_refused = _largest(
        lambda n: site.get(path, [auth, *((f"{_PAD}-{i}", "a" * piece) for i in range(max(1, n // piece)))]),
        piece * 2,
    )
    findings = []
    for what, ok, refused in (
        ("header line", line_ok, line_refused),
        ("request header total", total_ok, total_refused),
    ):
        if refused is not None and refused.status >= 500:
            findings.append(
                Finding(
                    ERROR,
                    "probe-header-limit-500",
                    where,
                    f"a {what} over {ok} bytes gets a {refused.status}, not a 400/431: the front end accepts what the app's side cannot carry (LimitRequestFieldSize/LimitRequestFields raised past the 64 KB uwsgi packet?).",
                    "keep the front end's limits under the packet budget (docs/deployment.md, the packet budget).",
                )
            )
            continue
        if refused is None:
            beyond, severity, fix = (
                f"accepted up to the probe's {_LARGEST}",
                WARNING,
                "set a limit at the front end.",
            )
        elif refused.status in _REFUSALS or not refused.status:
            beyond, severity, fix = (
                f"refused beyond with {refused.status or 'a closed connection'}",
                INFO,
                "none needed.",
            )
        else:
            beyond, severity = f"answered beyond with {refused.status}, not 400/431", WARNING
            fix = "let the front end refuse over-large requests itself (400 or 431)."
        findings.append(
            Finding(
                severity, "probe-header-limit", where, f"largest {what} accepted: {ok} bytes; {beyond}.", fix
            )
        )
    return findings


def _largest(send: Callable[[int], Answer], start: int) -> tuple[int, Answer | None]:
    """The largest size ``send`` gets a 200 for (doubling, then halving the gap), and the answer beyond it."""
    ok, refused, refusal = 0, None, None
    size = start
    while size <= _LARGEST:
        answer = send(size)
        if answer.status != 200:
            refused, refusal = size, answer
            break
        ok, size = size, size * 2
    if refused is None:
        return ok, None
    while refused - ok > 256:
        middle = (ok + refused) // 2
        answer = send(middle)
        if answer.status == 200:
            ok = middle
        else:
            refused, refusal = middle, answer
    return ok, refusal


def _protection(answer: Answer, where: Location) -> list[Finding]:
    reached = bool(answer.header(REACHED_HEADER))
    if not reached and answer.status != 200:
        return []
    how = "reached the app" if reached else "got 200"
    return [
        Finding(
            ERROR,
            "probe-unprotected",
            where,
            f"an anonymous request {how} here (status {answer.status}): the front end does not protect it.",
            "require a session for this path at the front end (Require shib-session / valid-user, auth_request).",
        )
    ]


def _cookies(answers: list[Answer], https: bool, where: Location) -> list[Finding]:
    flagged: dict[str, list[str]] = {}
    for answer in answers:
        for cookie in answer.all("Set-Cookie"):
            name, _, rest = cookie.partition("=")
            flags = {part.strip().split("=")[0].lower() for part in rest.split(";")[1:]}
            lacking = [
                flag
                for flag, wanted in (("Secure", https), ("HttpOnly", True), ("SameSite", True))
                if wanted and flag.lower() not in flags
            ]
            if lacking and name.strip() not in flagged:
                flagged[name.strip()] = lacking
    return [
        Finding(
            WARNING,
            "probe-cookie-flags",
            where,
            f"cookie {name} is set without {', '.join(lacking)}.",
            f"set {'; '.join(lacking)} on {name} where it is issued.",
        )
        for name, lacking in flagged.items()
    ]
