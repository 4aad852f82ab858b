"""Requests exactly as the Chi War clients send them, for the replay tests.

The CLI (progressions/chi-war-cli, `src/lib/api.ts` `createClient`): axios with
`Content-Type: application/json` on every request, plus `Authorization: Bearer <token>` once
logged in; nothing else. The web client (progressions/shot-client-next,
`src/lib/client/baseClient.ts`): `Accept` and `Content-Type: application/json` and the bearer
token on every call; `requestFormData` sends multipart with the browser's boundary.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.support.auth import DEFAULT_PASSWORD, AuthActions

# shot-client-next src/types/defaults.ts `defaultCampaign` (with `defaultUser` as gamemaster),
# the object `useEntity.createEntity` serializes into the `campaign` part before the form's
# own name and description are merged in.
WEB_DEFAULT_CAMPAIGN: dict[str, Any] = {
    "entity_class": "Campaign",
    "id": "",
    "name": "",
    "description": "",
    "gamemaster": {
        "entity_class": "User",
        "id": "",
        "email": "",
        "name": "",
        "image_url": "",
        "created_at": "",
        "updated_at": "",
    },
    "players": [],
    "player_ids": [],
    "invitations": [],
    "image_url": "",
    "created_at": "",
    "updated_at": "",
}


class Cli:
    """`chiwar` as an HTTP client: the headers of `createClient(token?)`."""

    def __init__(self, client: FlaskClient, token: str | None = None) -> None:
        self.client = client
        self.token = token

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def send(self, method: str, path: str, body: Any = None) -> TestResponse:
        import json

        data = None if body is None else json.dumps(body)
        return self.client.open(path, method=method, headers=self.headers(), data=data)

    @staticmethod
    def error_text(response: TestResponse, fallback: str) -> str:
        """What the CLI prints for a failed call (`campaign.ts`): the field errors joined as
        `field: msg, msg; field: msg`, else `message`, else its fallback text."""
        data = response.get_json(silent=True) or {}
        errors = data.get("errors")
        if errors:
            return "; ".join(f"{field}: {', '.join(msgs)}" for field, msgs in errors.items())
        return data.get("message") or fallback


class Web:
    """The web client's HTTP calls, with the token it took from the sign-in header."""

    def __init__(self, client: FlaskClient, token: str | None = None) -> None:
        self.client = client
        self.token = token

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def sign_in(self, email: str, password: str = DEFAULT_PASSWORD) -> TestResponse:
        """login/page.tsx: POST `${NEXT_PUBLIC_API_BASE_URL}/users/sign_in`, token from the
        `Authorization` response header (`authHeader?.split(" ")?.[1]`)."""
        response = self.client.post(
            "/users/sign_in",
            json={"user": {"email": email, "password": password}},
            headers={"Content-Type": "application/json"},
        )
        header = response.headers.get("Authorization") or ""
        parts = header.split(" ")
        self.token = parts[1] if len(parts) > 1 else None
        return response

    def get(self, path: str) -> TestResponse:
        return self.client.get(path, headers=self.headers())

    def form(self, method: str, path: str, fields: dict[str, Any]) -> TestResponse:
        """`requestFormData`: multipart (the test client writes the boundary, as a browser)."""
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return self.client.open(
            path, method=method, data=fields, headers=headers, content_type="multipart/form-data"
        )


def gamemaster(app: Flask, email: str = "gm@example.com", name: str = "Gina Master") -> Any:
    return AuthActions(app.test_client()).create_user(
        email, admin=False, gamemaster=True, name=name
    )


CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
