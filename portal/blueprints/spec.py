"""The one description of the HTTP API: pydantic models that validate and document it.

Each JSON view declares its request and response models with `@api_spec.validate(...)`
(spectree); the same models validate what comes in, validate what goes out, and make the OpenAPI
3.1 document served at `/api/v2/openapi.json`. Why spectree and pydantic: docs/api.md, "One
source of truth".

Validation failures are answered in the API's own error shape, not spectree's: `before_hook`
turns a pydantic error into `{"errors": {"field": ["message"]}}`, with 422 for a body and 400
for query parameters or a sign-in (the servers answer those with 400). `check_request_body`
refuses a body of the wrong type (415) or malformed JSON (400) before anything is validated,
which spectree by itself would read as an empty object.
"""

from __future__ import annotations

import json
from typing import Any, cast

from flask import current_app, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from spectree import SecurityScheme, SpecTree
from spectree.model_adapter.pydantic_adapter import PydanticModelAdapter
from spectree.models import SecuritySchemeData

from portal.blueprints.errors import ApiError


class Error(BaseModel):
    """Every failure of the API and /health. `error` is the HTTP status name (the servers'
    `{"error": ...}`), `errors` maps each field to its messages (`base`: the request as a
    whole), as the original Rails API did."""

    model_config = ConfigDict(extra="forbid")

    error: str
    message: str
    status: int = Field(ge=400, le=599)
    errors: dict[str, list[str]]


JSON_MIMETYPES = ("application/json",)
MULTIPART = "multipart/form-data"

# Messages in the Rails wording the game's clients show next to their fields.
MESSAGES = {
    "missing": "can't be blank",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "json_invalid": "is not valid JSON",
    "json_type": "must be a JSON text",
    "uuid_parsing": "is not a UUID",
    "uuid_type": "is not a UUID",
    "extra_forbidden": "is not a known field",
}


def field_errors(error: ValidationError) -> dict[str, list[str]]:
    """`{"field": ["message", ...]}` for a pydantic error: the field is the innermost name in
    the error's location (`campaign.name` -> `name`), `base` when there is none."""
    errors: dict[str, list[str]] = {}
    for item in error.errors(include_url=False):
        names = [part for part in item.get("loc", ()) if isinstance(part, str)]
        field = names[-1][:50] if names else "base"
        kind = item.get("type", "")
        ctx = item.get("ctx") or {}
        if kind == "greater_than_equal":
            message = f"must be at least {ctx.get('ge')}"
        elif kind == "less_than_equal":
            message = f"must be at most {ctx.get('le')}"
        elif kind == "string_too_long":
            message = f"is too long (maximum is {ctx.get('max_length')} characters)"
        else:
            message = MESSAGES.get(kind, str(item.get("msg", "is invalid")))
        if message not in errors.setdefault(field, []):
            errors[field].append(message)
    return errors


def check_body(has_json: bool, has_form: bool) -> None:
    """415 for a body of a type the route does not take, 400 for JSON that is malformed, empty
    or not an object: raised before validation so the client learns what is really wrong."""
    if has_form and request.mimetype == MULTIPART:
        return
    if has_json and (request.mimetype in JSON_MIMETYPES or request.mimetype.endswith("+json")):
        raw = request.get_data(cache=True)
        if not raw.strip():
            raise ApiError(400, "request body is empty", {"base": ["request body is empty"]})
        try:
            data = json.loads(raw)
        except ValueError as error:  # includes UnicodeDecodeError
            message = f"malformed JSON: {error}"
            raise ApiError(400, message, {"base": [message]}) from None
        except RecursionError:
            message = "malformed JSON: nested too deeply"
            raise ApiError(400, message, {"base": [message]}) from None
        if not isinstance(data, dict):
            message = "request body must be a JSON object"
            raise ApiError(400, message, {"base": [message]})
        return
    accepted = " or ".join(
        name for name, ok in (("application/json", has_json), (MULTIPART, has_form)) if ok
    )
    message = f"Content-Type must be {accepted}"
    raise ApiError(415, message, {"base": [message]})


def check_request_body() -> None:
    """A `before_request` of the API blueprints: the body checks of `check_body` for a route
    that declares a JSON or form model, before spectree parses the body (its parser would
    turn malformed JSON into an empty object, and JSON nested thousands deep into a crash)."""
    if request.method in ("GET", "DELETE", "HEAD", "OPTIONS"):
        return
    view = current_app.view_functions.get(request.endpoint or "")
    metadata = api_spec.get_function_metadata(view) if view is not None else None
    if metadata is not None and (metadata.json or metadata.form):
        check_body(bool(metadata.json), bool(metadata.form))


def before_hook(
    req: Any, resp: Any, req_validation_error: Exception | None, instance: Any, adapter: Any
) -> None:
    """Runs after spectree validated the request, before the view: a validation error becomes
    an ApiError in the API's shape (see the module docstring)."""
    if req_validation_error is None:
        return
    errors = (
        field_errors(req_validation_error)
        if isinstance(req_validation_error, ValidationError)
        else {"base": [str(req_validation_error)]}
    )
    status = getattr(resp, "status_code", 422) or 422
    summary = "; ".join(f"{field} {', '.join(msgs)}" for field, msgs in errors.items())
    raise ApiError(status, f"invalid request: {summary}"[:500], errors)


class ModelAdapter(PydanticModelAdapter):
    """spectree's pydantic adapter, except that the errors it lists leave out what the client
    sent: an uploaded file cannot be turned into JSON (spectree serializes the list before our
    `before_hook` replaces it), and echoing input back is never needed."""

    def validation_errors(self, err: Exception) -> Any:
        if not isinstance(err, ValidationError):
            return [{"msg": str(err)}]
        return err.errors(include_context=False, include_input=False, include_url=False)


api_spec = SpecTree(
    "flask",
    title="Campaign Pool API",
    version="2",
    description=(
        "Create Chi War campaigns instantly from a pool of pre-seeded campaigns. Sign in with "
        "`POST /users/sign_in` (a JWT) or `POST /api/v2/auth/token` (an API token), then send "
        "`Authorization: Bearer <token>`. See docs/api.md."
    ),
    # Only the routes declared with `api_spec.validate` (the portal's pages are not API).
    mode="strict",
    # spectree skips routes under its own path when it builds the document: keep it away from
    # /api/v2. Its pages are never registered (they would load Swagger from a CDN).
    path="apidoc",
    annotations=False,
    # spectree's protocol types the error class as Exception; pydantic's is a subclass.
    model_adapter=cast(Any, ModelAdapter()),
    before=before_hook,
    validation_error_status=422,
    validation_error_model=Error,
    # Components named after the models (spectree adds a hash of the module by default).
    naming_strategy=lambda model: model.__name__,
    nested_naming_strategy=lambda _parent, child: child,
    security_schemes=[
        SecurityScheme(
            name="bearerAuth",
            data=SecuritySchemeData(
                type="http",  # type: ignore[arg-type]
                scheme="bearer",
                description="A JWT (from /users/sign_in or the CLI sign-in) or an API token "
                "(`cp_...`, from /api/v2/auth/token).",
            ),
        )
    ],
    security={"bearerAuth": []},
)


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of the current app's declared routes."""
    document: dict[str, Any] = api_spec.spec
    return document
