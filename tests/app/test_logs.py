"""The JSON log line: core fields, `extra` fields, secrets masked."""

from __future__ import annotations

import json
import logging

from portal.logs import JsonFormatter


def line_of(**extra: object) -> dict[str, object]:
    record = logging.getLogger("portal.test").makeRecord(
        "portal.test", logging.INFO, __file__, 1, "pool.build.reserved", (), None, extra=extra
    )
    return json.loads(JsonFormatter().format(record))


def test_extra_fields_are_written_beside_the_core_fields() -> None:
    line = line_of(campaign_id="c-1", campaigns=2)
    assert line["event"] == "pool.build.reserved"
    assert line["level"] == "info"
    assert line["logger"] == "portal.test"
    assert (line["campaign_id"], line["campaigns"]) == ("c-1", 2)


def test_an_extra_field_named_like_a_core_field_does_not_replace_it() -> None:
    line = line_of(level=0, event="other", ts="yesterday")
    assert line["level"] == "info"
    assert line["event"] == "pool.build.reserved"
    assert line["ts"] != "yesterday"
    assert (line["extra_level"], line["extra_event"], line["extra_ts"]) == (0, "other", "yesterday")


def test_secret_looking_fields_are_masked() -> None:
    line = line_of(webhook_token="s3cret", password="hunter2", pool_type="master")
    assert line["webhook_token"] == "***"
    assert line["password"] == "***"
    assert line["pool_type"] == "master"
