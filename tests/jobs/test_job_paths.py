"""Every job a service enqueues by name resolves to a job function a worker can import."""

from __future__ import annotations

import importlib

import pytest

from jobs.schedule import PERIODIC_JOBS
from portal.services.infra.queue import JobPath


@pytest.mark.parametrize("path", list(JobPath))
def test_job_path_names_a_callable(path: JobPath) -> None:
    module, _, name = path.rpartition(".")
    assert callable(getattr(importlib.import_module(module), name))


def test_periodic_jobs_use_the_named_paths() -> None:
    assert {job.func for job in PERIODIC_JOBS} <= set(JobPath)
