"""Public route classes and the classifier that maps a request onto one of them.

The four classes are fixed by the specification. A classifier may return anything
(a plug-in, a bug); ``normalize_route_class`` folds every answer outside the set,
including an empty one, into ``public_misc`` before the class is stored or used
for policy. Bucket keys derive from the normalized class as
``public_rest/class=<class>`` so classes never share a bucket or a counter.
"""

from __future__ import annotations

import posixpath
from typing import Final, Literal, Protocol

__all__ = [
    "ASSET_EXTENSIONS",
    "BROWSER_ASSET",
    "BROWSER_BOOTSTRAP",
    "CONFIRM_EMAIL_CODE_PATH",
    "HEALTHZ_PATH",
    "PUBLIC_AUTH",
    "PUBLIC_MISC",
    "READYZ_PATH",
    "ROUTE_CLASSES",
    "SEND_EMAIL_CODE_PATH",
    "DefaultPublicTrafficClassifier",
    "PublicTrafficClassifier",
    "RouteClass",
    "class_namespace",
    "normalize_route_class",
]

RouteClass = Literal["public_auth", "browser_bootstrap", "browser_asset", "public_misc"]

PUBLIC_AUTH: Final = "public_auth"
BROWSER_BOOTSTRAP: Final = "browser_bootstrap"
BROWSER_ASSET: Final = "browser_asset"
PUBLIC_MISC: Final = "public_misc"
ROUTE_CLASSES: Final[tuple[RouteClass, ...]] = (
    PUBLIC_AUTH,
    BROWSER_BOOTSTRAP,
    BROWSER_ASSET,
    PUBLIC_MISC,
)

HEALTHZ_PATH: Final = "/healthz"
READYZ_PATH: Final = "/readyz"
SEND_EMAIL_CODE_PATH: Final = "/api/v1/public/auth/send-email-code"
CONFIRM_EMAIL_CODE_PATH: Final = "/api/v1/public/auth/confirm-email-code"

# The last path segment of a browser asset outside /assets/ and /static/
# (favicon.ico, robots.txt, a hashed bundle at the root, ...).
ASSET_EXTENSIONS: Final = frozenset(
    {
        ".js", ".mjs", ".css", ".map", ".json", ".webmanifest", ".txt", ".xml",
        ".png", ".jpg", ".jpeg", ".gif", ".svg", ".ico", ".webp", ".avif", ".bmp",
        ".woff", ".woff2", ".ttf", ".otf", ".eot", ".wasm",
        ".mp3", ".ogg", ".wav", ".mp4", ".webm",
    }
)  # fmt: skip

_AUTH_PATHS: Final = frozenset({SEND_EMAIL_CODE_PATH, CONFIRM_EMAIL_CODE_PATH})
_BOOTSTRAP_EXACT: Final = frozenset({"/", "/index.html", "/app"})
_BOOTSTRAP_PREFIXES: Final = ("/app/",)
_ASSET_PREFIXES: Final = ("/assets/", "/static/")
# Never browser traffic, whatever the extension: the API and the probes.
_NON_BROWSER_PREFIXES: Final = ("/api/",)
_NON_BROWSER_EXACT: Final = frozenset({HEALTHZ_PATH, READYZ_PATH, "/metrics"})


class PublicTrafficClassifier(Protocol):
    """Maps one public request onto a route class (the answer is normalized afterwards)."""

    def classify(self, method: str, path: str) -> str: ...


def normalize_route_class(value: object) -> RouteClass:
    """Any answer outside the fixed set (empty, unknown, not a string) is ``public_misc``."""
    if value == PUBLIC_AUTH:
        return PUBLIC_AUTH
    if value == BROWSER_BOOTSTRAP:
        return BROWSER_BOOTSTRAP
    if value == BROWSER_ASSET:
        return BROWSER_ASSET
    return PUBLIC_MISC


def class_namespace(route_class: object) -> str:
    """The base bucket namespace of a class: ``public_rest/class=<normalized class>``."""
    return f"public_rest/class={normalize_route_class(route_class)}"


class DefaultPublicTrafficClassifier:
    """The gateway's classification, by path only (the method is checked by policy).

    * ``public_auth``: the two public auth routes, exactly;
    * ``browser_bootstrap``: ``/``, ``/index.html``, ``/app`` and ``/app/...`` (the
      single-page app's client-side routes);
    * ``browser_asset``: ``/assets/...``, ``/static/...``, and any other path whose
      last segment ends in a common asset extension (``ASSET_EXTENSIONS``, so
      ``/favicon.ico`` and ``/app/chunk.js`` too), except under ``/api/`` and the
      probes;
    * ``public_misc``: everything else (the probes, unknown paths).
    """

    def classify(self, method: str, path: str) -> str:  # noqa: PLR0911 - one rule a line
        if path in _AUTH_PATHS:
            return PUBLIC_AUTH
        if path in _NON_BROWSER_EXACT or path.startswith(_NON_BROWSER_PREFIXES):
            return PUBLIC_MISC
        if path in _BOOTSTRAP_EXACT:
            return BROWSER_BOOTSTRAP
        if path.startswith(_ASSET_PREFIXES):
            return BROWSER_ASSET
        last = path.rsplit("/", 1)[-1]
        if posixpath.splitext(last)[1].lower() in ASSET_EXTENSIONS:
            return BROWSER_ASSET
        if path.startswith(_BOOTSTRAP_PREFIXES):
            return BROWSER_BOOTSTRAP
        return PUBLIC_MISC
