"""`pocdojo video render` as a user runs it: a subprocess, a progress bar, an MP4."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx

from pocdojo.settings import Settings
from tests.conftest import TenantFixture, settings_env
from tests.video.conftest import make_year
from tests.video.filmprobe import probe


async def test_cli_renders_a_film_with_a_progress_bar(
    client: httpx.AsyncClient, tenant: TenantFixture, settings: Settings, tmp_path: Path
) -> None:
    user = tenant.member
    await make_year(client, user, 2, images=1)
    out = tmp_path / "film.mp4"
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "pocdojo"),
        "video",
        "render",
        "--email",
        user.email,
        "--year",
        "2026",
        "--out",
        str(out),
        "--workers",
        "1",
        env=settings_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, stderr.decode()
    assert "wrote" in stdout.decode()
    assert "5/5" in stderr.decode()  # tqdm: intro, 2 PoCs, outro, then the join
    film = probe(out.read_bytes())
    assert film.frames == 4 * 15
    assert film.audio_codec == "aac"
    assert film.faststart
