"""Helpers for voice tests: real aiortc peers joining through the HTTP API, the dojo's
``/events`` socket, and "who hears what" by frequency analysis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import httpx
import websockets

from pocdojo.media.voice.analysis import tone_amplitude
from pocdojo.media.voice.peer import TonePeer
from pocdojo.media.voice.tracks import ToneTrack
from tests.conftest import TenantUser

HEARD, NOT_HEARD = 0.025, 0.01
"""Tone amplitude (share of full scale) received: each sender plays 0.3; a mix of two
arrives at ~0.15 per tone after two Opus hops (~0.04 on a saturated machine, where late
frames become silence); a tone that is not there measures < 0.003."""


async def eventually(check: Any, within_s: float = 20.0) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.05)


async def new_dojo(client: httpx.AsyncClient, who: TenantUser) -> str:
    response = await client.post(
        "/v1/dojos", json={"title": "pairing", "language": "python"}, headers=who.headers
    )
    assert response.status_code == 201, response.text
    dojo_id: str = response.json()["id"]
    return dojo_id


async def join(
    client: httpx.AsyncClient, dojo_id: str, who: TenantUser, frequency_hz: float | None
) -> tuple[TonePeer, dict[str, Any]]:
    """A peer playing ``frequency_hz`` that joined the call (answer applied)."""
    peer = TonePeer(ToneTrack(frequency_hz))
    offer = await peer.offer()
    # The first join starts the call's actor (a new Ray worker): slow on a saturated machine.
    response = await client.post(
        f"/v1/dojos/{dojo_id}/voice",
        json={"type": "offer", "sdp": offer},
        headers=who.headers,
        timeout=60,
    )
    if response.status_code != 200:
        await peer.close()
        raise AssertionError(response.text)
    body: dict[str, Any] = response.json()
    await peer.accept(body["sdp"])
    return peer, body


async def hear(
    peers: list[TonePeer], freqs: list[float], window_s: float = 1.0
) -> list[dict[float, float]]:
    """What each peer hears now: tone amplitude per frequency over a fresh window."""
    await asyncio.sleep(0.6)  # let what was in flight before (jitter buffers) drain
    for peer in peers:
        peer.clear()
    await asyncio.sleep(window_s)
    heard = []
    for peer in peers:
        assert len(peer.recorders) == 1, "the room sends one mixed track"
        samples = peer.recorders[0].samples()
        assert samples.size > 0.5 * window_s * 48_000, "audio stopped flowing"
        heard.append({f: tone_amplitude(samples, f) for f in freqs})
    return heard


class Events:
    """The dojo's ``/events`` socket, collected in the background."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.items: list[dict[str, Any]] = []
        self._task = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, server: str, dojo_id: str, token: str) -> Events:
        url = f"{server.replace('http', 'ws')}/v1/dojos/{dojo_id}/events?token={token}"
        ws = await websockets.connect(url)
        hello = json.loads(await ws.recv())
        assert hello["type"] == "hello"
        return cls(ws)

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed, asyncio.CancelledError):
            async for message in self.ws:
                self.items.append(json.loads(message))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.items if e["type"] == kind]

    async def close(self) -> None:
        self._task.cancel()
        await self.ws.close()
