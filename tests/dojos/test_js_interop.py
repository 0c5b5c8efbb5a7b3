"""Stock JavaScript Yjs clients (yjs + y-websocket, run by Node) and pycrdt clients edit
one dojo together through the real gateway, converge, and see each other's awareness."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import TenantFixture
from tests.dojos.test_gateway_sync import eventually, new_dojo, sync_url
from tests.dojos.ywsclient import YClient

JS = Path(__file__).resolve().parents[1] / "js"
pytestmark = [
    pytest.mark.ray,
    pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js"),
]


@pytest.fixture(scope="session")
def node_modules() -> Path:
    if not (JS / "node_modules" / "y-websocket").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=JS,
            check=True,
            timeout=300,
        )
    return JS / "node_modules"


async def test_js_and_pycrdt_clients_converge(
    client: httpx.AsyncClient,
    ws_base: str,
    tenant: TenantFixture,
    ray_cluster: object,
    node_modules: Path,
) -> None:
    dojo = await new_dojo(client, tenant.member, files={"README.md": "# shared\n"})
    py = await YClient(sync_url(ws_base, dojo["id"], tenant.member.token)).connect()
    await py.set_awareness({"user": {"name": "py-client", "cursor": 0}})
    server_url = f"{ws_base}/v1/dojos"
    expect = {"py.txt": "hello from python", "README.md": "# shared"}
    procs = [
        await asyncio.create_subprocess_exec(
            "node",
            str(JS / "interop_client.js"),
            server_url,
            f"{dojo['id']}/sync",
            tenant.other_member.token,
            name,
            "40",
            json.dumps(expect),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=JS,
        )
        for name in ("js-a", "js-b")
    ]
    try:
        py.edit("py.txt", 0, "hello from python")
        outputs = await asyncio.wait_for(
            asyncio.gather(*(p.communicate() for p in procs)), timeout=60
        )
        reports = [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outputs]
        for report in reports:
            assert report["ok"], report
            assert "py-client" in report["awareness"]
        full = {"README.md": "# shared\n", "py.txt": "hello from python"}
        full["js-a.js"] = reports[0]["files"]["js-a.js"]
        full["js-b.js"] = reports[1]["files"]["js-b.js"]
        await eventually(lambda: py.read() == full, within_s=30)
        assert len(full["js-a.js"]) == len(full["js-b.js"]) == 40
        # Each JS client ended with the same document the Python client has.
        for report in reports:
            assert set(report["files"]) == set(full)
        assert {"js-a", "js-b"} <= py.seen_names  # their awareness reached the Python side
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
        await py.close()
