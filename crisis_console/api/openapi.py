"""The OpenAPI 3.1 document of the JSON API, served at ``/api/v1/openapi.json``."""

from __future__ import annotations

from typing import Any

from flask import jsonify

from crisis_console.api import bp
from crisis_console.roles import ROLES
from crisis_console.services.events import KINDS, SEVERITIES

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
OBJECT = {"type": "object"}


def _path_id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}}


def _operation(
    summary: str, status: int, errors: tuple[int, ...], body: dict[str, Any] | None = None
) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": {**_ok(status, OBJECT), **_errors(*errors)}}
    if body is not None:
        operation["requestBody"] = _body(body)
    return operation


PUSHES_CAUGHT_UP = {
    "type": "object",
    "required": ["pushes"],
    "properties": {
        "pushes": {
            "type": "array",
            "items": {
                "type": "object",
                "description": "agents: the script.pushed message (push_id, seq, script); "
                "managers: the push's progress (id, delivered, acknowledged, pending …)",
                "anyOf": [{"required": ["push_id", "seq"]}, {"required": ["id"]}],
                "properties": {
                    "push_id": {"type": "integer"},
                    "seq": {"type": "integer", "minimum": 1},
                    "id": {"type": "integer"},
                },
            },
        },
        "last_seq": {
            "type": "integer",
            "minimum": 0,
            "description": "Agents (with after_seq): the newest seq this answer covers; the next after_seq",
        },
    },
}

EVENT_BODY = {
    "type": "object",
    "required": ["name", "kind", "severity"],
    "properties": {
        "name": {"type": "string"},
        "kind": {"type": "string", "enum": list(KINDS)},
        "severity": {"type": "string", "enum": list(SEVERITIES)},
        "areas": {"type": "array", "items": {"type": "string"}},
        "details": {"type": "object", "additionalProperties": {"type": "string"}},
        "exercise": {"type": "boolean"},
        "publish_drill": {"type": "boolean", "description": "a drill's messages go on the live public page"},
        "sms_script_id": {
            "type": ["integer", "null"],
            "description": "the script whose key message SMS replies carry (null: the newest approved)",
        },
    },
}
SCRIPT_BODY = {
    "type": "object",
    "required": ["title", "topic", "body"],
    "properties": {
        "title": {"type": "string"},
        "topic": {"type": "string"},
        "language": {"type": "string", "default": "en"},
        "summary": {
            "type": "string",
            "maxLength": 320,
            "description": "the public key message, plain text: SMS replies, the public page, CAP",
        },
        "body": {"type": "string", "description": "Markdown, public; rendered and sanitised"},
        "agent_notes": {
            "type": "string",
            "description": "Markdown for agents and managers only; never on a public channel",
        },
        "event_id": {"type": "integer"},
        "expires_at": {"type": "string", "format": "date-time"},
        "translation_of": {"type": "integer"},
    },
}
TIMING_REPORT = {
    "type": "object",
    "properties": {
        "event": {"type": "object"},
        "exercise": {"type": "boolean"},
        "declared_at": {"type": ["string", "null"], "format": "date-time"},
        "milestones": {
            "type": "array",
            "description": "reached milestones in the fixed order declared, first_push, all_acknowledged, "
            "announcement_live, first_spike, first_alert, stood_down",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "label": {"type": "string"},
                    "at": {"type": "string", "format": "date-time"},
                    "after_seconds": {"type": ["number", "null"], "description": "since the declaration"},
                },
            },
        },
        "missing": {"type": "array", "items": {"type": "string"}},
    },
}
AUDIENCE_BODY = {
    "type": "object",
    "properties": {"audience": {"oneOf": [{"const": "all"}, {"type": "array", "items": {"type": "string"}}]}},
}

LINE_BODY = {
    "type": "object",
    "required": ["number", "name", "route"],
    "properties": {
        "number": {"type": "string", "description": "E.164, e.g. +16175550311"},
        "name": {"type": "string"},
        "route": {
            "type": "object",
            "required": ["type"],
            "properties": {
                "type": {"type": "string", "enum": ["dial", "enqueue", "redirect"]},
                "number": {"type": "string"},
                "queue": {"type": "string"},
                "hold_music_url": {"type": "string"},
                "url": {"type": "string"},
            },
        },
        "languages": {"type": "array", "items": {"type": "string"}},
        "test": {
            "type": "boolean",
            "default": False,
            "description": "a test line for drills: exercise announcements play only on test lines",
        },
    },
}
ANNOUNCEMENT_BODY = {
    "type": "object",
    "required": ["line_id", "messages"],
    "properties": {
        "line_id": {"type": "integer"},
        "messages": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 4000}},
        "voice": {"type": "string"},
        "audio_url": {"type": "string"},
        "starts_at": {"type": "string", "format": "date-time"},
        "ends_at": {"type": "string", "format": "date-time"},
        "event_id": {
            "type": "integer",
            "description": "the event it serves; an exercise event's announcement (or one written while "
            "only exercises are active) can be activated only on a test line (409 exercise_on_live_line)",
        },
    },
}

IVR_PATHS: dict[str, Any] = {
    "/lines": {
        "post": _operation("Add a phone line (admin)", 201, (400, 401, 403, 409, 422), LINE_BODY),
        "get": _operation("List phone lines (admin, manager)", 200, (401, 403)),
    },
    "/lines/{line_id}": {
        "parameters": [_path_id("line_id")],
        "patch": _operation(
            "Change a line's name, route, languages or test flag; not while a drill plays on a test line "
            "being made live (admin)",
            200,
            (400, 401, 403, 404, 409, 422),
            {k: v for k, v in LINE_BODY.items() if k != "required"},
        ),
        "delete": {
            "summary": "Delete a line; 409 announcement_active while an announcement is active on it (admin)",
            "responses": {"204": {"description": "deleted"}, **_errors(401, 403, 404, 409)},
        },
    },
    "/announcements": {
        "post": _operation(
            "Write a draft announcement (manager)", 201, (400, 401, 403, 422), ANNOUNCEMENT_BODY
        ),
        "get": _operation("List announcements (manager, stakeholder)", 200, (401, 403)),
    },
    "/announcements/{announcement_id}": {
        "parameters": [_path_id("announcement_id")],
        "get": _operation("One announcement with its statistics", 200, (401, 403, 404)),
    },
    **{
        f"/announcements/{{announcement_id}}/{action}": {
            "parameters": [_path_id("announcement_id")],
            "post": _operation(f"{action.capitalize()} an announcement (manager)", 200, (401, 403, 404, 409)),
        }
        for action in ("submit", "approve", "return", "activate", "end")
    },
    "/announcements/{announcement_id}/stats": {
        "parameters": [_path_id("announcement_id")],
        "get": _operation("{calls, heard, deflected, routed} (manager, stakeholder)", 200, (401, 403, 404)),
    },
    "/announcements/{announcement_id}/preview": {
        "parameters": [
            _path_id("announcement_id"),
            {"name": "lang", "in": "query", "schema": {"type": "string"}},
        ],
        "get": _operation("Exactly what a caller hears: TwiML and text (manager)", 200, (401, 403, 404, 422)),
    },
}

COMPLAINT = {
    "type": "object",
    "required": ["category"],
    "properties": {
        "category": {"type": "string", "description": "code, name or alias (case-insensitive)"},
        "occurred_at": {"type": "string", "format": "date-time"},
        "channel": {"type": "string", "enum": ["phone", "sms", "web", "open311", "import"]},
        "zip": {"type": "string", "pattern": "^[0-9]{5}$"},
        "lat": {"type": "number", "minimum": -90, "maximum": 90},
        "lon": {"type": "number", "minimum": -180, "maximum": 180},
        "text": {"type": "string", "maxLength": 4000},
    },
}
CATEGORY_BODY = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "code": {"type": "string"},
        "name": {"type": "string"},
        "aliases": {"type": "array", "items": {"type": "string"}},
        "open311_code": {"type": "string"},
        "hazards": {"type": "array", "items": {"type": "string"}},
        "name_es": {"type": "string", "description": "the Spanish name"},
    },
}

CSV_OK = {"200": {"description": "CSV download", "content": {"text/csv": {"schema": {"type": "string"}}}}}

TREND_PATHS: dict[str, Any] = {
    "/trends.csv": {
        "get": {
            "summary": "The counts of /trends as CSV (bucket_start, local_time, time_zone, category, count); "
            "signed-in users only; text cells that a spreadsheet would run as a formula start with '",
            "parameters": [
                {"name": name, "in": "query", "schema": {"type": "string"}}
                for name in ("window", "bucket", "category", "zip", "at")
            ],
            "responses": {**CSV_OK, **_errors(401, 403, 422)},
        }
    },
    "/complaints.csv": {
        "get": {
            "summary": "Complaints that happened (occurred_at) in the window as CSV, with local times "
            "(manager, admin, stakeholder)",
            "parameters": [
                {"name": "window", "in": "query", "schema": {"type": "string", "default": "24h"}},
                {"name": "at", "in": "query", "schema": {"type": "string", "format": "date-time"}},
            ],
            "responses": {**CSV_OK, **_errors(401, 403, 422)},
        }
    },
    "/share-links": {
        "post": _operation(
            "A signed, expiring, revocable read-only dashboard link (manager)",
            201,
            (400, 401, 403, 422),
            {
                "type": "object",
                "properties": {
                    "expires_in": {"type": "integer", "minimum": 300, "maximum": 604800},
                    "label": {"type": "string"},
                },
            },
        ),
        "get": _operation("The live share links (manager)", 200, (401, 403)),
    },
    "/share-links/{link_id}": {
        "parameters": [{"name": "link_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "delete": {
            "summary": "Revoke a share link (manager)",
            "responses": {"204": {"description": "revoked"}, **_errors(401, 403, 404)},
        },
    },
    "/trends/movers": {
        "get": {
            **_operation("Categories furthest above their usual level in the window", 200, (401, 403, 422)),
            "parameters": [
                {"name": "window", "in": "query", "schema": {"type": "string", "default": "60m"}},
                {"name": "at", "in": "query", "schema": {"type": "string", "format": "date-time"}},
            ],
        }
    },
    "/trends/spikes": {
        "get": {
            **_operation(
                "Spikes as the detector saw them at `at` (default now): per category, and per hazard "
                "(its categories counted together: `hazard`, `categories`); signed-in users only",
                200,
                (401, 403, 422),
            ),
            "parameters": [
                {"name": "window", "in": "query", "schema": {"type": "string", "default": "60m"}},
                {"name": "at", "in": "query", "schema": {"type": "string", "format": "date-time"}},
            ],
        }
    },
    "/categories": {
        "get": {
            **_operation("The complaint-category catalogue (active categories)", 200, (401, 422)),
            "parameters": [
                {"name": "status", "in": "query", "schema": {"type": "string", "enum": ["active", "all"]}}
            ],
        },
        "post": _operation("Add a category (manager, admin)", 201, (400, 401, 403, 409, 422), CATEGORY_BODY),
    },
    "/categories/{code}": {
        "parameters": [{"name": "code", "in": "path", "required": True, "schema": {"type": "string"}}],
        "patch": _operation(
            "Change a category (manager, admin)", 200, (400, 401, 403, 404, 409, 422), CATEGORY_BODY
        ),
    },
    "/categories/{code}/retire": {
        "parameters": [{"name": "code", "in": "path", "required": True, "schema": {"type": "string"}}],
        "post": _operation(
            "Retire a category: no longer offered or matched for new contacts, history kept (manager, admin)",
            200,
            (401, 403, 404, 409),
        ),
    },
    "/categories/{code}/restore": {
        "parameters": [{"name": "code", "in": "path", "required": True, "schema": {"type": "string"}}],
        "post": _operation(
            "Offer and match a retired category again (manager, admin)", 200, (401, 403, 404, 409)
        ),
    },
    "/categories/{code}/merge": {
        "parameters": [{"name": "code", "in": "path", "required": True, "schema": {"type": "string"}}],
        "post": _operation(
            "Merge this category into another: its names become aliases there and its counts, "
            "history included, count there; returns the kept category (manager, admin)",
            200,
            (400, 401, 403, 404, 409, 422),
            {"type": "object", "required": ["into"], "properties": {"into": {"type": "string"}}},
        ),
    },
    "/complaints": {
        "post": _operation(
            "One complaint (422 naming the field if bad) or {complaints: [...]} (≤ 1000): accepted and rejected",
            201,
            (400, 401, 403, 422),
            {
                "oneOf": [
                    COMPLAINT,
                    {"type": "object", "properties": {"complaints": {"type": "array", "items": COMPLAINT}}},
                ]
            },
        )
    },
    "/trends": {
        "get": {
            **_operation("Counts per bucket per category, read from counters", 200, (401, 422)),
            "parameters": [
                {"name": name, "in": "query", "schema": {"type": "string"}}
                for name in ("window", "bucket", "category", "zip", "at")
            ],
        }
    },
}

FLAG_GROUP = {
    "type": "object",
    "description": "similar flags grouped (rapidfuzz); counts are over the window asked for",
    "properties": {
        "id": {"type": "integer", "description": "stable: the same group in every window"},
        "text": {"type": "string", "description": "the first flag's wording"},
        "texts": {"type": "array", "items": {"type": "string"}, "description": "distinct wordings"},
        "status": {"type": "string", "enum": ["open", "promoted", "dismissed"]},
        "count": {"type": "integer", "description": "distinct agents who raised it in the window"},
        "agents": {"type": "integer", "description": "same as count"},
        "flags": {"type": "integer", "description": "flags kept in the window"},
        "first_at": {"type": ["string", "null"], "format": "date-time"},
        "last_at": {"type": ["string", "null"], "format": "date-time"},
        "zips": {"type": "array", "items": {"type": "string"}},
        "categories": {"type": "array", "items": {"type": "string"}, "description": "codes agents chose"},
        "category": {"type": ["string", "null"], "description": "the category it was promoted to"},
        "complaints": {"type": ["integer", "null"], "description": "complaints counted on promotion"},
        "closed_by": {"type": ["string", "null"]},
        "closed_at": {"type": ["string", "null"], "format": "date-time"},
    },
}
FLAG_PATHS: dict[str, Any] = {
    "/flags": {
        "post": {
            **_operation(
                "An agent's “I keep hearing about…” (agent): 201 with the flag and its group; the same "
                "agent repeating the same topic within a minute gets 200 `duplicate: true` and is not "
                "counted again",
                201,
                (400, 401, 403, 422),
                {
                    "type": "object",
                    "required": ["text"],
                    "properties": {
                        "text": {"type": "string", "maxLength": 200},
                        "category": {"type": "string", "description": "code, name or alias of a category"},
                        "zip": {"type": "string", "pattern": "^[0-9]{5}$"},
                    },
                },
            ),
            "responses": {
                **_ok(201, {"type": "object", "properties": {"group": FLAG_GROUP}}, "raised"),
                **_ok(200, {"type": "object", "properties": {"group": FLAG_GROUP}}, "a repeat, not stored"),
                **_errors(400, 401, 403, 422),
            },
        },
        "get": {
            "summary": "Flag groups heard in the window, most agents first (manager, stakeholder)",
            "parameters": [
                {"name": "window", "in": "query", "schema": {"type": "string", "default": "60m"}},
                {
                    "name": "status",
                    "in": "query",
                    "schema": {"type": "string", "enum": ["open", "promoted", "dismissed", "all"]},
                },
            ],
            "responses": {
                **_ok(
                    200,
                    {
                        "type": "object",
                        "properties": {
                            "window": {"type": "string"},
                            "groups": {"type": "array", "items": FLAG_GROUP},
                        },
                    },
                ),
                **_errors(401, 403, 422),
            },
        },
    },
    "/flags/{group_id}/promote": {
        "parameters": [_path_id("group_id")],
        "post": {
            **_operation(
                "Turn an open flag group into a category (manager): a name or code of an existing "
                "category uses it, else one is created (name defaults to the group's text); every flag "
                "becomes a counted complaint at its own time and ZIP; 409 flag_closed if already closed",
                200,
                (400, 401, 403, 404, 409, 422),
            ),
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {"name": {"type": "string"}, "code": {"type": "string"}},
                        }
                    }
                },
            },
        },
    },
    "/flags/{group_id}/dismiss": {
        "parameters": [_path_id("group_id")],
        "post": _operation(
            "Dismiss an open flag group (manager); 409 flag_closed if already closed",
            200,
            (401, 403, 404, 409),
        ),
    },
}

ALERT_PATHS: dict[str, Any] = {
    "/alerts": {
        "get": {
            **_operation(
                "Alerts, newest first, with each delivery's status (manager, admin)", 200, (401, 403, 422)
            ),
            "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 500}}],
        }
    },
    "/alerts/{alert_id}": {
        "parameters": [_path_id("alert_id")],
        "get": _operation("One alert with its deliveries (manager, admin)", 200, (401, 403, 404)),
    },
    "/alerts/{alert_id}/ack": {
        "parameters": [_path_id("alert_id")],
        "post": _operation(
            "Acknowledge an alert; its escalation stops (manager, admin)", 200, (401, 403, 404)
        ),
    },
    "/suggestions": {
        "get": {
            **_operation("What can be drafted for a spike on a category (manager)", 200, (401, 403, 422)),
            "parameters": [
                {"name": "category", "in": "query", "required": True, "schema": {"type": "string"}}
            ],
        }
    },
    "/suggestions/draft": {
        "post": _operation(
            "Create the filled script or announcement drafts a suggestion offers (manager)",
            201,
            (400, 401, 403, 404, 409, 422),
            {
                "type": "object",
                "required": ["kind", "hazard"],
                "properties": {
                    "kind": {"type": "string", "enum": ["script", "announcement"]},
                    "hazard": {"type": "string"},
                    "event_id": {"type": "integer"},
                },
            },
        )
    },
}
EVENT_PATHS: dict[str, Any] = {
    "/events": {
        "post": _operation("Create a draft event (manager)", 201, (400, 401, 403, 422), EVENT_BODY),
        "get": {
            **_operation(
                "List events, newest first (a share link's viewer: only `status=active`, else 403)",
                200,
                (401, 403, 422),
            ),
            "parameters": [
                {
                    "name": "status",
                    "in": "query",
                    "schema": {"type": "string", "enum": ["draft", "active", "closed"]},
                }
            ],
        },
    },
    "/events/{event_id}": {
        "parameters": [_path_id("event_id")],
        "get": _operation("One event", 200, (401, 404)),
        "patch": _operation(
            "Change an open event (manager)", 200, (400, 401, 403, 404, 409, 422), EVENT_BODY
        ),
    },
    "/events/{event_id}/declare": {
        "parameters": [_path_id("event_id")],
        "post": _operation("Declare a draft event (manager)", 200, (401, 403, 404, 409)),
    },
    "/events/{event_id}/stand-down": {
        "parameters": [_path_id("event_id")],
        "post": _operation("Stand down an active event (manager)", 200, (401, 403, 404, 409)),
    },
    "/events/{event_id}/timing": {
        "parameters": [_path_id("event_id")],
        "get": {
            "summary": "Timing report: when each milestone was first reached (manager, stakeholder, admin)",
            "responses": {**_ok(200, TIMING_REPORT), **_errors(401, 403, 404)},
        },
    },
    "/scripts": {
        "post": _operation("Create a draft script (manager)", 201, (400, 401, 403, 409, 422), SCRIPT_BODY),
        "get": {
            **_operation("List scripts", 200, (401, 422)),
            "parameters": [
                {"name": "state", "in": "query", "schema": {"type": "string"}},
                {"name": "event_id", "in": "query", "schema": {"type": "integer"}},
                {"name": "language", "in": "query", "schema": {"type": "string"}},
            ],
        },
    },
    "/scripts/current": {
        "get": _operation("Scripts agents may see now, rendered (agent, manager)", 200, (401, 403))
    },
    "/scripts/import": {
        "post": _operation(
            "Create drafts from the hazard library for an event; templates already imported for it are "
            "listed in existing, not duplicated (200 when nothing was new) (manager)",
            201,
            (400, 401, 403, 404, 422),
            {
                "type": "object",
                "required": ["event_id"],
                "properties": {"event_id": {"type": "integer"}, "hazard": {"type": "string"}},
            },
        )
        | {
            "responses": {
                **_ok(201, OBJECT, "created"),
                **_ok(200, OBJECT, "all already imported"),
                **_errors(400, 401, 403, 404, 422),
            }
        }
    },
    "/scripts/{script_id}": {
        "parameters": [_path_id("script_id")],
        "get": _operation("A script with its versions and translations", 200, (401, 404)),
        "patch": _operation(
            "Edit; an approved script gets a new draft version (manager)",
            200,
            (400, 401, 403, 404, 409, 422),
            SCRIPT_BODY,
        ),
    },
    **{
        f"/scripts/{{script_id}}/{action}": {
            "parameters": [_path_id("script_id")],
            "post": _operation(
                f"{action.capitalize()} a script (manager); approving your own is 403 two_person_rule",
                200,
                (401, 403, 404, 409, 422),
            ),
        }
        for action in ("submit", "approve", "return", "retire")
    },
    "/scripts/{script_id}/diff": {
        "parameters": [
            _path_id("script_id"),
            {"name": "from", "in": "query", "schema": {"type": "integer"}},
            {"name": "to", "in": "query", "schema": {"type": "integer"}},
        ],
        "get": _operation("Line difference between two versions", 200, (401, 404, 422)),
    },
    "/scripts/{script_id}/push": {
        "parameters": [_path_id("script_id")],
        "post": _operation(
            "Push the approved version to all agents or teams (manager)",
            201,
            (400, 401, 403, 404, 409, 422),
            AUDIENCE_BODY,
        ),
    },
    "/scripts/{script_id}/announcement": {
        "parameters": [_path_id("script_id")],
        "post": _operation(
            "Draft an announcement saying the approved key message in each language the line offers, "
            "linked to the script versions (manager; a second manager approves it)",
            201,
            (400, 401, 403, 404, 409, 422),
            {"type": "object", "required": ["line_id"], "properties": {"line_id": {"type": "integer"}}},
        ),
    },
    "/channels": {
        "get": {
            **_operation(
                "What each channel says now for an event: agents, phone, sms, public, cap, each with the "
                "script versions it carries and whether it lags the approved ones (manager)",
                200,
                (401, 403, 404, 422),
            ),
            "parameters": [
                {"name": "event_id", "in": "query", "required": True, "schema": {"type": "integer"}}
            ],
        }
    },
    "/channels/republish": {
        "post": _operation(
            "Publish the public page and CAP again from the approved scripts (manager)", 200, (401, 403)
        )
    },
    "/pushes": {
        "get": {
            "summary": "Agents: pushes missed after after_seq, oldest first, and the newest seq; "
            "managers: the latest",
            "description": "Every push carries `seq`, one gap-free sequence per deployment. A client that "
            "receives seq N+k after N, reconnects, regains the network or becomes visible asks for "
            "`after_seq=N` and shows what it missed; it then moves its cursor to `last_seq` (pushes in "
            "between were for other teams). One call covers at most 500 pushes: while `last_seq` "
            "is below the deployment's newest, ask again from it.",
            "parameters": [{"name": "after_seq", "in": "query", "schema": {"type": "integer", "minimum": 0}}],
            "responses": {
                **_ok(200, PUSHES_CAUGHT_UP),
                **_errors(401, 403, 422),
            },
        }
    },
    "/pushes/{push_id}": {
        "parameters": [_path_id("push_id")],
        "get": _operation(
            "Delivery and acknowledgement counts and pending agents (manager)", 200, (401, 403, 404)
        ),
    },
    "/pushes/{push_id}/ack": {
        "parameters": [_path_id("push_id")],
        "post": _operation("Acknowledge a push over HTTP (agent)", 200, (401, 403, 404, 422)),
    },
}

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
            },
            "patch": {
                "summary": "Change your own preferred script language {language}",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["language"],
                                "properties": {"language": {"type": "string", "example": "es"}},
                            }
                        }
                    },
                },
                "responses": {**_ok(200, {"type": "object"}), **_errors(400, 401, 403, 415, 422)},
            },
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
                            "phone": {"type": "string", "description": "E.164 mobile number for SMS alerts"},
                            "email": {"type": "string", "description": "address for e-mail alerts"},
                            "language": {"type": "string", "description": "preferred script language"},
                        },
                    }
                ),
                "responses": {**_ok(200, {"type": "object"}), **_errors(400, 401, 403, 404, 409, 422)},
            }
        },
        **EVENT_PATHS,
        **ALERT_PATHS,
        **IVR_PATHS,
        **TREND_PATHS,
        **FLAG_PATHS,
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


def _document_body_errors(paths: dict[str, Any]) -> None:
    """Add the answers every JSON body may get (see crisis_console/api/body.py) to each operation
    that takes one: 400 unreadable, 413 over the size limit, 415 not sent as JSON, 422 a string
    no field can hold."""
    for item in paths.values():
        for operation in item.values():
            if isinstance(operation, dict) and "requestBody" in operation:
                for status, answer in _errors(400, 413, 415, 422).items():
                    operation["responses"].setdefault(status, answer)


_document_body_errors(DOCUMENT["paths"])


@bp.route("/openapi.json")
def openapi() -> Any:
    """Publish the OpenAPI document (public, so integrators can read it before signing in)."""
    return jsonify(DOCUMENT)
