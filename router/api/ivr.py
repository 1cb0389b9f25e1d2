"""The IVR menu for admins: the current version (YAML and the parsed tree), a check without saving, saving a
new version (refused with every problem and its node, nothing stored), the list of versions and one of them.
Each save is audited; the next call plays it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from channels.voice.ivr import MAX_YAML_CHARS, MenuInvalid, parse_menu
from channels.voice.menus import IvrMenuVersion, current_menu, current_version, menu_versions, save_menu
from router.access import ADMIN_ROLES
from router.api import api
from router.api.auditing import audit
from router.api.spec import HUB, Call
from router.errors import Invalid, NotFound
from router.schemas import StrictBody

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
