"""The staff pages: one shell (``shell.html``: the head, the top bar with the navigation and the signed-in user,
the toast) around each page's own part.

A part (``inbox.html``…) has three sections, each opened by a comment line of its own: ``<!-- head -->`` (its
stylesheets and scripts, after the shell's ``chatkit.js`` and ``staff.js``), ``<!-- bar -->`` (its items in
the top bar, between the navigation and the user) and ``<!-- main -->`` (the page). staff.js adds the links a
role may follow (call records, wallboard, admin pages) to the navigation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

from aiohttp import web

FOLDER = Path(__file__).parent
SECTION = re.compile(r"^<!-- (head|bar|main) -->\n", re.MULTILINE)
NAVIGATION = (("/app/inbox", "nav-agent", "坐席工作台"), ("/app/orders", "nav-orders", "工单中心"))


@dataclass(frozen=True, slots=True)
class StaffPage:
    path: str
    title: str
    part: str
    body_class: str = "agent-page"
    agent_link_hidden: bool = False  # shown by the page's script to those who work the inbox


STAFF_PAGES = (
    StaffPage("/app/inbox", "坐席工作台", "inbox.html"),
    StaffPage("/app/orders", "工单中心", "orders.html", body_class="agent-page orders-page", agent_link_hidden=True),
    StaffPage("/app/wallboard", "监控大屏", "wallboard.html"),
    StaffPage("/app/admin", "账号管理", "admin.html"),
    StaffPage("/app/admin/audit", "审计日志", "audit.html"),
    StaffPage("/app/ivr", "语音菜单", "ivr.html"),
    StaffPage("/app/calls", "通话记录", "calls.html"),
)


def render(page: StaffPage) -> str:
    """The whole HTML of ``page``: its part in the shell."""
    pieces = SECTION.split((FOLDER / page.part).read_text("utf-8"))
    sections = dict(zip(pieces[1::2], pieces[2::2], strict=True))
    if pieces[0].strip() or set(sections) != {"head", "bar", "main"}:
        raise ValueError(f"{page.part}: expected the sections head, bar and main")
    nav = "".join(f'      <a href="{href}" data-testid="{testid}"{_link_state(page, href, testid)}>{text}</a>\n'
                  for href, testid, text in NAVIGATION)
    return Template((FOLDER / "shell.html").read_text("utf-8")).substitute(
        title=page.title, body_class=page.body_class, nav=nav, head=sections["head"], bar=sections["bar"],
        main=sections["main"].rstrip("\n"))


def _link_state(page: StaffPage, href: str, testid: str) -> str:
    if href == page.path:
        return ' aria-current="page"'
    return " hidden" if testid == "nav-agent" and page.agent_link_hidden else ""


def add_routes(app: web.Application) -> None:
    """Serve every staff page, rendered once."""
    for page in STAFF_PAGES:
        html = render(page)

        async def serve(_request: web.Request, html: str = html) -> web.Response:
            return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-cache"})

        app.router.add_get(page.path, serve)
