"""The OpenAPI 3.1 document of the JSON API, served at ``/api/v1/openapi.json``."""

from __future__ import annotations

from typing import Any

from flask import jsonify

from crisis_console.api import bp
from crisis_console.roles import ROLES

ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*statuses: int) -> dict[str, Any]:
    return {
        str(status): {"description": "error", "content": {"application/json": {"schema": ERROR}}}
        for status in statuses
    }


def _ok(status: int, schema: dict[str, Any], description: str = "ok") -> dict[str, Any]:
    return {str(status): {"description": description, "content": {"application/json": {"schema": schema}}}}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


USER = {"$ref": "#/components/schemas/User"}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Crisis Console API",
        "version": "1",
        "description": "Real-time console for public-service contact centres during declared emergencies. "
        "Authenticate with `Authorization: Bearer TOKEN`, or with the session cookie from "
        "`POST /session` plus the `X-CSRFToken` header on writes.",
    },
    "servers": [{"url": "/api/v1"}],
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "cookie": {"type": "apiKey", "in": "cookie", "name": "session"},
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                            "field": {"type": "string"},
                        },
                    }
                },
            },
            "User": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "username": {"type": "string"},
                    "display_name": {"type": "string"},
                    "role": {"type": "string", "enum": list(ROLES)},
                    "team": {"type": ["string", "null"]},
                    "active": {"type": "boolean"},
                    "created_at": {"type": "string", "format": "date-time"},
                },
            },
            "AuditEntry": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "at": {"type": "string", "format": "date-time"},
                    "actor": {"type": "string"},
                    "action": {"type": "string"},
                    "subject": {"type": "string"},
                    "details": {"type": "object"},
                },
            },
        },
    },
    "security": [{"bearer": []}, {"cookie": []}],
    "paths": {
        "/session": {
            "post": {
                "summary": "Sign in; returns a session cookie and a CSRF token",
                "security": [],
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["username", "password"],
                        "properties": {"username": {"type": "string"}, "password": {"type": "string"}},
                    }
                ),
                "responses": {
                    **_ok(
                        201,
                        {"type": "object", "properties": {"user": USER, "csrf_token": {"type": "string"}}},
                    ),
                    **_errors(400, 401, 422, 429),
                },
            },
            "delete": {
                "summary": "Sign out",
                "responses": {"204": {"description": "signed out"}, **_errors(401)},
            },
        },
        "/me": {
            "get": {
                "summary": "The signed-in user",
                "responses": {**_ok(200, {"type": "object"}), **_errors(401)},
            }
        },
        "/users": {
            "get": {
                "summary": "List users (admin)",
                "responses": {**_ok(200, {"type": "object"}), **_errors(401, 403)},
            },
            "post": {
                "summary": "Create a user (admin)",
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["username", "role", "password"],
                        "properties": {
                            "username": {"type": "string"},
                            "role": {"type": "string", "enum": list(ROLES)},
                            "password": {"type": "string", "minLength": 10},
                            "team": {"type": "string"},
                            "display_name": {"type": "string"},
                        },
                    }
                ),
                "responses": {**_ok(201, {"type": "object"}), **_errors(400, 401, 403, 409, 422)},
            },
        },
        "/users/{user_id}": {
            "patch": {
                "summary": "Change role, team, active or password (admin)",
                "parameters": [
                    {"name": "user_id", "in": "path", "required": True, "schema": {"type": "integer"}}
                ],
                "requestBody": _body(
                    {
                        "type": "object",
                        "properties": {
                            "role": {"type": "string", "enum": list(ROLES)},
                            "team": {"type": "string"},
                            "active": {"type": "boolean"},
                            "password": {"type": "string"},
                        },
                    }
                ),
                "responses": {**_ok(200, {"type": "object"}), **_errors(400, 401, 403, 404, 409, 422)},
            }
        },
        "/audit": {
            "get": {
                "summary": "Audit entries, oldest first (manager, admin)",
                "parameters": [
                    {"name": "since", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                ],
                "responses": {
                    **_ok(
                        200,
                        {
                            "type": "object",
                            "properties": {
                                "entries": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/AuditEntry"},
                                },
                                "next_since": {"type": ["string", "null"]},
                            },
                        },
                    ),
                    **_errors(401, 403, 422),
                },
            }
        },
    },
}


@bp.route("/openapi.json")
def openapi() -> Any:
    """Publish the OpenAPI document (public, so integrators can read it before signing in)."""
    return jsonify(DOCUMENT)
