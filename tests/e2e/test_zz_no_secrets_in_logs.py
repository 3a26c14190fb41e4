"""No email, login code, challenge id, key, payload or signature in any service log."""

from __future__ import annotations

import pytest

from edgecore.testing.system import DEV_LOGIN_CODE

from .harness import Gateway, Secrets

pytestmark = pytest.mark.integration


def assert_no_secrets(logs: dict[str, str], secrets_registry: Secrets) -> None:
    assert logs, "no service logs were captured"
    leaks = [
        (service, value[:12] + "...")
        for service, text in logs.items()
        for value in secrets_registry.values | {DEV_LOGIN_CODE}
        if value in text
    ]
    assert leaks == []


def test_service_logs_hold_no_secrets(gateway: Gateway) -> None:
    # The module name sorts last, so this runs after every other e2e module.
    assert len(gateway.secrets.values) > 5
    assert_no_secrets(gateway.logs(), gateway.secrets)
