"""Accept-Language -> preferred_language."""

from __future__ import annotations

import pytest

from public_rest.language import SUPPORTED_LANGUAGES, resolve_preferred_language


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "en"),
        ("", "en"),
        ("de", "de"),
        ("de-AT", "de"),
        ("DE-at", "de"),
        ("pt-BR,pt;q=0.9", "pt"),
        ("ja, fr;q=0.5", "fr"),
        ("fr;q=0.4, de;q=0.9", "de"),
        ("fr;q=0.9, de;q=0.9", "fr"),
        ("ru;q=0, uk;q=0.1", "uk"),
        ("zh-CN, ja", "en"),
        ("*", "en"),
        ("ja, *;q=0.5", "en"),
        ("es;q=abc, it", "it"),
        ("es;q=1.5, nl", "nl"),
        ("de;Q=0.8, pl;q=0.9", "pl"),
        ("   ,,, ;q=1, en-GB", "en"),
        ("x" * 2000, "en"),
        ("garbage!!, fr", "fr"),
    ],
)
def test_resolution(header: str | None, expected: str) -> None:
    assert resolve_preferred_language(header) == expected


def test_supported_list_is_lower_case_primary_tags_with_en() -> None:
    assert "en" in SUPPORTED_LANGUAGES
    assert all(lang.isalpha() and lang.islower() for lang in SUPPORTED_LANGUAGES)


def test_parsing_is_bounded() -> None:
    header = ",".join(["ja"] * 40 + ["de"])  # de is past MAX_RANGES
    assert resolve_preferred_language(header) == "en"
