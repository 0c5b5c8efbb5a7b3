"""Exports end to end: a job row, a Ray task, a file in the blob store, an expiring URL.

CSV and XLSX hold one row per PoC of the period; the PDF's first page renders (pdftoppm)
and is not blank, and its cover names the tenant and the period.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import openpyxl
import pytest
from PIL import Image

from pocdojo.reports.jobs import ExportFormat
from pocdojo.reports.period import Period
from pocdojo.reports.rows import COLUMNS
from pocdojo.reports.runner import run_export
from pocdojo.reports.summary import Scope
from pocdojo.settings import Settings
from pocdojo.storage.db import Database
from tests.conftest import TenantFixture, repo_root
from tests.reports.conftest import bulk_pocs, default_period, wait_for_export

pytestmark = pytest.mark.ray
# Subprocess calls to poppler block the loop briefly; fine for a test.
# ruff: noqa: ASYNC221, ASYNC240


def _pdftoppm() -> str:
    """pdftoppm from Debian's poppler-utils, installed by scripts/ensure-tools.sh if missing."""
    if shutil.which("pdftoppm") is None:
        done = subprocess.run(
            ["bash", str(repo_root() / "scripts" / "ensure-tools.sh"), "pdftoppm:poppler-utils"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            pytest.skip(f"pdftoppm (poppler-utils) missing, not installable: {done.stderr}")
    return shutil.which("pdftoppm") or pytest.skip("pdftoppm still missing after apt-get")


async def _ids_in_period(
    owner_db: Database, tenant: TenantFixture, owner: uuid.UUID | None
) -> set[str]:
    period = default_period()
    async with owner_db.tenant_tx(tenant.id) as conn:
        rows = await conn.fetch(
            """select id from pocs where created_at >= $1 and created_at < $2
               and ($3::uuid is null or owner_id = $3)""",
            period.start,
            period.end,
            owner,
        )
    return {str(r["id"]) for r in rows}


async def _start(client: httpx.AsyncClient, headers: dict[str, str], **body: str) -> str:
    response = await client.post("/v1/reports/exports", json=body, headers=headers)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


async def test_csv_xlsx_and_pdf_exports(
    ray_cluster: Settings,
    client: httpx.AsyncClient,
    owner_db: Database,
    tenant: TenantFixture,
    tmp_path: Path,
) -> None:
    owners = [tenant.admin.user_id, tenant.member.user_id, tenant.other_member.user_id]
    await bulk_pocs(owner_db, tenant.id, owners, 1500)
    # One PoC whose name a spreadsheet would run as a formula.
    async with owner_db.tenant_tx(tenant.id) as conn:
        await conn.execute(
            "insert into pocs (tenant_id, owner_id, name, languages) "
            "values ($1, $2, '=HYPERLINK(\"http://evil\")', '{go}')",
            tenant.id,
            tenant.member.user_id,
        )
    expected = await _ids_in_period(owner_db, tenant, None)
    admin = tenant.admin.headers
    jobs = {
        fmt: await _start(client, admin, format=fmt, scope="tenant")
        for fmt in ("csv", "xlsx", "pdf")
    }
    mine = await _start(client, tenant.member.headers, format="csv", scope="me")

    done = {fmt: await wait_for_export(client, job_id, admin) for fmt, job_id in jobs.items()}
    for job in done.values():
        assert job["status"] == "done", job
        assert job["progress"] == 100
        assert job["download_url"]
        assert job["download_url_expires_at"]
    files = {}
    for fmt, job in done.items():
        response = await client.get(job["download_url"])
        assert response.status_code == 200, (fmt, response.text)
        assert len(response.content) == job["size_bytes"]
        files[fmt] = response.content

    # CSV: a header and one row per PoC of the period, nothing else.
    rows = list(csv.reader(io.StringIO(files["csv"].decode("utf-8-sig"))))
    assert tuple(rows[0]) == COLUMNS
    assert {r[0] for r in rows[1:]} == expected
    assert len(rows) - 1 == len(expected) == done["csv"]["row_count"]
    names = {r[1] for r in rows[1:]}
    assert '\'=HYPERLINK("http://evil")' in names

    # XLSX: opens with openpyxl, the right row count, the formula neutralised.
    book = openpyxl.load_workbook(io.BytesIO(files["xlsx"]), read_only=True)
    sheet = book["PoCs"]
    values = list(sheet.iter_rows(values_only=True))
    assert tuple(values[0]) == COLUMNS
    assert len(values) - 1 == len(expected)
    assert {v[0] for v in values[1:]} == expected
    assert not any(str(v[1]).startswith("=") for v in values[1:])

    # PDF: a few pages; page 1 renders to a non-blank PNG; the cover names tenant and period.
    pdftoppm = _pdftoppm()  # poppler-utils also brings pdfinfo and pdftotext
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(files["pdf"])
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True)
    pages = int(
        next(line for line in info.stdout.splitlines() if line.startswith("Pages:")).split()[1]
    )
    assert pages >= 3
    subprocess.run(
        [pdftoppm, "-png", "-r", "60", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "p")],
        check=True,
        timeout=60,
    )
    image = Image.open(next(tmp_path.glob("p*.png"))).convert("L")
    histogram = image.histogram()
    dark = sum(histogram[:200])
    assert dark > 0.002 * image.width * image.height, "page 1 is blank"
    cover = subprocess.run(
        ["pdftotext", "-f", "1", "-l", "1", str(pdf), "-"], capture_output=True, text=True
    ).stdout
    period = default_period().to_json()
    assert f"Tenant {tenant.slug}" in cover
    assert f"{period['from']} to {period['to']}" in cover
    charts = subprocess.run(
        [pdftoppm, "-png", "-r", "40", "-f", "2", "-l", "2", str(pdf), str(tmp_path / "c")],
        check=True,
    )
    assert charts.returncode == 0

    # The member's own export holds only their PoCs.
    member_job = await wait_for_export(client, mine, tenant.member.headers)
    response = await client.get(member_job["download_url"])
    own = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))[1:]
    assert {r[0] for r in own} == await _ids_in_period(owner_db, tenant, tenant.member.user_id)
    assert {r[2] for r in own} == {str(tenant.member.user_id)}

    # The download URL is signed and expires: a changed expiry or signature is refused.
    url = urlparse(done["csv"]["download_url"])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    for forged in ({**query, "exp": str(int(query["exp"]) + 3600)}, {**query, "sig": "0" * 64}):
        response = await client.get(f"{url.path}?{urlencode(forged)}")
        assert response.status_code == 403
    expired = {**query, "exp": "1000"}
    assert (await client.get(f"{url.path}?{urlencode(expired)}")).status_code == 403


async def test_export_to_s3_with_a_presigned_url(
    settings: Settings,
    owner_db: Database,
    tenant: TenantFixture,
    s3_endpoint: str,
    s3_bucket: str,
) -> None:
    """The same runner against an S3 API server (moto): multipart upload, presigned GET."""
    await bulk_pocs(owner_db, tenant.id, [tenant.member.user_id], 400)
    s3 = settings.model_copy(
        update={"blob_url": f"s3://{s3_bucket}/exports-test", "s3_endpoint_url": s3_endpoint}
    )
    async with Database(settings.database_url) as db, db.tenant_tx(tenant.id) as conn:
        from pocdojo.reports import jobs

        job = await jobs.insert_job(
            conn,
            tenant.id,
            tenant.member.user_id,
            Scope.ME,
            ExportFormat.CSV,
            Period.parse(None, None),
        )
    assert await run_export(s3, job.id, tenant.id, job.lease) == "done"
    async with Database(settings.database_url) as db, db.tenant_tx(tenant.id) as conn:
        finished = await jobs.get_job(conn, job.id)
    assert finished.blob_key is not None
    assert finished.blob_key.startswith(f"tenants/{tenant.id}/exports/")
    from pocdojo.storage.blobs import BlobKey, open_blob_store

    store = open_blob_store(
        s3.blob_url, signing_key="x", public_base_url="http://x", s3_endpoint_url=s3_endpoint
    )
    url = await store.download_url(BlobKey.parse(finished.blob_key), ttl_s=60)
    assert "X-Amz-Expires=60" in url or "Expires=" in url
    async with httpx.AsyncClient() as http:
        body = (await http.get(url)).content
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert len(rows) - 1 == finished.row_count == 400
