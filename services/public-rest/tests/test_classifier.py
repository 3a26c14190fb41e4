"""The route classes: classification, normalization, bucket namespaces."""

from __future__ import annotations

import pytest

from public_rest.classifier import (
    ROUTE_CLASSES,
    DefaultPublicTrafficClassifier,
    class_namespace,
    normalize_route_class,
)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/v1/public/auth/send-email-code", "public_auth"),
        ("/api/v1/public/auth/confirm-email-code", "public_auth"),
        ("/", "browser_bootstrap"),
        ("/index.html", "browser_bootstrap"),
        ("/app", "browser_bootstrap"),
        ("/app/games/42", "browser_bootstrap"),
        ("/assets/index-3f2a.js", "browser_asset"),
        ("/static/logo", "browser_asset"),
        ("/favicon.ico", "browser_asset"),
        ("/robots.txt", "browser_asset"),
        ("/app/chunk-1.JS", "browser_asset"),
        ("/fonts/inter.woff2", "browser_asset"),
        ("/healthz", "public_misc"),
        ("/readyz", "public_misc"),
        ("/metrics", "public_misc"),
        ("/api/v1/public/auth/other", "public_misc"),
        ("/api/v1/public/auth/send-email-code/", "public_misc"),
        ("/api/v1/x.json", "public_misc"),
        ("/wp-login.php", "public_misc"),
        ("/index.htm", "public_misc"),
        ("", "public_misc"),
    ],
)
def test_default_classifier(path: str, expected: str) -> None:
    assert DefaultPublicTrafficClassifier().classify("GET", path) == expected


def test_classification_ignores_the_method() -> None:
    classifier = DefaultPublicTrafficClassifier()
    for method in ("GET", "POST", "DELETE", "BREW"):
        assert classifier.classify(method, "/api/v1/public/auth/send-email-code") == "public_auth"
        assert classifier.classify(method, "/assets/a.css") == "browser_asset"


@pytest.mark.parametrize(
    "value", ["", "PUBLIC_AUTH", "public-auth", "admin", None, 3, " public_auth"]
)
def test_anything_outside_the_set_is_public_misc(value: object) -> None:
    assert normalize_route_class(value) == "public_misc"


def test_the_four_classes_normalize_to_themselves() -> None:
    assert ROUTE_CLASSES == ("public_auth", "browser_bootstrap", "browser_asset", "public_misc")
    for value in ROUTE_CLASSES:
        assert normalize_route_class(value) == value


def test_namespace_is_derived_from_the_normalized_class() -> None:
    assert class_namespace("public_auth") == "public_rest/class=public_auth"
    assert class_namespace("browser_asset") == "public_rest/class=browser_asset"
    assert class_namespace("bogus") == "public_rest/class=public_misc"
    assert class_namespace("") == "public_rest/class=public_misc"
