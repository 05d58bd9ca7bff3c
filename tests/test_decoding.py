"""The decoding rules, one table each."""

from __future__ import annotations

import pytest

from shibwsgi.decoding import UndecodableValue, decode, repair_utf8, split_values, without_surrogates
from tests.helpers import mojibake


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("plain", "plain", id="ascii"),
        pytest.param(mojibake("Zoë Müller"), "Zoë Müller", id="latin diacritics"),
        pytest.param(mojibake("Łukasz"), "Łukasz", id="polish"),
        pytest.param(mojibake("東京"), "東京", id="cjk"),
        pytest.param(mojibake("🙂"), "🙂", id="astral"),
        pytest.param("Zo\xeb", "Zo\xeb", id="real latin-1 kept"),
        pytest.param("Ã", "Ã", id="truncated sequence kept"),
        pytest.param("already Zoë ✓", "already Zoë ✓", id="not latin-1 range kept"),
    ],
)
def test_repair_utf8(raw: str, expected: str) -> None:
    assert repair_utf8(raw) == expected


@pytest.mark.parametrize(
    ("raw", "delimiter", "escapes", "expected"),
    [
        pytest.param("a;b;c", ";", True, ["a", "b", "c"], id="simple"),
        pytest.param(r"a\;b;c", ";", True, ["a;b", "c"], id="escaped delimiter"),
        pytest.param(r"a\;b\;c", ";", True, ["a;b;c"], id="two escapes"),
        pytest.param(r"a\b;c", ";", True, ["a\\b", "c"], id="lone backslash kept"),
        pytest.param(";;a;;", ";", True, ["a"], id="empty values dropped"),
        pytest.param("", ";", True, [], id="empty"),
        pytest.param(r"a\;b", ";", False, ["a\\", "b"], id="no escapes (mellon merged)"),
        pytest.param("a,b", ",", False, ["a", "b"], id="comma"),
        pytest.param("a;b", None, False, ["a;b"], id="never split"),
    ],
)
def test_split_values(raw: str, delimiter: str | None, escapes: bool, expected: list[str]) -> None:
    assert split_values(raw, delimiter, backslash_escapes=escapes) == expected


@pytest.mark.parametrize(
    ("raw", "encoding", "expected"),
    [
        pytest.param("Zo%C3%AB", "url", "Zoë", id="url"),
        pytest.param("a+b", "url", "a+b", id="url plus is not space"),
        pytest.param("WsO2", "base64url", "Zö", id="base64url without padding"),
        pytest.param("WsO2", "latin-1", "WsO2", id="latin-1 untouched"),
        pytest.param("Al\ud800ice", "latin-1", "Al\ufffdice", id="latin-1 lone surrogate replaced"),
        pytest.param("Al\udfffice", "utf-8", "Al\ufffdice", id="utf-8 lone surrogate replaced"),
    ],
)
def test_decode(raw: str, encoding: str, expected: str) -> None:
    assert decode(raw, encoding) == expected


@pytest.mark.parametrize(
    ("raw", "encoding"),
    [
        pytest.param("%FF%FE", "url", id="url escapes that are not utf-8"),
        pytest.param("100%", "url", id="url stray percent"),
        pytest.param("%zz", "url", id="url bad escape"),
        pytest.param("!!!", "base64url", id="base64url garbage"),
        pytest.param("_w", "base64url", id="base64url not utf-8"),
        pytest.param("admin", "base64url", id="base64url plain text"),
    ],
)
def test_undecodable_value_is_refused_not_kept(raw: str, encoding: str) -> None:
    with pytest.raises(UndecodableValue):
        decode(raw, encoding)


@pytest.mark.parametrize("text", ["\ud800", "a\udbffb", "\udc00\ud800", "ok \U0001f642 \ud83d"])
def test_without_surrogates_makes_text_utf8_encodable(text: str) -> None:
    cleaned = without_surrogates(text)
    cleaned.encode("utf-8")
    assert "\ufffd" in cleaned
