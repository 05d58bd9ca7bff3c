"""The decoding rules, one table each."""

from __future__ import annotations

import pytest

from shibwsgi.decoding import decode, repair_utf8, split_values
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
        pytest.param("%FF%FE", "url", "%FF%FE", id="url not utf-8 kept"),
        pytest.param("WsO2", "base64url", "Zö", id="base64url without padding"),
        pytest.param("WsO2", "latin-1", "WsO2", id="latin-1 untouched"),
        pytest.param("!!!", "base64url", "!!!", id="base64url garbage kept"),
        pytest.param("_w", "base64url", "_w", id="base64url not utf-8 kept"),
    ],
)
def test_decode(raw: str, encoding: str, expected: str) -> None:
    assert decode(raw, encoding) == expected
