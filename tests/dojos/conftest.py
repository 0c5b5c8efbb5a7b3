"""A Ray cluster of the tests' own for dojo session actors, and Yjs websocket clients."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import ray

from pocdojo import local_cluster
from pocdojo.actors.dojo_session import NAMESPACE
from pocdojo.settings import Settings
from tests.conftest import isolated_cluster_settings


@pytest.fixture(scope="session")
def ray_cluster(settings: Settings) -> Iterator[Settings]:
    """A `ray start` head (detached actors need one) and this process connected to it."""
    cluster = isolated_cluster_settings(settings, offset=300)
    local_cluster.start_ray(cluster)
    try:
        ray.init(address=cluster.ray_address, namespace=NAMESPACE, log_to_driver=False)
        yield cluster
    finally:
        ray.shutdown()
        local_cluster.stop_ray(cluster)
