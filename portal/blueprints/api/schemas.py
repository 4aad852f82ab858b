"""Request and response models of the JSON API (pydantic v2), declared once.

They validate requests (through `api_spec.validate` in the views), validate responses, and are
the OpenAPI document. The campaign and user shapes are the main Chi War server's (its
`CampaignView` and user JSON) plus this project's `source`, `activated_at` and `counts`, so the
game's web client and CLI read them unchanged (docs/api.md).

Request models ignore keys they do not know, as the servers do (the web client sends its whole
campaign object back), and validate the keys they know strictly: a name must be a string, not a
number; the text rules are the service layer's (`clean_name`, `clean_description`). The
`pattern`s in the schemas mirror those rules for generated clients and schemathesis.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Json,
    StrictBool,
    StrictStr,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from portal.services.accounts.tokens import TOKEN_NAME_MAX
from portal.services.campaigns.input import (
    DESCRIPTION_MAX,
    NAME_MAX,
    InvalidText,
    clean_description,
    clean_name,
)
from portal.services.infra.text_input import NOT_VISIBLE_CLASS, text_problems
from portal.services.pool.client_campaigns import MAX_PAGE, PER_PAGE_DEFAULT, PER_PAGE_MAX

# Patterns mirror the server's rules (text_input). A name: no C0/C1 control or bidi control
# characters and at least one visible character (a bare `\S` would let a control or a
# zero-width space stand in for it). A description may hold tabs and line breaks but no other
# control characters. Credentials and codes: not blank and no NUL.
_BIDI = r"\u202a-\u202e\u2066-\u2069"
_NO_CONTROLS = r"[^\u0000-\u001f\u007f-\u009f" + _BIDI + "]*"
_VISIBLE = "[^" + NOT_VISIBLE_CLASS + "]"
NAME_PATTERN = "^" + _NO_CONTROLS + _VISIBLE + _NO_CONTROLS + "$"
TOKEN_NAME_PATTERN = "^(|" + _NO_CONTROLS + _VISIBLE + _NO_CONTROLS + ")$"
DESCRIPTION_PATTERN = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f" + _BIDI + "]*$"
CREDENTIAL_PATTERN = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
SEARCH_MAX = 255
PAGE_RE = re.compile(r"[0-9]{1,7}")
CODE_MAX = 64


def _rule(clean: Any) -> Any:
    """A pydantic validator from a service rule: InvalidText becomes a field error whose
    message is the rule's own."""

    def validate(value: Any) -> Any:
        try:
            return clean(value)
        except InvalidText as error:
            raise PydanticCustomError("text", ", ".join(error.problems)) from None

    return AfterValidator(validate)


def _visible_text(value: str) -> str:
    """Single-line text that must hold something and reach a query (no NUL, no surrogates)."""
    if not value.strip():
        raise InvalidText(["can't be blank"])
    problems = text_problems(value, controls=False)
    if problems:
        raise InvalidText(problems)
    return value


def _query_text(value: str) -> str:
    problems = text_problems(value, controls=False)
    if problems:
        raise InvalidText(problems)
    return value


Name = Annotated[
    StrictStr,
    _rule(clean_name),
    WithJsonSchema(
        {"type": "string", "minLength": 1, "maxLength": NAME_MAX, "pattern": NAME_PATTERN}
    ),
]
Description = Annotated[
    StrictStr | None,
    _rule(lambda v: None if v is None else clean_description(v)),
    WithJsonSchema(
        {
            "type": ["string", "null"],
            "maxLength": DESCRIPTION_MAX,
            "pattern": DESCRIPTION_PATTERN,
        }
    ),
]
Credential = Annotated[
    StrictStr,
    _rule(_visible_text),
    WithJsonSchema({"type": "string", "pattern": CREDENTIAL_PATTERN}),
]
Code = Annotated[
    StrictStr,
    Field(max_length=CODE_MAX),
    _rule(_visible_text),
    WithJsonSchema({"type": "string", "maxLength": CODE_MAX, "pattern": CREDENTIAL_PATTERN}),
]
Upload = Annotated[
    Any,
    WithJsonSchema(
        {
            "type": "string",
            "format": "binary",
            "description": "A PNG, JPEG, GIF or WebP image of at most 5 MB, checked from its "
            "bytes; it becomes the campaign's image (`image_url`).",
        }
    ),
]
Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
OptionalTimestamp = Annotated[
    str | None, WithJsonSchema({"type": ["string", "null"], "format": "date-time"})
]
Uuid = Annotated[str, WithJsonSchema({"type": "string", "format": "uuid"})]


class Lenient(BaseModel):
    """A request model: unknown keys are ignored, as the Chi War servers ignore them."""

    model_config = ConfigDict(extra="ignore")


class Exact(BaseModel):
    """A response model (or a strict request): exactly these keys."""

    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------------------- errors


class CliExpired(Exact):
    """A CLI sign-in code that is unknown, spent or past its expiry."""

    status: Literal["expired"]
    error: str


# ------------------------------------------------------------------------------------ users


class UserOut(Exact):
    id: Uuid
    email: str
    name: str
    first_name: str
    last_name: str
    image_url: str | None
    admin: bool
    gamemaster: bool
    active: bool
    entity_class: Literal["User"]
    current_campaign_id: Uuid | None
    created_at: Timestamp
    updated_at: Timestamp


class CampaignSummary(Exact):
    id: Uuid
    name: str
    description: str | None
    active: bool
    entity_class: Literal["Campaign"]


class CurrentUser(UserOut):
    image_positions: list[Any]
    campaigns: list[CampaignSummary]
    player_campaigns: list[Any]
    onboarding_progress: None


class Credentials(Lenient):
    email: Credential
    password: Credential


class SignInRequest(Lenient):
    """`{"user": {"email", "password"}}`, as the web client sends it."""

    user: Credentials


class SignedIn(Exact):
    """The JWT is also in the `Authorization: Bearer` response header (the web client reads
    it from there)."""

    user: UserOut
    token: str


class Message(Exact):
    message: str


class TokenRequest(Exact):
    email: Credential
    password: Credential
    name: (
        Annotated[
            StrictStr,
            WithJsonSchema(
                {
                    "type": ["string", "null"],
                    "maxLength": TOKEN_NAME_MAX,
                    "pattern": TOKEN_NAME_PATTERN,
                    "description": "A label for the token (default `api`).",
                }
            ),
        ]
        | None
    ) = None


class Token(Exact):
    token: Annotated[str, Field(pattern="^cp_", description="Shown once; only its hash is kept.")]
    token_type: Literal["Bearer"]
    user: UserOut


class Me(Exact):
    user: UserOut


# -------------------------------------------------------------------------------- campaigns


class Counts(Exact):
    """Content rows the campaign holds; `images`: images attached to the campaign itself."""

    schticks: int = Field(ge=0)
    weapons: int = Field(ge=0)
    factions: int = Field(ge=0)
    junctures: int = Field(ge=0)
    characters: int = Field(ge=0)
    vehicles: int = Field(ge=0)
    images: int = Field(ge=0)


class ImagePositionOut(Exact):
    id: Uuid
    context: str
    x_position: float
    y_position: float
    style_overrides: dict[str, Any]


SeedingStatus = Literal[
    "schticks", "weapons", "factions", "junctures", "characters", "images", "complete"
]
Source = Literal["user_pool", "master_pool", "seeded"]


class CampaignOut(Exact):
    """A campaign in the servers' `CampaignView` shape. `seeding_status` is `complete` for a
    usable campaign; a campaign seeded by a job (POOL_FALLBACK=async) reports the job's stage,
    or null until a worker starts it."""

    id: Uuid
    name: str
    description: str | None
    user_id: Uuid
    gamemaster_id: Uuid
    gamemaster: UserOut
    users: list[UserOut]
    user_ids: list[Uuid]
    players: list[UserOut]
    player_ids: list[Uuid]
    invitations: list[Any]
    image_url: str | None
    image_positions: list[ImagePositionOut]
    entity_class: Literal["Campaign"]
    active: bool
    at_a_glance: bool
    created_at: Timestamp
    updated_at: Timestamp
    activated_at: OptionalTimestamp
    seeded_at: OptionalTimestamp
    seeding_status: SeedingStatus | None
    seeding_images_total: int
    seeding_images_completed: int
    is_seeding: bool
    is_seeded: bool
    counts: Counts
    source: Source | None = Field(
        default=None, description="Only in the answer to a create: which path served it."
    )


class CreatedCampaign(CampaignOut):
    source: Source


class PageMeta(Exact):
    current_page: int
    next_page: int | None
    prev_page: int | None
    per_page: int
    total_count: int
    total_pages: int


class CampaignList(Exact):
    campaigns: list[CampaignOut]
    meta: PageMeta


class CampaignWithUser(Exact):
    """The answer to choosing the current campaign (`campaign` null: none chosen)."""

    campaign: CampaignOut | None
    user: UserOut


class NewCampaignFields(Lenient):
    name: Name
    description: Description = None


class CampaignChanges(Lenient):
    name: Name | None = None
    description: Description = None
    active: StrictBool | None = None


class NewCampaignJson(Lenient):
    """`{"campaign": {"name", "description"}}` (the CLI); other keys are ignored."""

    campaign: NewCampaignFields


class NewCampaignForm(Lenient):
    """multipart: `campaign` is the campaign as a JSON text (the web client), `image` a file."""

    campaign: Json[NewCampaignFields]
    image: Upload = None


class CampaignChangesJson(Lenient):
    campaign: CampaignChanges


class CampaignChangesForm(Lenient):
    campaign: Json[CampaignChanges]
    image: Upload = None


def _digits(value: Any) -> Any:
    """A whole number in ASCII digits, as sent in a query string: `int()` alone would also
    take "1_0", " 3 " or Arabic-Indic digits."""
    if isinstance(value, str) and not PAGE_RE.fullmatch(value):
        raise PydanticCustomError("int_parsing", "must be a whole number")
    return value


WholeNumber = Annotated[int, BeforeValidator(_digits)]


class ListQuery(Lenient):
    page: WholeNumber = Field(default=1, ge=1, le=MAX_PAGE)
    per_page: WholeNumber = Field(
        default=PER_PAGE_DEFAULT,
        ge=1,
        # The same bound as `page` (seven digits at most, as `_digits` reads them), declared so
        # that the document says which values are a 400.
        le=MAX_PAGE,
        description=f"Campaigns a page; more than {PER_PAGE_MAX} is taken as {PER_PAGE_MAX}.",
    )
    sort: str = Field(
        default="created_at",
        max_length=50,
        description="`name`, `created_at` or `updated_at`; anything else sorts by creation.",
    )
    order: str = Field(
        default="desc", max_length=10, description="`asc` (any case) or else descending."
    )
    search: Annotated[
        str | None,
        Field(max_length=SEARCH_MAX, description="Part of the name, any case."),
        _rule(lambda v: None if v is None else _query_text(v)),
    ] = None
    visibility: Literal["visible", "hidden", "all"] = Field(
        default="visible", description="Active campaigns (default), inactive ones, or all."
    )


class SetCurrent(Lenient):
    """`{"campaign_id"}` (the CLI) or `{"id"}` (the web client); null clears it."""

    campaign_id: Annotated[StrictStr, Field(max_length=100)] | None = None
    id: Annotated[StrictStr, Field(max_length=100)] | None = None


# ------------------------------------------------------------------------------ CLI sign-in


class CliStarted(Exact):
    code: str
    url: str
    expires_in: int


class CliCode(Lenient):
    code: Code


class CliPoll(Exact):
    status: Literal["pending", "approved"]
    expires_in: int | None = None
    token: str | None = None
    user: UserOut | None = None


class Success(Exact):
    success: bool
