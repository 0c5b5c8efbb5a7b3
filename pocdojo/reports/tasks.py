"""The export job as a Ray task, and the launcher reports-api uses to start it."""

from __future__ import annotations

import asyncio
import logging
import uuid

import ray

from pocdojo.observability.process import observe_process
from pocdojo.reports.runner import run_export
from pocdojo.settings import Settings
from pocdojo.types import TenantId

log = logging.getLogger("pocdojo.reports")


def _export_task(settings_data: dict[str, object], job_id: str, tenant_id: str, lease: str) -> str:
    settings = Settings.model_validate(settings_data)
    observe_process("reports-export")  # JSON logs, tracing and metrics of this process
    return asyncio.run(
        run_export(settings, uuid.UUID(job_id), TenantId(uuid.UUID(tenant_id)), uuid.UUID(lease))
    )


# max_retries: a worker that dies mid-export (OOM, node lost, killed) is retried by Ray with
# the same lease; max_calls=1 gives each export a fresh process, so its memory goes back.
export_task = ray.remote(num_cpus=0.25, max_retries=3, max_calls=1)(_export_task)


class RayExportLauncher:
    """Submits the Ray task; without a Ray connection the job waits for a sweeper."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings.model_dump()

    def launch(self, job_id: uuid.UUID, tenant_id: TenantId, lease: uuid.UUID) -> None:
        if not ray.is_initialized():
            log.warning("no Ray connection: export %s waits for a sweeper", job_id)
            return
        export_task.remote(self._settings, str(job_id), str(tenant_id), str(lease))
