"""The operations files against the real tools: a Prometheus server scraping a running Campaign
Pool, `promtool` on the alert rules, and the Grafana dashboard's queries.

Prometheus and promtool come from Debian's `prometheus` package (.ci/run installs it); where
they are missing those tests are skipped, saying so. The server test runs gunicorn as in
production on loopback (`portal.devtools.processes.gunicorn_server`), on PostgreSQL + Redis
when the suite has them and on SQLite with the in-process queue otherwise."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from flask import Flask

from portal.appcontext import db_session
from portal.devtools.http_client import Client
from portal.devtools.prepare import fill_pool
from portal.devtools.processes import (
    free_port,
    gunicorn_server,
    log_tail,
    spawn,
    stop_process_group,
)
from portal.extensions import db
from portal.services.accounts.tokens import issue_token
from portal.services.accounts.users import create_user
from portal.services.campaigns.records import find_master_template
from portal.services.monitoring.prometheus import EventTotals, ScrapeCollector, render_metrics
from portal.services.pool.config import set_pool_setting
from tests.conftest import TEST_SECRET, make_app
from tests.support import PROJECT_ROOT
from tests.support.metrics import TOKEN, samples_of
from tests.support.processes import wait_until

PROMETHEUS_DIR = PROJECT_ROOT / "deploy" / "prometheus"
RULES = sorted(PROMETHEUS_DIR.glob("*.rules.yml"))
RULE_TESTS = sorted(PROMETHEUS_DIR.glob("*.rules.test.yml"))
DASHBOARDS = sorted((PROJECT_ROOT / "deploy" / "grafana").glob("*.json"))
OPERATIONS_DOC = PROJECT_ROOT / "docs" / "operations.md"
METRIC_RE = re.compile(r"\bcampaign_pool_[a-z0-9_]+")


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(
            f"`{name}` is not installed (Debian package `prometheus`: "
            "apt-get install prometheus; .ci/run installs it)"
        )
    return path


def run_tool(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


# ------------------------------------------------------------------- alert rules (promtool)


def test_alert_rules_pass_promtool_check() -> None:
    promtool = tool("promtool")
    assert RULES, "no deploy/prometheus/*.rules.yml"
    result = run_tool(promtool, "check", "rules", *map(str, RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_fire_after_their_duration_and_not_before() -> None:
    """promtool's unit tests of the rules: the low-pool alert is not firing at 4 minutes and
    is at 5, once for two instances; no worker, fallback rate and slow claims likewise."""
    promtool = tool("promtool")
    assert RULE_TESTS
    result = run_tool(promtool, "test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    low = next(t for t in yaml.safe_load(RULE_TESTS[0].read_text())["tests"])
    checks = {(c["alertname"], c["eval_time"]): c["exp_alerts"] for c in low["alert_rule_test"]}
    assert checks[("CampaignPoolLow", "4m")] == [] and checks[("CampaignPoolLow", "5m")]


def alert_rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def anchors(markdown: str) -> set[str]:
    """GitHub-style anchors of the document's headings."""
    found = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            title = re.sub(r"[^\w\- ]", "", title).replace(" ", "-")
            found.add(title)
    return found


def test_every_alert_links_to_its_runbook_in_the_operations_doc() -> None:
    headings = anchors(OPERATIONS_DOC.read_text())
    rules = alert_rules()
    assert {r["alert"] for r in rules} >= {
        "CampaignPoolLow",
        "CampaignPoolBuildsFailing",
        "CampaignPoolNoWorker",
        "CampaignPoolClaimSlow",
        "CampaignPoolFallbackRateHigh",
    }
    for rule in rules:
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path == "docs/operations.md" and anchor in headings, f"{rule['alert']}: {url}"
        assert rule["alert"] in OPERATIONS_DOC.read_text(), f"{rule['alert']} not described"


# ------------------------------------------------------------ queries name exported metrics


def exported_names(app: Flask) -> set[str]:
    """Every sample name one scrape exposes (worker figures included)."""
    from portal.services.monitoring.health import health_redis

    collector = ScrapeCollector(
        db_session(), app.config["SETTINGS"], health_redis(app), EventTotals(), True
    )
    names = {name for name, _ in samples_of(render_metrics(collector).decode())}
    assert "campaign_pool_workers_alive" in names and "campaign_pool_ready" in names
    return names


def dashboard_exprs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from dashboard_exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from dashboard_exprs(item)


def dashboard_queries() -> list[str]:
    """The dashboards' queries with Grafana's variables as Grafana would fill them in."""
    return [
        expr.replace("$job", "campaign-pool").replace("$__rate_interval", "1m")
        for path in DASHBOARDS
        for expr in dashboard_exprs(json.loads(path.read_text()))
    ]


def test_dashboard_and_rules_query_only_metrics_we_export(app: Flask) -> None:
    exported = exported_names(app)
    assert DASHBOARDS, "no deploy/grafana/*.json"
    queries: list[tuple[str, str]] = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        assert dashboard["title"] and dashboard["panels"]
        exprs = list(dashboard_exprs(dashboard))
        assert len(exprs) >= 10, f"{path.name}: {len(exprs)} queries"
        queries += [(path.name, expr) for expr in exprs]
    queries += [("alert rules", rule["expr"]) for rule in alert_rules()]
    for where, expr in queries:
        names = METRIC_RE.findall(expr)
        assert names or "up{" in expr, f"{where}: {expr!r} names no metric of ours"
        unknown = set(names) - exported
        assert not unknown, f"{where}: {expr!r} names {unknown}, which /metrics does not export"


# -------------------------------------------------------------- a real Prometheus scraping


def prometheus_query(port: int, query: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
    except urllib.error.HTTPError as error:  # 400 for a query that does not parse
        body = json.load(error)
    assert body["status"] == "success", f"{query!r}: {body}"
    return body["data"]["result"]


def alert_names(port: int) -> set[str]:
    """The alerts Prometheus has pending or firing now."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/alerts", timeout=5) as response:
        return {a["labels"]["alertname"] for a in json.load(response)["data"]["alerts"]}


def scalar(port: int, query: str) -> float | None:
    result = prometheus_query(port, query)
    return float(result[0]["value"][1]) if result else None


def prometheus_config(workdir: Path, target: str, token_file: Path) -> Path:
    """deploy/prometheus/prometheus.yml with this test's target, token file, rule files and a
    one-second interval."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(path) for path in RULES]
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": [target]}]
    job["authorization"]["credentials_file"] = str(token_file)
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextlib.contextmanager
def prometheus_server(config: Path, workdir: Path) -> Iterator[int]:
    """`prometheus` on 127.0.0.1 with `config` until the block ends; yields its port once ready."""
    binary = tool("prometheus")
    port = free_port()
    log_path = workdir / "prometheus.log"
    process = spawn(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        cwd=workdir,
        env=dict(os.environ),
        log_path=log_path,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{log_tail(log_path)}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"prometheus not ready:\n{log_tail(log_path)}") from None
                time.sleep(0.2)
        yield port
    finally:
        stop_process_group(process)


def prepare(app: Flask, pool: int) -> str:
    """A master pool of `pool` (user pools off) and a gamemaster; returns their API token."""
    with app.app_context():
        session = db_session()
        set_pool_setting(session, "master_target", pool)
        set_pool_setting(session, "user_target", 0)
        user = create_user(session, "prom-gm@prom.invalid", "Prom GM", None, gamemaster=True)
        token = issue_token(session, user, "prometheus")
        session.commit()
        template = find_master_template(session)
        fill_pool(db.engine, template.id, template.user_id, pool, lambda _: None, builders=1)
        db.session.remove()
        db.engine.dispose()
    return token


@pytest.mark.slow
def test_a_real_prometheus_scrapes_the_pool_and_evaluates_the_rules(
    databases, template_golden: str, redis_url: str, tmp_path: Path
) -> None:
    tool("prometheus")
    url = databases.clone(template_golden, "prom")
    if redis_url:
        redis.Redis.from_url(redis_url).flushdb()
    app = make_app(url, redis_url)
    try:
        api_token = prepare(app, pool=3)
        token_file = tmp_path / "metrics.token"
        token_file.write_text(TOKEN + "\n")
        token_file.chmod(0o600)
        extra = {"METRICS_TOKEN": TOKEN, "POOL_LOW_WATERMARK": "2"}
        # Prometheus first: its first scrape comes seconds after it starts, while gunicorn
        # starts too.
        port = free_port()
        config = prometheus_config(tmp_path, f"127.0.0.1:{port}", token_file)
        with (
            prometheus_server(config, tmp_path) as prom,
            gunicorn_server(
                url,
                TEST_SECRET,
                tmp_path,
                threads=4,
                redis_url=redis_url or None,
                extra_env=extra,
                port=port,
            ),
        ):
            wait_until(
                lambda: scalar(prom, 'max(campaign_pool_ready{pool="master"})') == 3,
                60, "Prometheus to scrape the full pool (3 ready)", 0.5,
            )  # fmt: skip
            client = Client(port, 0, api_token, timeout_s=60)
            try:
                sources = [client.create(f"Scraped {n}").source for n in range(2)]
            finally:
                client.close()
            assert sources == ["master_pool", "master_pool"]

            def figures() -> dict[str, float | None]:
                return {
                    "ready": scalar(prom, 'max(campaign_pool_ready{pool="master"})'),
                    "creates": scalar(
                        prom, 'sum(campaign_pool_creates_total{source="master_pool"})'
                    ),
                    "claims": scalar(prom, "sum(campaign_pool_claim_duration_seconds_count)"),
                    "built": scalar(prom, "max(campaign_pool_refills_built_total)"),
                    "up": scalar(prom, 'up{job="campaign-pool"}'),
                }

            expected = {"ready": 1.0, "creates": 2.0, "claims": 2.0, "built": 3.0, "up": 1.0}
            seen: dict[str, float | None] = {}

            def settled() -> bool:
                seen.update(figures())
                return seen == expected

            wait_until(settled, 60, f"Prometheus to show {expected} (last: {seen})", 0.5)
            # 1 ready < low watermark 2: the rule is evaluated on real data (pending: it
            # fires after 5 minutes, which promtool's tests cover).
            wait_until(
                lambda: "CampaignPoolLow" in alert_names(prom),
                30, "CampaignPoolLow to be pending", 0.5,
            )  # fmt: skip
            # Every query of the Grafana dashboard is valid PromQL to this Prometheus.
            for expr in dashboard_queries():
                prometheus_query(prom, expr)
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        databases.drop(url)
