"""VoiceRoom actor: one dojo's voice call (``pocdojo.media.voice.room``) as a Ray actor.

One detached actor per dojo with a call, named ``voice:<tenant>:<dojo>`` in the dojo
actors' namespace, created by the first join and gone ``idle_exit_s`` after the last
participant left. Calls are live state: nothing is persisted, and a restarted actor would
be an empty call, so the actor is not restarted; clients whose connection fails rejoin,
which creates a fresh one. Its events (joined, left, mute, speaking levels) go to the
dojo's ``/events`` channel through its own Redis client.

Errors are values here: ``join`` returns a ``JoinResult`` rather than raising, so a bad
offer costs the caller a 400 and never the actor.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

import psutil
import ray
import redis.asyncio as aioredis
from aiortc import RTCIceServer
from opentelemetry.trace import SpanKind

from pocdojo.actors.dojo_session import NAMESPACE
from pocdojo.errors import DomainError
from pocdojo.media.voice.room import ParticipantState, Shape, VoiceEvent, VoiceRoom
from pocdojo.metrics import VOICE_PACKET_LOSS_RATIO, VOICE_PARTICIPANTS
from pocdojo.observability.process import observe_process
from pocdojo.observability.tracing import span_from
from pocdojo.settings import Settings

log = logging.getLogger("pocdojo.voice")
LOSS_REPORT_S = 5.0


def actor_name(tenant_id: uuid.UUID, dojo_id: uuid.UUID) -> str:
    return f"voice:{tenant_id}:{dojo_id}"


@dataclass(frozen=True, slots=True)
class JoinResult:
    answer_sdp: str | None
    participants: list[ParticipantState]
    error_status: int | None = None
    error_slug: str | None = None
    error_title: str | None = None
    error_detail: str | None = None


@dataclass(frozen=True, slots=True)
class MuteResult:
    state: ParticipantState | None
    """None when the caller is not in the call."""


@dataclass(frozen=True, slots=True)
class RoomStats:
    pid: int
    cpu_s: float
    """CPU seconds (user + system, every thread) the actor's process has used."""
    participants: int
    detail: dict[str, Any]


class VoiceRoomActor:
    """Plain class; ``VoiceRoomRemote`` below is its Ray actor form."""

    def __init__(
        self,
        settings_json: str,
        tenant_id: str,
        dojo_id: str,
        *,
        shape: Shape = "mix",
        silence_timeout_s: float | None = None,
        idle_exit_s: float = 2.0,
    ) -> None:
        settings = Settings.model_validate_json(settings_json)
        observe_process("voice-room")  # JSON logs and tracing in this worker process
        self._tenant = uuid.UUID(tenant_id)
        self._dojo = uuid.UUID(dojo_id)
        self._idle_exit_s = idle_exit_s
        self._joining = 0
        self._ever_joined = False
        self._redis = aioredis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=1.0, socket_timeout=2.0
        )
        self._room = VoiceRoom(
            shape=shape,
            max_participants=settings.voice_max_participants,
            ice_servers=[
                RTCIceServer(urls=s.urls, username=s.username, credential=s.credential)
                for s in settings.ice_servers
            ],
            silence_timeout_s=silence_timeout_s or settings.voice_silence_timeout_s,
            on_event=self._publish,
        )
        self._room.start()
        loop = asyncio.get_running_loop()
        self._reaper = loop.create_task(self._exit_when_empty())
        self._reporter = loop.create_task(self._report_loss())

    async def _publish(self, event: VoiceEvent) -> None:
        # Imported here: the gateway owns the channel's name and format.
        from pocdojo.api.gateway import publish_event

        VOICE_PARTICIPANTS.set(len(self._room.participants()))
        await publish_event(self._redis, self._tenant, self._dojo, event.to_json())

    async def _report_loss(self) -> None:
        while True:
            await asyncio.sleep(LOSS_REPORT_S)
            for ratio in (await self._room.loss_ratios()).values():
                VOICE_PACKET_LOSS_RATIO.observe(ratio)

    async def _exit_when_empty(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self._idle_exit_s / 2))
            empty_since = self._room.empty_since
            # A room nobody has joined yet waits longer: its first join may still be on
            # its way (created by one request, joined by the next).
            grace = self._idle_exit_s if self._ever_joined else max(self._idle_exit_s, 30.0)
            if (
                self._joining == 0
                and empty_since is not None
                and time.monotonic() - empty_since >= grace
            ):
                log.info("voice %s: call empty, stopping", self._dojo)
                self._reporter.cancel()
                await self._room.close()
                VOICE_PARTICIPANTS.set(0)
                await self._redis.aclose()
                ray.kill(ray.get_runtime_context().current_actor, no_restart=True)
                return

    # -- what the API calls ---------------------------------------------------------------

    async def join(
        self, user_id: str, offer_sdp: str, traceparent: str | None = None
    ) -> JoinResult:
        """Answer ``offer_sdp``; ``traceparent``: the API request's span, continued here."""
        with span_from(traceparent, "voice room join", kind=SpanKind.SERVER):
            return await self._join(user_id, offer_sdp)

    async def _join(self, user_id: str, offer_sdp: str) -> JoinResult:
        self._joining += 1
        try:
            answer = await self._room.join(user_id, offer_sdp)
        except DomainError as exc:
            return JoinResult(
                None, self._room.participants(), exc.status, exc.type_slug, exc.title, exc.detail
            )
        except Exception as exc:  # never let one caller's offer take the call down
            log.exception("voice %s: join failed", self._dojo)
            return JoinResult(
                None, self._room.participants(), 400, "bad-sdp-offer", "Bad SDP offer", str(exc)
            )
        finally:
            self._joining -= 1
        self._ever_joined = True
        return JoinResult(answer, self._room.participants())

    async def leave(self, user_id: str) -> bool:
        return await self._room.leave(user_id)

    async def set_muted(self, user_id: str, muted: bool) -> MuteResult:
        if user_id not in self._room:
            return MuteResult(None)
        return MuteResult(await self._room.set_muted(user_id, muted))

    async def participants(self) -> list[ParticipantState]:
        return self._room.participants()

    async def stats(self) -> RoomStats:
        cpu = psutil.Process(os.getpid()).cpu_times()
        return RoomStats(
            os.getpid(),
            cpu.user + cpu.system,
            len(self._room.participants()),
            self._room.stats(),
        )


_ray: Any = ray  # Ray's overloads do not know actor options such as max_concurrency
VoiceRoomRemote: Any = _ray.remote(max_restarts=0, max_concurrency=1_000, num_cpus=0)(
    VoiceRoomActor
)


def get_or_create(
    settings: Settings, tenant_id: uuid.UUID, dojo_id: uuid.UUID, **options: Any
) -> Any:
    """The call's actor handle: created by the first join, found by name afterwards."""
    return VoiceRoomRemote.options(
        name=actor_name(tenant_id, dojo_id),
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
    ).remote(settings.model_dump_json(), str(tenant_id), str(dojo_id), **options)


def find(tenant_id: uuid.UUID, dojo_id: uuid.UUID) -> Any | None:
    """The call's actor handle if a call is on, without creating one."""
    try:
        return ray.get_actor(actor_name(tenant_id, dojo_id), namespace=NAMESPACE)
    except ValueError:
        return None
