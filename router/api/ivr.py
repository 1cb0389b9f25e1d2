"""The IVR menu for admins: the current version (YAML and the parsed tree), a check without saving, saving a
new version (refused with every problem and its node, nothing stored), the list of versions and one of them;
the menu's prompts, each heard as synthesised speech or replaced by an uploaded recording (checked for format
and length). Each change is audited; the next call plays it."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from channels.voice.adapter import VoiceAdapter
from channels.voice.ivr import MAX_YAML_CHARS, MenuInvalid, parse_menu
from channels.voice.menus import IvrMenuVersion, current_menu, current_version, menu_versions, save_menu
from channels.voice.prompts import VOICES, Prompts, prompt_key
from channels.voice.recordings import (
    MAX_BYTES,
    IvrRecording,
    RecordingInvalid,
    convert,
    recordings_by_key,
    remove_recording,
    replace_recording,
)
from router.access import ADMIN_ROLES
from router.api import api
from router.api.auditing import audit
from router.api.spec import HUB, Call
from router.errors import Invalid, NotFound
from router.hub import Hub
from router.schemas import StrictBody
from router.uploads import read_file_part

MAX_VERSIONS = 100


class MenuBody(StrictBody):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)  # stored as typed

    yaml: str = Field(min_length=1, max_length=MAX_YAML_CHARS, description="the menu as YAML")


class ProblemOut(BaseModel):
    node: str | None  # None: the menu as a whole
    message: str


class MenuCheck(BaseModel):
    tree: dict[str, Any]


class MenuOut(MenuCheck):
    version: int  # 0: the built-in default, played because the stored version is no longer valid
    yaml: str
    saved_by: str
    saved_at: datetime


class VersionOut(BaseModel):
    id: int
    saved_by: str
    saved_at: datetime
    current: bool


class VersionWithText(VersionOut):
    yaml: str


class ItemsOfVersions(BaseModel):
    items: list[VersionOut]


class VersionsQuery(BaseModel):
    limit: int = Field(50, ge=1, le=MAX_VERSIONS)


def _refused(exc: MenuInvalid) -> Invalid:
    problems = [ProblemOut(node=p.node, message=p.message).model_dump() for p in exc.problems]
    return Invalid(f"菜单有 {len(problems)} 处问题,未保存", code="invalid_menu", details={"problems": problems})


def _version_out(version: IvrMenuVersion) -> VersionOut:
    return VersionOut(id=version.id, saved_by=version.saved_by, saved_at=version.saved_at, current=version.current)


@api.endpoint("GET", "/api/ivr/menu", summary="The current IVR menu: YAML and parsed tree", roles=ADMIN_ROLES,
              response=MenuOut, tag="ivr")
async def get_menu(call: Call) -> MenuOut:
    current = await current_menu(call.request.app[HUB].sessions)
    return MenuOut(version=current.version, yaml=current.yaml_text, saved_by=current.saved_by,
                   saved_at=current.saved_at, tree=current.menu.tree())


@api.endpoint("POST", "/api/ivr/menu/check", summary="Check a menu without saving it; 422 lists every problem",
              roles=ADMIN_ROLES, body=MenuBody, response=MenuCheck, tag="ivr")
async def check_menu(call: Call) -> MenuCheck:
    try:
        return MenuCheck(tree=parse_menu(call.body.yaml).tree())
    except MenuInvalid as exc:
        raise _refused(exc) from None


@api.endpoint("PUT", "/api/ivr/menu", summary="Save a new current menu; 422 lists every problem, nothing stored",
              roles=ADMIN_ROLES, body=MenuBody, response=MenuOut, tag="ivr")
async def put_menu(call: Call) -> MenuOut:
    text: str = call.body.yaml
    try:
        menu = parse_menu(text)
    except MenuInvalid as exc:
        raise _refused(exc) from None
    async with call.request.app[HUB].sessions.begin() as session:
        previous = await current_version(session)
        version = await save_menu(session, text, call.user.username, call.user.user_id)
        audit(call, "ivr_menu.save", "ivr_menu", version.id)(
            session, previous=previous.id if previous else None, nodes=len(menu.nodes))
    return MenuOut(version=version.id, yaml=version.yaml_text, saved_by=version.saved_by, saved_at=version.saved_at,
                   tree=menu.tree())


@api.endpoint("GET", "/api/ivr/menu/versions", summary="Saved IVR menu versions, newest first", roles=ADMIN_ROLES,
              query=VersionsQuery, response=ItemsOfVersions, tag="ivr")
async def list_versions(call: Call) -> ItemsOfVersions:
    async with call.request.app[HUB].sessions() as session:
        versions = await menu_versions(session, call.query.limit)
    return ItemsOfVersions(items=[_version_out(v) for v in versions])


@api.endpoint("GET", r"/api/ivr/menu/versions/{version_id:\d+}", summary="One saved IVR menu version with its YAML",
              roles=ADMIN_ROLES, response=VersionWithText, tag="ivr")
async def get_version(call: Call) -> VersionWithText:
    async with call.request.app[HUB].sessions() as session:
        version = await session.get(IvrMenuVersion, call.path["version_id"])
    if version is None:
        raise NotFound("菜单版本不存在", code="ivr_menu_version_not_found")
    return VersionWithText(**_version_out(version).model_dump(), yaml=version.yaml_text)


PROMPT = r"/api/ivr/prompts/{key:[0-9a-f]{64}}"


class RecordingOut(BaseModel):
    name: str
    duration_ms: int
    uploaded_by: str
    uploaded_at: datetime


class PromptOut(BaseModel):
    key: str  # the prompt's text and language as the prompt directory keys them
    language: str
    text: str
    places: list[str]  # where the menu says it: "welcome", "main.prompt", …
    recording: RecordingOut | None  # None: synthesised speech


class ItemsOfPrompts(BaseModel):
    items: list[PromptOut]


def _prompt_out(key: str, language: str, text: str, places: list[str], recording: IvrRecording | None) -> PromptOut:
    return PromptOut(key=key, language=language, text=text, places=places, recording=None if recording is None else
                     RecordingOut(name=recording.name, duration_ms=recording.duration_ms,
                                  uploaded_by=recording.uploaded_by, uploaded_at=recording.uploaded_at))


async def _menu_prompts(hub: Hub) -> dict[str, tuple[str, str, list[str]]]:
    """The current menu's fixed prompts by key: (language, text, places)."""
    menu = (await current_menu(hub.sessions)).menu
    return {prompt_key(VOICES[language], " ".join(text.split())): (language, text, places)
            for (text, language), places in sorted(menu.fixed_prompts().items())}


async def _prompt_of(hub: Hub, key: str) -> tuple[str, str, list[str]]:
    found = (await _menu_prompts(hub)).get(key)
    if found is None:
        raise NotFound("当前菜单中没有这条提示音(含变量的提示音不能录音)", code="ivr_prompt_not_found")
    return found


def _prompts_of(hub: Hub) -> Prompts:
    """The voice channel's prompts, or the prompt directory's when this process does not take calls."""
    voice = hub.adapters.get("voice")
    return voice.prompts if isinstance(voice, VoiceAdapter) else Prompts(hub.settings.effective_prompt_dir)


@api.endpoint("GET", "/api/ivr/prompts", summary="The current menu's prompts, each synthesised or recorded",
              roles=ADMIN_ROLES, response=ItemsOfPrompts, tag="ivr")
async def list_prompts(call: Call) -> ItemsOfPrompts:
    hub = call.request.app[HUB]
    prompts = await _menu_prompts(hub)
    async with hub.sessions() as session:
        recorded = await recordings_by_key(session)
    return ItemsOfPrompts(items=[_prompt_out(key, language, text, places, recorded.get(key))
                                 for key, (language, text, places) in prompts.items()])


@api.endpoint("PUT", PROMPT + "/recording", summary="Replace a prompt's synthesised speech by a recording (multipart "
              "field `file`: WAV, PCM, 8–48 kHz, 0.5–120 s)", roles=ADMIN_ROLES, upload=True, response=PromptOut,
              tag="ivr", errors=(422,))
async def put_recording(call: Call) -> PromptOut:
    hub = call.request.app[HUB]
    key = call.path["key"]
    language, text, places = await _prompt_of(hub, key)  # 404 before reading a large body
    name, data = await read_file_part(call.request, MAX_BYTES)
    try:
        converted = await asyncio.to_thread(convert, data)
    except RecordingInvalid as exc:
        raise Invalid(str(exc), code="invalid_recording") from None
    async with hub.sessions.begin() as session:
        recording, replaced = await replace_recording(
            session, hub.files, key=key, language=language, text=text, name=name, converted=converted,
            uploaded_by=call.user.username)
        audit(call, "ivr_prompt.record", "ivr_prompt", key)(
            session, language=language, text=text[:200], duration_ms=converted.duration_ms, name=name)
    if replaced is not None:
        await hub.files.forget({replaced})
    return _prompt_out(key, language, text, places, recording)


@api.endpoint("DELETE", PROMPT + "/recording", summary="Remove a prompt's recording: its text is synthesised again",
              roles=ADMIN_ROLES, response=PromptOut, tag="ivr")
async def delete_recording(call: Call) -> PromptOut:
    hub = call.request.app[HUB]
    key = call.path["key"]
    language, text, places = await _prompt_of(hub, key)
    async with hub.sessions.begin() as session:
        removed = await remove_recording(session, key)
        if removed is not None:
            audit(call, "ivr_prompt.unrecord", "ivr_prompt", key)(session, language=language, text=text[:200])
    if removed is not None:
        await hub.files.forget({removed})
    return _prompt_out(key, language, text, places, None)


@api.endpoint("GET", PROMPT + "/audio", summary="What a caller hears for a prompt (WAV, 8 kHz mono)",
              roles=ADMIN_ROLES, tag="ivr")
async def prompt_audio(call: Call) -> web.FileResponse:
    hub = call.request.app[HUB]
    language, text, _ = await _prompt_of(hub, call.path["key"])
    async with hub.sessions() as session:
        recorded = await recordings_by_key(session)
    if call.path["key"] in recorded:
        opened = await hub.files.open(recorded[call.path["key"]].file_id)
        path = opened[1] if opened is not None else None
    else:
        path = await _prompts_of(hub).file_for(text, language)
    if path is None or not path.exists():
        raise NotFound("提示音文件不存在", code="ivr_prompt_audio_missing")
    return web.FileResponse(path, headers={"Content-Type": "audio/wav", "Cache-Control": "no-store",
                                           "X-Content-Type-Options": "nosniff"})
