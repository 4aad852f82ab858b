"""Deceptive text is refused with a 422 naming the field (docs/security.md): bidirectional
embedding, override and isolate controls, C0 and C1 controls (descriptions keep newline and
tab), and names made only of invisible characters. And the portal shows descriptions as
plain-text excerpts, never raw markup."""

from __future__ import annotations

import pytest

from portal.extensions import db
from portal.models import Campaign, utcnow
from portal.services.accounts.users import UserError, create_user, validate_name
from portal.services.infra.text_input import plain_text_excerpt
from tests.support.auth import AuthActions


@pytest.fixture
def gm_headers(auth: AuthActions) -> dict[str, str]:
    user = auth.create_user("gm@example.com", admin=False, gamemaster=True)
    return {"Authorization": f"Bearer {auth.token_for(user)}"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "Invoice\u202egpj.exe"),  # right-to-left override
        ("name", "a\u202ab"),  # left-to-right embedding
        ("name", "a\u2066b\u2069"),  # isolates
        ("name", "Next\u0085Line"),  # C1 control
        ("name", "bell\x07"),  # C0 control
        ("name", "\u200b\u200c\u200d"),  # zero-width only
        ("name", "\u2060\ufeff"),  # word joiner and BOM only
        ("name", "\u3164"),  # Hangul filler
        ("description", "Read me\u202e"),
        ("description", "C1 \u009b control"),
        ("description", "form\x0cfeed"),
    ],
)
def test_deceptive_text_is_a_422_naming_the_field(client, gm_headers, field, value) -> None:
    campaign = {"name": "Fine name", field: value}
    response = client.post("/api/v2/campaigns", json={"campaign": campaign}, headers=gm_headers)
    assert response.status_code == 422, response.text
    errors = response.get_json()["errors"]
    assert set(errors) == {field}
    assert db.session.query(Campaign).count() == 0


def test_descriptions_keep_newlines_and_tabs(template_app) -> None:
    client = template_app.test_client()
    auth = AuthActions(client)
    gm = auth.create_user("gm@example.com", admin=False, gamemaster=True)
    gm_headers = {"Authorization": f"Bearer {auth.token_for(gm)}"}
    body = {"campaign": {"name": "Multi-line", "description": "Line one\n\tLine two\r\n"}}
    response = client.post("/api/v2/campaigns", json=body, headers=gm_headers)
    assert response.status_code == 201, response.text
    assert response.get_json()["description"] == "Line one\n\tLine two\r\n"


@pytest.mark.parametrize("name", ["Ada\u202e", "\u200b", "Ada\u0085"])
def test_user_names_follow_the_same_rules(app, name) -> None:
    with pytest.raises(UserError) as caught:
        create_user(db.session, "x@example.com", name, "long enough password")
    assert caught.value.field == "name"
    assert validate_name("Ada Lovelace") == "Ada Lovelace"


def test_plain_text_excerpts() -> None:
    assert plain_text_excerpt("<p>The master template &amp; <b>friends</b></p>") == (
        "The master template & friends"
    )
    assert plain_text_excerpt("a &lt;b&gt; c") == "a <b> c"
    long = plain_text_excerpt("<p>" + "word " * 100 + "</p>", 40)
    assert len(long) <= 40 and long.endswith("…") and "<" not in long


def test_the_pool_campaigns_list_shows_descriptions_as_plain_text(client, auth) -> None:
    owner = auth.create_user()
    db.session.add(
        Campaign(
            user_id=owner.id,
            name="Listed",
            description="<p>The master template &amp; <em>its</em> schticks</p>",
            is_pool=True,
            pool_type="master",
            pool_status="ready",
            pool_created_at=utcnow(),
            template_version=1,
        )
    )
    db.session.commit()
    assert auth.login().status_code == 302
    html = client.get("/admin/campaigns").text
    assert "The master template &amp; its schticks" in html
    assert "&lt;p&gt;" not in html and "<p>The master" not in html
