"""Voice metrics after a real call: two aiortc peers in one dojo's call, the VoiceRoom actor
on the suite's Ray cluster, and the node's metrics endpoint (`pocdojo metrics serve` over
the cluster's ``POCDOJO_METRICS_DIR``, as the app-metrics sidecar of a Ray pod) reporting
the participants and the packet loss the room measured from RTCP."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pocdojo import local_cluster
from pocdojo.actors.voice_room import LOSS_REPORT_S
from pocdojo.settings import Settings
from tests.conftest import TenantFixture, free_port, settings_env
from tests.voice.calls import join, new_dojo

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def node_metrics(settings: Settings, ray_cluster: Settings) -> Iterator[str]:
    """The metrics endpoint of the tests' Ray node (where the VoiceRoom actors write)."""
    directory = os.environ.get("POCDOJO_METRICS_DIR") or local_cluster.metrics_dir(ray_cluster)
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "pocdojo"), "metrics", "serve", "--port", str(port)],
        env=settings_env(settings, POCDOJO_METRICS_DIR=directory),
    )
    yield f"http://127.0.0.1:{port}/metrics"
    process.terminate()
    process.wait(timeout=10)


def totals(text: str) -> dict[str, float]:
    """Each sample name summed over every label (processes included)."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name] = found.get(sample.name, 0.0) + sample.value
    return found


async def test_voice_participants_and_packet_loss_after_a_call(
    client: httpx.AsyncClient, tenant: TenantFixture, node_metrics: str
) -> None:
    dojo_id = await new_dojo(client, tenant.member)
    users = [tenant.member, tenant.other_member]
    peers = []
    try:
        for user, freq in zip(users, (440.0, 660.0), strict=True):
            peer, _ = await join(client, dojo_id, user, freq)
            peers.append(peer)
        for peer in peers:
            await peer.connected()

        # Two participants, and at least one loss report (every LOSS_REPORT_S per peer).
        deadline = time.monotonic() + 4 * LOSS_REPORT_S + 30
        async with httpx.AsyncClient(timeout=5) as http:
            while True:
                try:
                    found = totals((await http.get(node_metrics)).text)
                except httpx.HTTPError:
                    found = {}
                if (
                    found.get("pocdojo_voice_participants", 0) >= 2
                    and found.get("pocdojo_voice_packet_loss_ratio_count", 0) >= 1
                ):
                    break
                assert time.monotonic() < deadline, found
                await asyncio.sleep(0.5)
        assert 2 <= found["pocdojo_voice_participants"] <= 16  # others may still be in calls
        count = found["pocdojo_voice_packet_loss_ratio_count"]
        # Loopback loses (next to) nothing: the mean ratio is a fraction, and small.
        assert 0 <= found["pocdojo_voice_packet_loss_ratio_sum"] / count <= 0.2
    finally:
        for peer in peers:
            await peer.close()
        for user in users:
            await client.delete(f"/v1/dojos/{dojo_id}/voice", headers=user.headers)
