"""The portal's HTML pages: the dashboard, the pool campaign list and usage analytics.

Thin: the figures come from `portal.services.monitoring` (`payload`, `recent`, `windows`) and the
campaign list from `portal.services.pool.listing`; the dashboard is rendered with
the same payload `/admin/api/pool` serves and `pool_update` pushes, embedded as JSON, so the
page's script starts from exactly what the server rendered.
"""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, render_template, request
from flask.typing import ResponseReturnValue

from portal.appcontext import db_session
from portal.blueprints.admin.blueprint import bp
from portal.blueprints.admin.forms import (
    CleanupForm,
    DemandSizingForm,
    PoolSwitchesForm,
    RefillCapacityForm,
    ReplenishForm,
    ResizeForm,
    RetireStaleForm,
)
from portal.models import (
    Campaign,
)
from portal.services.campaigns.records import content_counts, find_master_template
from portal.services.infra.queue import get_redis
from portal.services.infra.text_input import plain_text_excerpt
from portal.services.monitoring.analytics import PERIODS_DAYS, PeriodError, analytics, parse_period
from portal.services.monitoring.payload import admin_pool_payload
from portal.services.monitoring.recent import recent_actions, recent_assignments
from portal.services.monitoring.windows import DEFAULT_WINDOW, WINDOWS
from portal.services.pool.config import load_pool_config
from portal.services.pool.listing import LIST_POOL_TYPES, LIST_STATUSES, pool_campaigns_page


@bp.app_template_filter("excerpt")
def excerpt(value: str | None, length: int = 120) -> str:
    """Stored text (descriptions may be HTML) as a plain-text excerpt; escaped when shown."""
    return plain_text_excerpt(value, length)


def template_counts() -> tuple[Campaign | None, dict[str, int]]:
    """The master template campaign and how much content it holds."""
    master = find_master_template(db_session())
    if master is None:
        return None, {}
    return master, content_counts(db_session(), master.id)


def action_forms() -> dict[str, Any]:
    """The quick-action forms, each with its own prefix so field ids stay unique on the page."""
    resize = ResizeForm(prefix="resize")
    return {
        "replenish": ReplenishForm(prefix="replenish"),
        "cleanup": CleanupForm(prefix="cleanup"),
        "resize": resize,
        "retire": RetireStaleForm(prefix="retire"),
        "demand": demand_form(),
        "switches": switches_form(),
        "capacity": capacity_form(),
    }


def switches_form() -> PoolSwitchesForm:
    """The pool switches form, showing the runtime switches as they are."""
    config = load_pool_config(db_session(), current_app.config["SETTINGS"])
    form = PoolSwitchesForm(prefix="switches")
    if not form.is_submitted():
        form.assignment.data = "on" if config.assignment_enabled else "off"
        form.refills.data = "on" if config.refills_enabled else "off"
    return form


def capacity_form() -> RefillCapacityForm:
    """The refill capacity form, filled with the settings in force."""
    config = load_pool_config(db_session(), current_app.config["SETTINGS"])
    form = RefillCapacityForm(prefix="capacity")
    if not form.is_submitted():
        form.max_parallel.data = config.max_parallel_builds
        form.batch_size.data = config.build_batch_size
    return form


def demand_form() -> DemandSizingForm:
    """The demand sizing form, filled with the settings in force."""
    config = load_pool_config(db_session(), current_app.config["SETTINGS"])
    form = DemandSizingForm(prefix="demand")
    if not form.is_submitted():
        form.enabled.data = bool(config.demand_sizing)
        form.minimum.data = config.demand_min
        form.maximum.data = config.demand_max
        form.half_life.data = config.demand_half_life_min
        form.service_level.data = config.demand_service_level
        form.history_days.data = config.demand_history_days
    return form


@bp.get("/")
def index() -> ResponseReturnValue:
    """The dashboard: pool cards, charts, recent assignments, alerts and quick actions."""
    settings = current_app.config["SETTINGS"]
    payload = admin_pool_payload(db_session(), settings, get_redis())
    window = request.args.get("window")
    window = window if window in WINDOWS else DEFAULT_WINDOW
    forms = action_forms()
    forms["resize"].target.data = payload["pools"]["master"]["target"]
    master, counts = template_counts()
    return render_template(
        "admin/dashboard.html",
        payload=payload,
        pools=payload["pools"],
        assignments=payload["assignments"],
        ops=payload["ops"],
        recent=recent_assignments(db_session()),
        actions=recent_actions(db_session()),
        forms=forms,
        windows=list(WINDOWS),
        window=window,
        master=master,
        counts=counts,
    )


@bp.get("/campaigns")
def campaigns() -> ResponseReturnValue:
    """Pool campaigns with status / pool filters, paginated."""
    page = request.args.get("page", 1, type=int) or 1
    result = pool_campaigns_page(
        db_session(),
        status=request.args.get("status") or None,
        pool_type=request.args.get("pool_type") or None,
        page=page,
    )
    return render_template(
        "admin/campaigns.html",
        result=result,
        statuses=LIST_STATUSES,
        pool_types=LIST_POOL_TYPES,
    )


@bp.get("/analytics")
def analytics_page() -> ResponseReturnValue:
    """Usage analytics: claims by hour and weekday, hit rate, time in pool, storage saved by
    sharing images, and the pool size the observed demand calls for."""
    try:
        days = parse_period(request.args.get("days"))
    except PeriodError as exc:
        abort(400, str(exc))
    data = analytics(db_session(), current_app.config["SETTINGS"], days)
    return render_template("admin/analytics.html", data=data, periods=PERIODS_DAYS)
