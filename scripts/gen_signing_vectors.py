"""Write contracts/signing-vectors-v1.json: deterministic signing test vectors.

Keys are derived from fixed labels, Ed25519 signatures are deterministic, so
the file is reproducible byte for byte (``make gen-check`` proves it). A
client in any language can load it and check that it builds the same
signing inputs and signatures (docs/signing.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgecore.catalog import SUBSCRIBE_EVENTS_MESSAGE_TYPE
from edgecore.fbjson import default_codec
from edgecore.keys import encode_ed25519_pkcs8_pem
from edgecore.payloads import encode_error_response, encode_server_time_event
from edgecore.signing import (
    Signer,
    event_signing_input,
    payload_hash,
    request_signing_input,
    response_signing_input,
)

CLIENT_SEED = hashlib.sha256(b"galaxy-edge-gateway signing vectors: client device key").digest()
SERVER_SEED = hashlib.sha256(b"galaxy-edge-gateway signing vectors: response signer").digest()

CODEC = default_codec()
LONG_ID = "r-" + "x" * 198  # 200 bytes: a two-byte uvarint length prefix


def _key(signer: Signer) -> dict[str, str]:
    return {
        "seed_hex": signer.seed().hex(),
        "public_key_hex": signer.public_key.hex(),
        "public_key_base64": base64.b64encode(signer.public_key).decode(),
        "private_key_pkcs8_pem": encode_ed25519_pkcs8_pem(signer.seed()).decode(),
    }


def _json_value(value: Any) -> Any:
    """Integers (the 64-bit ``timestamp_ms``) as decimal strings, everything else as is.

    JSON numbers beyond 2^53 lose precision in JavaScript's ``JSON.parse`` (and
    in any reader that parses numbers as doubles), so the file never holds one:
    every language reads the strings exactly and converts them itself
    (``int(...)``, ``BigInt(...)``, ``strconv.ParseUint``).
    """
    if isinstance(value, bool) or not isinstance(value, int):
        return value
    return str(value)


def _case(
    name: str,
    build_input: Callable[..., bytes],
    signer: Signer,
    payload: bytes,
    **fields: Any,
) -> dict[str, Any]:
    digest = payload_hash(payload)
    signing_input = build_input(payload_hash=digest, **fields)
    return {
        "name": name,
        "fields": {key: _json_value(value) for key, value in fields.items()},
        "payload_hex": payload.hex(),
        "payload_hash_hex": digest.hex(),
        "signing_input_hex": signing_input.hex(),
        "signature_hex": signer.sign(signing_input).hex(),
    }


def _request(name: str, client: Signer, payload: bytes, **fields: Any) -> dict[str, Any]:
    return _case(name, request_signing_input, client, payload, **fields)


def _response(name: str, server: Signer, payload: bytes, **fields: Any) -> dict[str, Any]:
    return _case(name, response_signing_input, server, payload, **fields)


def _event(name: str, server: Signer, payload: bytes, **fields: Any) -> dict[str, Any]:
    return _case(name, event_signing_input, server, payload, **fields)


def build() -> dict[str, Any]:
    client = Signer(CLIENT_SEED)
    server = Signer(SERVER_SEED)
    return {
        "description": (
            "Galaxy Edge Gateway v1 signing vectors. Strings are UTF-8; every string and "
            "bytes field (domain marker included) is uvarint(len) || bytes; timestamp_ms is "
            "8-byte big-endian. 64-bit integers (timestamp_ms) are written as decimal strings "
            "so that every JSON parser reads them exactly. payload_hash = sha256(payload). "
            "Requests are signed by the client key, responses and events by the server key. "
            "See docs/signing.md."
        ),
        "encoding_version": 1,
        "client_key": _key(client),
        "server_key": _key(server),
        "requests": [
            _request(
                "execute_command",
                client,
                CODEC.encode("user.AccountGetRequest", {}),
                protocol_version="v1",
                device_session_id="ds-7f3c2a",
                message_type="user.account.get",
                timestamp_ms=1_767_225_600_000,
                request_id="req-0001",
            ),
            _request(
                "subscribe_events_empty_payload",
                client,
                b"",
                protocol_version="v1",
                device_session_id="ds-7f3c2a",
                message_type=SUBSCRIBE_EVENTS_MESSAGE_TYPE,
                timestamp_ms=1_767_225_600_123,
                request_id="req-0002",
            ),
            _request(
                "long_request_id_and_utf8",
                client,
                "планета".encode(),
                protocol_version="v1",
                device_session_id="ds-ünïcode",
                message_type="lobby.game.open-enrollment",
                timestamp_ms=0,
                request_id=LONG_ID,
            ),
        ],
        "responses": [
            _response(
                "ok",
                server,
                CODEC.encode(
                    "user.AccountGetResponse",
                    {"account": {"user_id": "u-1", "display_name": "Ada"}},
                ),
                protocol_version="v1",
                request_id="req-0001",
                timestamp_ms=1_767_225_600_250,
                result_code="ok",
            ),
            _response(
                "business_error",
                server,
                encode_error_response("game_not_found", "game does not exist"),
                protocol_version="v1",
                request_id=LONG_ID,
                timestamp_ms=(1 << 64) - 1,
                result_code="game_not_found",
            ),
        ],
        "events": [
            _event(
                "server_time_bootstrap",
                server,
                encode_server_time_event(1_767_225_600_130),
                event_type="gateway.server_time",
                event_id="req-0002",
                timestamp_ms=1_767_225_600_130,
                request_id="",
                trace_id="",
            ),
            _event(
                "notification_with_correlation",
                server,
                b"notification-bytes",
                event_type="lobby.invite.received",
                event_id="evt-42",
                timestamp_ms=1_767_225_601_000,
                request_id="req-0009",
                trace_id="trace-abc",
            ),
        ],
    }


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("contracts/signing-vectors-v1.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(build(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
