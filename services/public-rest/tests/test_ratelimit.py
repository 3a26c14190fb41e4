"""Token buckets: the spec's budgets, Retry-After, isolation and bounded memory."""

from __future__ import annotations

from datetime import timedelta

import pytest

from edgecore.config import RateLimitPolicy
from edgecore.config.sections import PublicAntiAbuseSettings
from public_rest.policy import (
    CONFIRM_IDENTITY_SCOPE,
    SEND_IDENTITY_SCOPE,
    PublicPolicy,
    ip_scope,
    peer_ip,
)
from public_rest.ratelimit import InMemoryRateLimiter, bucket_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def policy(requests: int, window_s: float, burst: int) -> RateLimitPolicy:
    return RateLimitPolicy(requests=requests, window=timedelta(seconds=window_s), burst=burst)


def test_burst_then_refill_at_the_sustained_rate() -> None:
    clock = Clock()
    limiter = InMemoryRateLimiter(clock=clock)
    p = policy(30, 60, 10)  # one token every 2 s
    assert all(limiter.allow("s", "a", p).allowed for _ in range(10))
    denied = limiter.allow("s", "a", p)
    assert not denied.allowed
    assert denied.retry_after == 2
    clock.now += 1.0
    assert limiter.allow("s", "a", p).retry_after == 1
    clock.now += 1.0
    assert limiter.allow("s", "a", p).allowed
    assert not limiter.allow("s", "a", p).allowed


def test_retry_after_is_a_whole_number_of_seconds_at_least_one() -> None:
    clock = Clock()
    limiter = InMemoryRateLimiter(clock=clock)
    p = policy(300, 60, 1)  # a token every 0.2 s
    assert limiter.allow("s", "a", p).allowed
    denied = limiter.allow("s", "a", p)
    assert denied.retry_after == 1
    slow = policy(3, 600, 1)  # identity budget: one token every 200 s
    assert limiter.allow("e", "x", slow).allowed
    assert limiter.allow("e", "x", slow).retry_after == 200


def test_denied_requests_take_no_token() -> None:
    clock = Clock()
    limiter = InMemoryRateLimiter(clock=clock)
    p = policy(60, 60, 1)
    assert limiter.allow("s", "a", p).allowed
    for _ in range(50):
        assert not limiter.allow("s", "a", p).allowed
    clock.now += 1.0
    assert limiter.allow("s", "a", p).allowed


def test_keys_and_scopes_are_independent() -> None:
    limiter = InMemoryRateLimiter(clock=Clock())
    p = policy(1, 60, 1)
    assert limiter.allow("public_rest/class=browser_asset/ip", "1.1.1.1", p).allowed
    assert not limiter.allow("public_rest/class=browser_asset/ip", "1.1.1.1", p).allowed
    assert limiter.allow("public_rest/class=browser_asset/ip", "2.2.2.2", p).allowed
    assert limiter.allow("public_rest/class=public_auth/ip", "1.1.1.1", p).allowed
    assert bucket_key("public_rest/class=public_auth/ip", "1.1.1.1") == (
        "public_rest/class=public_auth/ip=1.1.1.1"
    )


def test_full_buckets_are_dropped_and_memory_is_capped() -> None:
    clock = Clock()
    limiter = InMemoryRateLimiter(clock=clock, max_buckets_per_scope=100)
    p = policy(60, 60, 2)
    for i in range(100):
        limiter.allow("s", f"ip{i}", p)
    assert limiter.size("s") == 100
    limiter.allow("s", "new", p)  # hard cap: the least recently used goes
    assert limiter.size("s") == 100
    assert limiter.evictions == 1
    clock.now += 10  # every bucket is full again: equivalent to a fresh one
    assert limiter.sweep() == 100
    assert limiter.size() == 0


def test_idle_buckets_are_swept_on_the_way() -> None:
    clock = Clock()
    limiter = InMemoryRateLimiter(clock=clock)
    p = policy(60, 60, 1)
    for i in range(50):
        limiter.allow("s", f"ip{i}", p)
    clock.now += 5
    limiter.allow("s", "late", p)
    assert limiter.size("s") == 1


def test_a_flood_in_one_scope_cannot_evict_another() -> None:
    limiter = InMemoryRateLimiter(clock=Clock(), max_buckets_per_scope=10)
    p = policy(1, 3600, 1)
    assert limiter.allow("auth", "victim", p).allowed
    for i in range(1000):
        limiter.allow("asset", f"ip{i}", p)
    assert not limiter.allow("auth", "victim", p).allowed


def test_max_buckets_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        InMemoryRateLimiter(max_buckets_per_scope=0)


def test_policy_uses_the_spec_defaults_and_namespaces() -> None:
    settings = PublicAntiAbuseSettings.model_validate({})
    limiter = InMemoryRateLimiter(clock=Clock())
    pol = PublicPolicy(settings, limiter)
    auth = pol.for_class("public_auth")
    assert (auth.rate.requests, auth.rate.window, auth.rate.burst) == (30, timedelta(minutes=1), 10)
    assert auth.max_body_bytes == 8192
    assert auth.ip_scope == "public_rest/class=public_auth/ip"
    boot = pol.for_class("browser_bootstrap")
    assert (boot.rate.requests, boot.rate.burst, boot.max_body_bytes) == (60, 20, 0)
    asset = pol.for_class("browser_asset")
    assert (asset.rate.requests, asset.rate.burst, asset.max_body_bytes) == (300, 80, 0)
    misc = pol.for_class("public_misc")
    assert (misc.rate.requests, misc.rate.burst, misc.max_body_bytes) == (30, 10, 0)
    assert (pol.send_identity.requests, pol.send_identity.window, pol.send_identity.burst) == (
        3,
        timedelta(minutes=10),
        1,
    )
    assert (pol.confirm_identity.requests, pol.confirm_identity.burst) == (6, 2)
    assert SEND_IDENTITY_SCOPE == "public_rest/class=public_auth/email"
    assert CONFIRM_IDENTITY_SCOPE == "public_rest/class=public_auth/challenge"
    assert ip_scope("browser_asset") == "public_rest/class=browser_asset/ip"

    for _ in range(10):
        assert pol.check_ip("public_auth", "198.51.100.1").allowed
    assert not pol.check_ip("public_auth", "198.51.100.1").allowed
    assert pol.check_ip("browser_asset", "198.51.100.1").allowed  # own bucket
    assert pol.check_send_identity("a@example.com").allowed
    assert not pol.check_send_identity("a@example.com").allowed
    assert pol.check_confirm_identity("ch1").allowed
    assert pol.check_confirm_identity("ch1").allowed
    assert not pol.check_confirm_identity("ch1").allowed


def test_method_allow_lists() -> None:
    assert PublicPolicy.allowed_methods("public_auth", "/api/v1/public/auth/send-email-code") == (
        "POST",
    )
    assert PublicPolicy.allowed_methods("browser_asset", "/assets/a.js") == ("GET", "HEAD")
    assert PublicPolicy.allowed_methods("browser_bootstrap", "/") == ("GET", "HEAD")
    assert PublicPolicy.allowed_methods("public_misc", "/healthz") == ("GET",)
    assert PublicPolicy.allowed_methods("public_misc", "/nothing") is None


@pytest.mark.parametrize(
    ("client", "expected"),
    [
        (("127.0.0.1", 5000), "127.0.0.1"),
        (["10.1.2.3", 1], "10.1.2.3"),
        (("::ffff:192.0.2.1", 1), "192.0.2.1"),
        (("2001:DB8:0:0::1", 1), "2001:db8::1"),
        (("not-an-ip", 1), "unknown"),
        (None, "unknown"),
        ((), "unknown"),
    ],
)
def test_peer_ip(client: object, expected: str) -> None:
    assert peer_ip(client) == expected
