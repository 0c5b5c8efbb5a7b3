"""Voice signalling for dojo calls: join with an SDP offer, leave, mute/unmute.

The call itself (media, levels, removals) lives in the dojo's VoiceRoom actor
(``pocdojo.actors.voice_room``); these routes authenticate, check the dojo is the caller's
tenant's and live (before anything reaches the actor, so another tenant never gets near
the media), and forward. Events go out on the dojo's ``/events`` channel from the actor.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from typing import Any, Literal

import ray
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from pocdojo.actors import voice_room
from pocdojo.api.context import authenticate, services
from pocdojo.api.params import json_response, path_uuid
from pocdojo.api.problems import parse_model, read_json
from pocdojo.api.spec import ApiSpec
from pocdojo.errors import Conflict, Unavailable
from pocdojo.media.voice.room import (
    MAX_SDP_BYTES,
    BadOffer,
    CallFull,
    ParticipantState,
    validate_offer,
)
from pocdojo.observability.tracing import current_traceparent
from pocdojo.settings import IceServer
from pocdojo.storage import dojos
from pocdojo.storage.dojos import Dojo
from pocdojo.types import Principal

spec = ApiSpec("voice")
log = logging.getLogger("pocdojo.voice")
CALL_TIMEOUT_S = 15.0
JOIN_TIMEOUT_S = 45.0
"""The first join starts the call's actor: a new Ray worker process (imports aiortc, PyAV),
~2 s on an idle node, much longer on a saturated one."""
JOIN_ATTEMPTS = 5


class VoiceOffer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["offer"] = "offer"
    sdp: str = Field(
        min_length=1,
        max_length=MAX_SDP_BYTES,
        description="the SDP offer with its ICE candidates (gather before sending; no trickle)",
    )


class VoiceParticipant(BaseModel):
    user_id: uuid.UUID
    muted: bool
    joined_at: dt.datetime


class VoiceCall(BaseModel):
    ice_servers: list[IceServer]
    max_participants: int
    participants: list[VoiceParticipant]


class VoiceAnswer(VoiceCall):
    type: Literal["answer"]
    sdp: str


def _participant(p: ParticipantState) -> dict[str, Any]:
    return {
        "user_id": p.user_id,
        "muted": p.muted,
        "joined_at": dt.datetime.fromtimestamp(p.joined_at, dt.UTC).isoformat(),
    }


def _call(request: Request, participants: list[ParticipantState]) -> dict[str, Any]:
    settings = services(request).settings
    return {
        "ice_servers": [s.model_dump(exclude_none=True) for s in settings.ice_servers],
        "max_participants": settings.voice_max_participants,
        "participants": [_participant(p) for p in participants],
    }


async def _dojo(request: Request, principal: Principal) -> Dojo:
    """The caller's tenant's dojo, or 404 exactly like a missing one."""
    async with services(request).db.tenant_tx(principal.tenant_id) as conn:
        return await dojos.get_dojo(conn, path_uuid(request))


def _require_ray() -> None:
    if not ray.is_initialized():
        raise Unavailable("voice calls need the Ray cluster (run the platform with pocdojo up)")


async def _ask(ref: Any, timeout_s: float = CALL_TIMEOUT_S) -> Any:
    try:
        return await asyncio.wait_for(ref, timeout_s)
    except TimeoutError as exc:
        raise Unavailable("the call did not answer in time", retry_after_s=2) from exc


@spec.operation(
    "GET",
    "/v1/dojos/{id}/voice",
    summary="The dojo's call: ICE servers to use and who is in it",
    responses={200: ("The call (no participants when none is on)", VoiceCall)},
)
async def get_voice_call(request: Request) -> Response:
    principal = await authenticate(request)
    dojo = await _dojo(request, principal)
    participants: list[ParticipantState] = []
    if ray.is_initialized():
        actor = voice_room.find(principal.tenant_id, dojo.id)
        if actor is not None:
            try:
                participants = await _ask(actor.participants.remote())
            except ray.exceptions.RayActorError:
                participants = []  # the call just ended
    return json_response(_call(request, participants))


@spec.operation(
    "POST",
    "/v1/dojos/{id}/voice",
    summary="Join the dojo's call with an SDP offer; the answer comes back (no trickle ICE)",
    body=VoiceOffer,
    responses={
        200: ("The SDP answer, ICE servers and who is in the call", VoiceAnswer),
        409: ("The dojo has ended, or the call is full", None),
    },
)
async def join_voice(request: Request) -> Response:
    principal = await authenticate(request)
    body = parse_model(VoiceOffer, await read_json(request, max_bytes=MAX_SDP_BYTES + 4096))
    dojo = await _dojo(request, principal)
    validate_offer(body.sdp)  # garbage never creates a call; the actor checks again
    if dojo.status != "live":
        raise Conflict("this dojo has ended")
    _require_ray()
    settings = services(request).settings
    result: voice_room.JoinResult | None = None
    # The actor stops itself once its call is empty; a join racing with that finds it
    # gone and simply creates the next one.
    for attempt in range(JOIN_ATTEMPTS):
        actor = voice_room.get_or_create(settings, principal.tenant_id, dojo.id)
        try:
            result = await _ask(
                actor.join.remote(str(principal.user_id), body.sdp, current_traceparent()),
                JOIN_TIMEOUT_S,
            )
            break
        except ray.exceptions.RayActorError as exc:
            log.info("voice %s: room gone while joining (attempt %d): %s", dojo.id, attempt, exc)
            await asyncio.sleep(0.2 * (attempt + 1))
    if result is None:
        raise Unavailable("the call is restarting; retry", retry_after_s=1)
    if result.answer_sdp is None:
        detail = result.error_detail or "the offer was refused"
        raise CallFull(detail) if result.error_status == 409 else BadOffer(detail)
    return json_response(
        {"type": "answer", "sdp": result.answer_sdp, **_call(request, result.participants)}
    )


@spec.operation(
    "DELETE",
    "/v1/dojos/{id}/voice",
    summary="Leave the dojo's call",
    responses={204: ("Left (or was not in the call)", None)},
)
async def leave_voice(request: Request) -> Response:
    principal = await authenticate(request)
    dojo = await _dojo(request, principal)
    if ray.is_initialized():
        actor = voice_room.find(principal.tenant_id, dojo.id)
        if actor is not None:
            with contextlib.suppress(ray.exceptions.RayActorError):  # the call is over anyway
                await _ask(actor.leave.remote(str(principal.user_id)))
    return Response(status_code=204)


async def _set_muted(request: Request, muted: bool) -> Response:
    principal = await authenticate(request)
    dojo = await _dojo(request, principal)
    actor = voice_room.find(principal.tenant_id, dojo.id) if ray.is_initialized() else None
    result: voice_room.MuteResult | None = None
    if actor is not None:
        try:
            result = await _ask(actor.set_muted.remote(str(principal.user_id), muted))
        except ray.exceptions.RayActorError:
            result = None
    if result is None or result.state is None:
        raise Conflict("join the call first")
    return json_response(_participant(result.state))


@spec.operation(
    "POST",
    "/v1/dojos/{id}/voice/mute",
    summary="Mute yourself: the others stop hearing you (announced on /events)",
    responses={200: ("Your state in the call", VoiceParticipant), 409: ("Not in the call", None)},
)
async def mute_voice(request: Request) -> Response:
    return await _set_muted(request, True)


@spec.operation(
    "POST",
    "/v1/dojos/{id}/voice/unmute",
    summary="Unmute yourself (announced on /events)",
    responses={200: ("Your state in the call", VoiceParticipant), 409: ("Not in the call", None)},
)
async def unmute_voice(request: Request) -> Response:
    return await _set_muted(request, False)
