"""The export job as a Ray task, and the launcher reports-api uses to start it.

The task continues the trace of the request that created the job (the job row keeps its
``traceparent``; see `run_export`) and flushes its spans before its process exits.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import ray

from pocdojo.observability.process import TASK_SERVICE, observe_process
from pocdojo.observability.tracing import flush_spans
from pocdojo.reports.runner import run_export
from pocdojo.settings import Settings
from pocdojo.types import TenantId

log = logging.getLogger("pocdojo.reports")


def _export_task(settings_data: dict[str, object], job_id: str, tenant_id: str, lease: str) -> str:
    settings = Settings.model_validate(settings_data)
    observe_process(TASK_SERVICE)  # JSON logs, tracing and metrics of this process
    try:
        return asyncio.run(
            run_export(
                settings, uuid.UUID(job_id), TenantId(uuid.UUID(tenant_id)), uuid.UUID(lease)
            )
        )
    finally:
        # max_calls=1: the process exits after this task, maybe before a batch is exported.
        flush_spans()


# max_retries: a worker that dies mid-export (OOM, node lost, killed) is retried by Ray with
# the same lease; max_calls=1 gives each export a fresh process, so its memory goes back.
export_task = ray.remote(num_cpus=0.25, max_retries=3, max_calls=1)(_export_task)


class RayExportLauncher:
    """Submits the Ray task; without a Ray connection the job waits for a sweeper."""

    def __init__(self, settings: Settings, *, runtime_env: dict[str, Any] | None = None) -> None:
        """``runtime_env``: Ray's runtime environment for the tasks (e.g. extra environment
        variables for their processes); by default they inherit the cluster's."""
        self._settings = settings.model_dump()
        self._task = export_task.options(runtime_env=runtime_env) if runtime_env else export_task

    def launch(self, job_id: uuid.UUID, tenant_id: TenantId, lease: uuid.UUID) -> None:
        if not ray.is_initialized():
            log.warning("no Ray connection: export %s waits for a sweeper", job_id)
            return
        self._task.remote(self._settings, str(job_id), str(tenant_id), str(lease))
