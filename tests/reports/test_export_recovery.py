"""An export survives its worker being killed mid-way (Ray retries the task under the same
lease), and the sweeper re-launches jobs whose task was lost (stale heartbeat)."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import uuid

import httpx
import openpyxl
import pytest

from pocdojo.reports import jobs
from pocdojo.reports.jobs import ExportFormat
from pocdojo.reports.period import Period
from pocdojo.reports.runner import ExportSweeper
from pocdojo.reports.summary import Scope
from pocdojo.reports.tasks import RayExportLauncher
from pocdojo.settings import Settings
from pocdojo.storage.db import Database
from tests.conftest import TenantFixture
from tests.reports.conftest import bulk_pocs, wait_for_export

pytestmark = pytest.mark.ray


async def _row(owner_db: Database, tenant: TenantFixture, job_id: str) -> dict[str, object]:
    async with owner_db.tenant_tx(tenant.id) as conn:
        row = await conn.fetchrow(
            "select status, progress, attempts, worker from report_exports where id = $1",
            uuid.UUID(job_id),
        )
    assert row is not None
    return dict(row)


async def test_killing_the_worker_mid_export_still_finishes(
    ray_cluster: Settings,
    client: httpx.AsyncClient,
    owner_db: Database,
    tenant: TenantFixture,
) -> None:
    await bulk_pocs(owner_db, tenant.id, [tenant.admin.user_id, tenant.member.user_id], 20_000)
    response = await client.post(
        "/v1/reports/exports",
        json={"format": "xlsx", "scope": "tenant"},
        headers=tenant.admin.headers,
    )
    assert response.status_code == 202
    job_id = response.json()["id"]

    # Wait until the first attempt is writing rows (progress reported), then SIGKILL it.
    deadline = asyncio.get_running_loop().time() + 120
    while True:
        row = await _row(owner_db, tenant, job_id)
        assert row["status"] != "done", "the export finished before it could be killed"
        if row["status"] == "running" and int(str(row["progress"])) > 0:
            break
        assert asyncio.get_running_loop().time() < deadline, row
        await asyncio.sleep(0.1)
    assert row["attempts"] == 1
    pid = int(str(row["worker"]).rsplit(":", 1)[1])
    os.kill(pid, signal.SIGKILL)

    job = await wait_for_export(client, job_id, tenant.admin.headers, timeout_s=240)
    assert job["status"] == "done", job
    assert job["attempts"] >= 2
    after = await _row(owner_db, tenant, job_id)
    assert after["worker"] != row["worker"]
    data = (await client.get(job["download_url"])).content
    sheet = openpyxl.load_workbook(io.BytesIO(data), read_only=True)["PoCs"]
    assert sum(1 for _ in sheet.iter_rows(values_only=True)) - 1 == job["row_count"] == 20_000


async def test_the_sweeper_relaunches_lost_jobs_and_gives_up_on_poison(
    ray_cluster: Settings,
    settings: Settings,
    client: httpx.AsyncClient,
    owner_db: Database,
    tenant: TenantFixture,
) -> None:
    await bulk_pocs(owner_db, tenant.id, [tenant.member.user_id], 200)
    period = Period.parse(None, None)
    async with Database(settings.database_url) as db:
        async with db.tenant_tx(tenant.id) as conn:
            # A job whose task was lost (owner died): running, heartbeat long ago.
            lost = await jobs.insert_job(
                conn, tenant.id, tenant.member.user_id, Scope.ME, ExportFormat.CSV, period
            )
            poison = await jobs.insert_job(
                conn, tenant.id, tenant.member.user_id, Scope.ME, ExportFormat.CSV, period
            )
            await conn.execute(
                "update report_exports set status = 'running', attempts = 1, "
                "heartbeat_at = now() - interval '10 minutes' where id = $1",
                lost.id,
            )
            await conn.execute(
                "update report_exports set status = 'running', attempts = $2, "
                "heartbeat_at = now() - interval '10 minutes' where id = $1",
                poison.id,
                jobs.MAX_ATTEMPTS,
            )
        sweeper = ExportSweeper(db, RayExportLauncher(settings), stale_after_s=60, every_s=1)
        # The test server's own sweeper may get there first; either way it is re-launched.
        await sweeper.sweep_once()
    job = await wait_for_export(client, str(lost.id), tenant.member.headers)
    assert job["status"] == "done", job
    assert job["attempts"] == 2
    assert job["row_count"] == 200
    gave_up = await wait_for_export(client, str(poison.id), tenant.member.headers)
    assert gave_up["status"] == "failed"
    assert "attempts" in gave_up["error"]
