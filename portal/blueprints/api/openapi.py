"""`GET /api/v2/openapi.json`: the OpenAPI 3.1 document of the JSON API and `/health`.

The document is built from the same constants the views and validators enforce (name and
description limits, page size, body limit), so a limit changed in code changes here too.
`tests/blueprints/api/test_openapi.py` fails when a route under /api/v2 or /health is missing
from it, and `tests/e2e/test_api_schemathesis.py` checks that every answer the app gives matches it.
Served without authentication: it describes the API, it holds nothing secret.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, jsonify
from flask.typing import ResponseReturnValue

from portal.blueprints.api.blueprint import bp
from portal.blueprints.api.campaigns import MAX_PAGE, PAGE_SIZE
from portal.services.accounts.tokens import TOKEN_NAME_MAX
from portal.services.campaigns.input import DESCRIPTION_MAX, NAME_MAX
from portal.services.campaigns.records import CONTENT_TABLES
from portal.services.infra.text_input import NOT_VISIBLE_CLASS

JSON = "application/json"
# Patterns mirror the server's rules (campaign_input, the token endpoint, text_input). A name:
# no C0/C1 control or bidi control characters and at least one visible character (a bare `\S`
# would let a control or a zero-width space stand in for it). A description may hold tabs and
# line breaks but no other control characters. Email and password: not blank and no NUL; any
# other oddity is just a wrong credential (401).
_BIDI = r"\u202a-\u202e\u2066-\u2069"
_NO_CONTROLS = r"[^\u0000-\u001f\u007f-\u009f" + _BIDI + "]*"
_VISIBLE = "[^" + NOT_VISIBLE_CLASS + "]"
NAME_PATTERN = "^" + _NO_CONTROLS + _VISIBLE + _NO_CONTROLS + "$"
TOKEN_NAME_PATTERN = "^(|" + _NO_CONTROLS + _VISIBLE + _NO_CONTROLS + ")$"
DESCRIPTION_PATTERN = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f" + _BIDI + "]*$"
CREDENTIAL_PATTERN = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
# What campaign_json's `counts` holds: one per content table, plus the campaign's own images.
COUNT_NAMES = (*CONTENT_TABLES, "images")


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {JSON: {"schema": _ref("Error")}},
    }
    if headers:
        response["headers"] = headers
    return response


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}

WWW_AUTHENTICATE = {
    "WWW-Authenticate": {
        "description": 'The scheme to use: `Bearer realm="campaign-pool"`, with '
        '`error="invalid_token"` when a token was sent but refused.',
        "schema": {"type": "string"},
    }
}


def _common_errors(max_body: int) -> dict[str, dict[str, Any]]:
    """Answers shared by several operations, referenced as `#/components/responses/...`."""
    return {
        "BadRequest": _error(
            "The body is not usable: empty, malformed JSON, not an object, a required field "
            "missing or blank, a field of the wrong type or an unknown field. `errors` names "
            "each field (`base` when no single field is at fault)."
        ),
        "Unauthorized": _error(
            "No bearer token, or one that is unknown, revoked or belongs to a deactivated user.",
            WWW_AUTHENTICATE,
        ),
        "Forbidden": _error("The token is valid but its user is neither gamemaster nor admin."),
        "PayloadTooLarge": _error(f"The body is larger than {max_body} bytes."),
        "UnsupportedMediaType": _error("The body is not declared as `application/json`."),
        "TooManySignIns": _error(
            "Too many failed sign-ins for this account or from this address "
            "(docs/security.md); try again after `Retry-After` seconds.",
            RETRY_AFTER,
        ),
    }


def _schemas() -> dict[str, Any]:
    timestamp = {"type": "string", "format": "date-time"}
    optional_timestamp = {"type": ["string", "null"], "format": "date-time"}
    count = {"type": "integer", "minimum": 0}
    return {
        "Error": {
            "type": "object",
            "description": "Every failure of the API and /health has this shape. `errors` "
            "follows the original Rails API: field name to messages, `base` for the request "
            "as a whole.",
            "required": ["error", "message", "status", "errors"],
            "properties": {
                "error": {"type": "string", "examples": ["Unprocessable Entity"]},
                "message": {"type": "string", "examples": ["invalid campaign"]},
                "status": {"type": "integer", "minimum": 400, "maximum": 599},
                "errors": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                    "examples": [{"name": ["has already been taken"]}],
                },
            },
        },
        "User": {
            "type": "object",
            "required": ["id", "email", "name", "admin", "gamemaster", "active", "entity_class"],
            "additionalProperties": False,
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "email": {"type": "string"},
                "name": {"type": "string"},
                "admin": {"type": "boolean"},
                "gamemaster": {"type": "boolean"},
                "active": {"type": "boolean"},
                "entity_class": {"const": "User"},
            },
        },
        "TokenRequest": {
            "type": "object",
            "required": ["email", "password"],
            "additionalProperties": False,
            "properties": {
                "email": {"type": "string", "pattern": CREDENTIAL_PATTERN},
                "password": {"type": "string", "pattern": CREDENTIAL_PATTERN},
                "name": {
                    "type": ["string", "null"],
                    "maxLength": TOKEN_NAME_MAX,
                    "pattern": TOKEN_NAME_PATTERN,
                    "description": "A label for the token (default `api`).",
                },
            },
        },
        "Token": {
            "type": "object",
            "required": ["token", "token_type", "user"],
            "additionalProperties": False,
            "properties": {
                "token": {
                    "type": "string",
                    "pattern": "^cp_",
                    "description": "Shown once; only its hash is stored.",
                },
                "token_type": {"const": "Bearer"},
                "user": _ref("User"),
            },
        },
        "Me": {
            "type": "object",
            "required": ["user"],
            "additionalProperties": False,
            "properties": {"user": _ref("User")},
        },
        "CampaignRequest": {
            "type": "object",
            "required": ["campaign"],
            "additionalProperties": False,
            "properties": {
                "campaign": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "name": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": NAME_MAX,
                            "pattern": NAME_PATTERN,
                            "description": "Trimmed of surrounding white space; unique among "
                            "the user's campaigns. HTML is kept as text.",
                        },
                        "description": {
                            "type": ["string", "null"],
                            "maxLength": DESCRIPTION_MAX,
                            "pattern": DESCRIPTION_PATTERN,
                        },
                    },
                }
            },
        },
        "Counts": {
            "type": "object",
            "required": list(COUNT_NAMES),
            "additionalProperties": False,
            "properties": dict.fromkeys(COUNT_NAMES, count),
            "description": "Content rows the campaign holds; `images` are the images attached "
            "to the campaign itself.",
        },
        "Campaign": {
            "type": "object",
            "required": [
                "id",
                "name",
                "description",
                "gamemaster_id",
                "active",
                "created_at",
                "updated_at",
                "activated_at",
                "seeded_at",
                "entity_class",
                "seeding_status",
                "counts",
            ],
            "additionalProperties": False,
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "name": {"type": "string"},
                "description": {"type": ["string", "null"]},
                "gamemaster_id": {"type": "string", "format": "uuid"},
                "active": {"type": "boolean"},
                "created_at": timestamp,
                "updated_at": timestamp,
                "activated_at": optional_timestamp,
                "seeded_at": optional_timestamp,
                "entity_class": {"const": "Campaign"},
                "seeding_status": {
                    "enum": ["pending", "complete"],
                    "description": "`pending` while a queued seeding job has not filled the "
                    "campaign yet (POOL_FALLBACK=async); its counts grow when it completes.",
                },
                "counts": _ref("Counts"),
                "source": {
                    "enum": ["user_pool", "master_pool", "seeded"],
                    "description": "Only in the answer to a create: which path served it.",
                },
            },
        },
        "CreatedCampaign": {
            "allOf": [_ref("Campaign"), {"required": ["source"]}],
        },
        "CampaignList": {
            "type": "object",
            "required": ["campaigns", "meta"],
            "additionalProperties": False,
            "properties": {
                "campaigns": {"type": "array", "items": _ref("Campaign")},
                "meta": {
                    "type": "object",
                    "required": ["page", "per_page"],
                    "additionalProperties": False,
                    "properties": {
                        "page": {"type": "integer", "minimum": 1},
                        "per_page": {"const": PAGE_SIZE},
                    },
                },
            },
        },
        "HealthCheck": {
            "type": "object",
            "required": ["ok"],
            "properties": {"ok": {"type": "boolean"}},
            "additionalProperties": True,
        },
        "Health": {
            "type": "object",
            "description": "`checks` only for a signed-in admin or with HEALTH_TOKEN.",
            "required": ["status"],
            "additionalProperties": False,
            "properties": {
                "status": {"enum": ["ok", "degraded", "down"]},
                "checks": {
                    "type": "object",
                    "required": ["database", "redis", "workers", "pool"],
                    "additionalProperties": False,
                    "properties": {
                        name: _ref("HealthCheck")
                        for name in ("database", "redis", "workers", "pool")
                    },
                },
            },
        },
    }


def _paths() -> dict[str, Any]:
    def common(name: str) -> dict[str, str]:
        return {"$ref": f"#/components/responses/{name}"}

    bearer: list[dict[str, list[str]]] = [{"bearerAuth": []}]
    return {
        "/api/v2/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This document",
                "security": [],
                "responses": {"200": _json("The OpenAPI document.", {"type": "object"})},
            }
        },
        "/api/v2/auth/token": {
            "post": {
                "operationId": "createToken",
                "summary": "Trade an email and password for a bearer token",
                "security": [],
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": _ref("TokenRequest")}},
                },
                "responses": {
                    "201": _json("The token, shown this once, and its user.", _ref("Token")),
                    "400": common("BadRequest"),
                    "401": _error(
                        "Wrong email or password, or a deactivated user.", WWW_AUTHENTICATE
                    ),
                    "413": common("PayloadTooLarge"),
                    "415": common("UnsupportedMediaType"),
                    "429": common("TooManySignIns"),
                },
            },
            "delete": {
                "operationId": "revokeToken",
                "summary": "Revoke the token this request is made with",
                "security": bearer,
                "responses": {
                    "204": {"description": "Revoked; the token is refused from now on."},
                    "401": common("Unauthorized"),
                },
            },
        },
        "/api/v2/auth/me": {
            "get": {
                "operationId": "getMe",
                "summary": "The user a token belongs to",
                "security": bearer,
                "responses": {
                    "200": _json("The token's user.", _ref("Me")),
                    "401": common("Unauthorized"),
                },
            }
        },
        "/api/v2/campaigns": {
            "post": {
                "operationId": "createCampaign",
                "summary": "Create a campaign: from the pool, else by seeding",
                "security": bearer,
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": _ref("CampaignRequest")}},
                },
                "responses": {
                    "201": _json("The new campaign.", _ref("CreatedCampaign")),
                    "400": common("BadRequest"),
                    "401": common("Unauthorized"),
                    "403": common("Forbidden"),
                    "413": common("PayloadTooLarge"),
                    "415": common("UnsupportedMediaType"),
                    "422": _error(
                        "The campaign is invalid: a field is missing, blank, too long, of the "
                        "wrong type or holds control or bidirectional characters, a name is "
                        "only invisible characters, a field is unknown, the name is taken "
                        '(`{"name": ["has already been taken"]}`), or the user owns as many '
                        "campaigns as one account may (CAMPAIGN_CAP_PER_USER)."
                    ),
                    "429": _error(
                        "This gamemaster created more campaigns than CAMPAIGN_CREATE_LIMIT "
                        "allows (30 an hour by default); try again after `Retry-After` seconds.",
                        RETRY_AFTER,
                    ),
                    "503": _error("No master template exists, so nothing can be seeded."),
                },
            },
            "get": {
                "operationId": "listCampaigns",
                "summary": "The caller's campaigns, newest first",
                "security": bearer,
                "parameters": [
                    {
                        "name": "page",
                        "in": "query",
                        "required": False,
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_PAGE,
                            "default": 1,
                        },
                        "description": f"{PAGE_SIZE} campaigns a page; past the end is empty.",
                    }
                ],
                "responses": {
                    "200": _json("One page of campaigns.", _ref("CampaignList")),
                    "400": _error(f"`page` is not a whole number from 1 to {MAX_PAGE}."),
                    "401": common("Unauthorized"),
                },
            },
        },
        "/api/v2/campaigns/{campaign_id}": {
            "get": {
                "operationId": "getCampaign",
                "summary": "One of the caller's campaigns",
                "security": bearer,
                "parameters": [
                    {
                        "name": "campaign_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "format": "uuid"},
                    }
                ],
                "responses": {
                    "200": _json("The campaign.", _ref("Campaign")),
                    "401": common("Unauthorized"),
                    "404": _error(
                        "No such campaign among the caller's (someone else's is a 404 too, "
                        "so ids cannot be probed), or the id is not a UUID."
                    ),
                },
            }
        },
        "/health": {
            "get": {
                "operationId": "getHealth",
                "summary": "Liveness and readiness (details with HEALTH_TOKEN or as an admin)",
                "security": [],
                "responses": {
                    "200": _json("Up: `ok`, or `degraded` (Redis, workers, pool).", _ref("Health")),
                    "503": _json("Down: the database is unreachable.", _ref("Health")),
                },
            }
        },
    }


def build_openapi(max_body: int) -> dict[str, Any]:
    """The whole document; `max_body` is the app's MAX_CONTENT_LENGTH."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Campaign Pool API",
            "version": "2",
            "description": "Create Chi War campaigns instantly from a pool of pre-seeded "
            "campaigns. Authenticate with `POST /api/v2/auth/token`, then send "
            f"`Authorization: Bearer <token>`. Bodies are JSON, at most {max_body} bytes. "
            "See docs/api.md.",
        },
        "security": [{"bearerAuth": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "cp_..."}
            },
            "schemas": _schemas(),
            "responses": _common_errors(max_body),
        },
    }


@bp.get("/openapi.json")
def openapi_document() -> ResponseReturnValue:
    """The document, for clients, code generators and schemathesis."""
    return jsonify(build_openapi(current_app.config["MAX_CONTENT_LENGTH"]))
