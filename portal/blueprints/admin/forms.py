"""WTForms of the portal's quick actions. Every one is a FlaskForm, so every POST carries a
CSRF token; destructive actions also need an explicit confirmation box, checked on the server
so the confirmation cannot be skipped by a client without JavaScript (or by a script)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, SelectField, StringField, SubmitField

# types-WTForms describes WTForms 3.2; SelectChoice came with 3.3 (the version pinned).
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

CONFIRM_MESSAGE = "Tick the box to confirm."


class ReplenishForm(FlaskForm):
    scope = SelectField(
        "Pool",
        choices=[SelectChoice("master", "Master pool"), SelectChoice("all", "All pools")],
        default="master",
    )
    submit = SubmitField("Replenish now")


class CleanupForm(FlaskForm):
    confirm = BooleanField(
        "Delete failed, retired and stuck campaigns",
        validators=[DataRequired(message=CONFIRM_MESSAGE)],
    )
    submit = SubmitField("Clean up")


class ResizeForm(FlaskForm):
    pool_type = SelectField(
        "Pool",
        choices=[
            SelectChoice("master", "Master pool"),
            SelectChoice("user", "Each gamemaster's pool"),
        ],
    )
    # The real bounds depend on the pool and live in pool_config (validated again there).
    target = IntegerField(
        "Target size",
        validators=[
            InputRequired(message="Enter a target size."),
            NumberRange(min=0, max=1000, message="Enter a number between 0 and 1000."),
        ],
        render_kw={"min": 0, "max": 1000, "inputmode": "numeric"},
    )
    submit = SubmitField("Set target")


class RetireStaleForm(FlaskForm):
    confirm = BooleanField(
        "Retire ready campaigns built from an older template version",
        validators=[DataRequired(message=CONFIRM_MESSAGE)],
    )
    submit = SubmitField("Retire stale")


class DemandSizingForm(FlaskForm):
    """Demand-aware sizing of the master pool. The bounds here only keep the browser's number
    inputs sensible; the real ones (and min <= max) are checked by pool_config."""

    enabled = BooleanField("Size the master pool from demand")
    minimum = IntegerField(
        "Smallest target",
        validators=[InputRequired(message="Enter the smallest target."), NumberRange(min=0)],
        render_kw={"min": 0, "inputmode": "numeric"},
    )
    maximum = IntegerField(
        "Largest target",
        validators=[InputRequired(message="Enter the largest target."), NumberRange(min=1)],
        render_kw={"min": 1, "inputmode": "numeric"},
    )
    half_life = IntegerField(
        "Half-life of the recent rate (min)",
        validators=[InputRequired(message="Enter a half-life."), NumberRange(min=1)],
        render_kw={"min": 1, "inputmode": "numeric"},
    )
    service_level = IntegerField(
        "Claims served from the pool (%)",
        validators=[InputRequired(message="Enter a service level."), NumberRange(min=50, max=99)],
        render_kw={"min": 50, "max": 99, "inputmode": "numeric"},
    )
    history_days = IntegerField(
        "Days of hour-of-day profile",
        validators=[InputRequired(message="Enter a number of days."), NumberRange(min=0)],
        render_kw={"min": 0, "inputmode": "numeric"},
    )
    submit = SubmitField("Save demand sizing")


class PoolSwitchesForm(FlaskForm):
    """The kill switch and the refill pause. Destructive for users' speed, so the box must be
    ticked whatever is changed (checked on the server)."""

    assignment = SelectField(
        "Pool assignment",
        choices=[
            SelectChoice("on", "On: creates claim from the pools"),
            SelectChoice("off", "Off: every create is seeded"),
        ],
    )
    refills = SelectField(
        "Refills",
        choices=[SelectChoice("on", "Running"), SelectChoice("off", "Paused")],
    )
    reason = StringField(
        "Reason (recorded)",
        validators=[Optional(), Length(max=500, message="At most 500 characters.")],
    )
    confirm = BooleanField(
        "Change the pool switches", validators=[DataRequired(message=CONFIRM_MESSAGE)]
    )
    submit = SubmitField("Apply switches")


class RefillCapacityForm(FlaskForm):
    """Parallel builds and campaigns per build; the real bounds live in pool_config."""

    max_parallel = IntegerField(
        "Builds of a pool at once",
        validators=[InputRequired(message="Enter a number of builds."), NumberRange(min=1)],
        render_kw={"min": 1, "max": 50, "inputmode": "numeric"},
    )
    batch_size = IntegerField(
        "Campaigns per build (K)",
        validators=[InputRequired(message="Enter a batch size."), NumberRange(min=1)],
        render_kw={"min": 1, "max": 50, "inputmode": "numeric"},
    )
    submit = SubmitField("Save refill capacity")
