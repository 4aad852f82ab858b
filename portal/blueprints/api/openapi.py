"""`GET /api/v2/openapi.json`: the OpenAPI 3.1 document of the JSON API, the sign-in routes and
`/health`, generated from the pydantic models the views validate with (`portal.blueprints.spec`).

`tests/blueprints/api/test_openapi.py` fails when a route under /api/v2, /users or /health is
missing from it, and `tests/e2e/test_api_schemathesis.py` checks that every answer the app
gives matches it.
Served without authentication: it describes the API, it holds nothing secret.
"""

from __future__ import annotations

from flask import jsonify
from flask.typing import ResponseReturnValue
from spectree import Response as Doc

from portal.blueprints.api.blueprint import bp
from portal.blueprints.spec import api_spec, openapi_document


@bp.get("/openapi.json")
@api_spec.validate(resp=Doc(HTTP_200=None), security={})
def openapi() -> ResponseReturnValue:
    """This document, for clients, code generators and schemathesis."""
    return jsonify(openapi_document())
