"""Malformed internal stream entries: the decoder's reason as a bounded metric label.

The reason text may name any field (attacker-influenced only through the
backend, but unbounded all the same), so metrics carry one of a fixed set of
labels. edge-grpc and push-hub count drops with the same labels.
"""

from __future__ import annotations

from typing import Final

__all__ = ["drop_reason"]

# Decoder reasons (edgecore.streams / edgecore.sessions) -> stable metric labels.
_REASONS: Final = (
    ("missing or unsupported entry version", "unsupported_version"),
    ("unknown field", "unknown_field"),
    ("missing field", "missing_field"),
    ("unknown session event kind", "unknown_kind"),
    ("session record", "invalid_session_record"),
    ("a text field is not UTF-8", "invalid_utf8"),
    ("must not be empty", "empty_field"),
    ("is longer than", "field_too_long"),
    ("payload is larger than", "payload_too_large"),
    ("does not match its history", "wrong_history"),
)


def drop_reason(reason: str) -> str:
    """A bounded label for a malformed entry's reason (the text itself may name any field)."""
    for needle, label in _REASONS:
        if needle in reason:
            return label
    return "malformed"
