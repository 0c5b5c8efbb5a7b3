"""Where dojo websockets connect: the gateway's own listener (the production path) and, for
the tests that must hold on both, the Starlette routes that sit behind Serve's proxy."""

from __future__ import annotations

import pytest


@pytest.fixture
def ws_base(dojo_gateway: str) -> str:
    """The gateway listener hosting the sessions of the dojos it owns (the default)."""
    return dojo_gateway


@pytest.fixture
def actor_ws_base(actor_dojo_gateway: str) -> str:
    """A gateway listener over one Ray actor per dojo (``dojo_session_host = "actor"``)."""
    return actor_dojo_gateway


@pytest.fixture(params=["gateway", "serve-route"])
def each_ws_base(request: pytest.FixtureRequest, dojo_gateway: str, server: str) -> str:
    return dojo_gateway if request.param == "gateway" else server.replace("http", "ws", 1)
