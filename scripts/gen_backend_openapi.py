"""Write contracts/backend.openapi.yaml: the gateway <-> backend REST contract.

The 18 self-service routes are generated from edgecore.backend.routes and the
FlatBuffers schemas (through the codec's reflection), so the document cannot
drift from what the gateway sends and expects. ``make gen-check`` proves the
committed file is current.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from edgecore.backend.routes import (
    BACKEND_ROUTES,
    CONFIRM_EMAIL_CODE_PATH,
    HEADER_DEVICE_SESSION_ID,
    HEADER_MESSAGE_TYPE,
    HEADER_TRACE_ID,
    HEADER_USER_ID,
    SEND_EMAIL_CODE_PATH,
    SESSION_LOOKUP_PATH,
)
from edgecore.fbjson import default_codec

SCALARS = {
    "bool": {"type": "boolean"},
    "byte": {"type": "integer", "minimum": -128, "maximum": 127},
    "ubyte": {"type": "integer", "minimum": 0, "maximum": 255},
    "short": {"type": "integer", "minimum": -32768, "maximum": 32767},
    "ushort": {"type": "integer", "minimum": 0, "maximum": 65535},
    "int": {"type": "integer", "format": "int32"},
    "uint": {"type": "integer", "minimum": 0, "maximum": 4294967295},
    "long": {"type": "integer", "format": "int64"},
    "ulong": {"type": "integer", "minimum": 0},
    "float": {"type": "number", "format": "float"},
    "double": {"type": "number", "format": "double"},
    "string": {"type": "string"},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _type_schema(label: str, enums: dict[str, dict[str, int]]) -> dict[str, Any]:
    label = label.removesuffix("?")
    if label.startswith("["):
        return {"type": "array", "items": _type_schema(label[1:-1], enums)}
    if label in SCALARS:
        return dict(SCALARS[label])
    return _ref(label)


def _schemas() -> dict[str, Any]:
    codec = default_codec()
    enums = codec.enums
    out: dict[str, Any] = {}
    wanted: set[str] = set()
    for route in BACKEND_ROUTES.values():
        wanted.update((route.request_table, route.response_table))
    pending = sorted(wanted)
    while pending:
        table = pending.pop()
        if table in out:
            continue
        properties = {}
        for name, label in codec.fields(table).items():
            schema = _type_schema(label, enums)
            properties[name] = schema
            inner = label.strip("[]?")
            if inner in codec.tables and inner not in out:
                pending.append(inner)
            elif inner in enums and inner not in out:
                out[inner] = {"type": "string", "enum": list(enums[inner])}
        out[table] = {"type": "object", "additionalProperties": False, "properties": properties}
    out["Error"] = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,63}$"},
                    "message": {"type": "string"},
                },
            }
        },
    }
    out["SessionRecord"] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["device_session_id", "user_id", "client_public_key", "status"],
        "properties": {
            "device_session_id": {"type": "string"},
            "user_id": {"type": "string"},
            "client_public_key": {
                "type": "string",
                "description": "standard base64 of the raw 32-byte Ed25519 public key",
            },
            "status": {"type": "string", "enum": ["active", "revoked"]},
            "created_at_ms": {"type": "integer", "format": "int64"},
            "revoked_at_ms": {"type": "integer", "format": "int64"},
            "revoke_reason": {"type": "string"},
            "client_metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    return dict(sorted(out.items()))


def _error_responses(*statuses: str) -> dict[str, Any]:
    return {
        status: {
            "description": "structured error",
            "content": {"application/json": {"schema": _ref("Error")}},
        }
        for status in statuses
    }


def _header(name: str, required: bool, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": required,
        "schema": {"type": "string"},
        "description": description,
    }


def build() -> dict[str, Any]:
    paths: dict[str, Any] = {
        SEND_EMAIL_CODE_PATH: {
            "post": {
                "operationId": "sendEmailCode",
                "tags": ["public auth"],
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "required": ["email", "preferred_language"],
                        "properties": {
                            "email": {"type": "string"},
                            "preferred_language": {"type": "string", "description": "BCP 47"},
                        },
                    }
                ),
                "responses": {
                    "200": _json_response(
                        {
                            "type": "object",
                            "required": ["challenge_id"],
                            "properties": {"challenge_id": {"type": "string"}},
                        }
                    ),
                    **_error_responses("400", "429", "503"),
                },
            }
        },
        CONFIRM_EMAIL_CODE_PATH: {
            "post": {
                "operationId": "confirmEmailCode",
                "tags": ["public auth"],
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "required": ["challenge_id", "code", "client_public_key", "time_zone"],
                        "properties": {
                            "challenge_id": {"type": "string"},
                            "code": {"type": "string"},
                            "client_public_key": {"type": "string", "format": "byte"},
                            "time_zone": {"type": "string", "description": "IANA name"},
                        },
                    }
                ),
                "responses": {
                    "200": _json_response(
                        {
                            "type": "object",
                            "required": ["device_session_id"],
                            "properties": {"device_session_id": {"type": "string"}},
                        }
                    ),
                    **_error_responses("400", "404", "410", "429", "503"),
                },
            }
        },
        SESSION_LOOKUP_PATH: {
            "get": {
                "operationId": "getSession",
                "tags": ["internal"],
                "description": "HMAC-signed (docs/internal-auth.md).",
                "parameters": [
                    {
                        "name": "device_session_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": _json_response(_ref("SessionRecord")),
                    **_error_responses("401", "404"),
                },
            }
        },
    }
    context = [
        _header(HEADER_USER_ID, True, "verified user id"),
        _header(HEADER_DEVICE_SESSION_ID, True, "verified device session id"),
        _header(HEADER_MESSAGE_TYPE, True, "the external message type"),
        _header(HEADER_TRACE_ID, False, "client trace id"),
        _header("X-Request-Id", True, "the client's request_id"),
    ]
    for route in BACKEND_ROUTES.values():
        paths[route.path] = {
            "post": {
                "operationId": route.message_type,
                "tags": [route.message_type.split(".", 1)[0]],
                "description": (
                    f"Message type `{route.message_type}`. HMAC-signed; body and answer are the "
                    "FlatBuffers tables in the JSON mapping of docs/flatbuffers.md."
                ),
                "parameters": context,
                "requestBody": _json_body(_ref(route.request_table)),
                "responses": {
                    "200": _json_response(_ref(route.response_table)),
                    **_error_responses("400", "401", "403", "404", "409", "422"),
                },
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Galaxy backend, as called by the Edge Gateway",
            "version": "1.0.0",
            "description": (
                "Generated by scripts/gen_backend_openapi.py; do not edit. Business errors are "
                '4xx with {"error": {"code", "message"}}; the gateway projects them as '
                "result_code plus a FlatBuffers gateway.ErrorResponse."
            ),
        },
        "paths": paths,
        "components": {"schemas": _schemas()},
    }


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _json_response(schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": "OK", "content": {"application/json": {"schema": schema}}}


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        # Shared sub-objects are written out in full: readers should not need anchors.
        return True


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("contracts/backend.openapi.yaml")
    out.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.dump(build(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
