"""The staff pages, each its own part in the one shell (router/web/pages): served whole, with the top bar, the
page's own navigation link marked current and the toast, nothing of the template left over."""

from __future__ import annotations

import re

import aiohttp
import pytest

from router.web.pages import STAFF_PAGES, StaffPage, render
from tests.conftest import RunningHub


@pytest.mark.parametrize("page", STAFF_PAGES, ids=lambda page: page.path)
async def test_every_staff_page_is_served_whole_in_the_shell(running_hub: RunningHub, page: StaffPage) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{running_hub.url}{page.path}") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        html = await response.text()
    assert html == render(page)
    assert f"<title>{page.title} · 水务客服中心</title>" in html
    assert html.count('data-testid="toast"') == html.count('data-testid="logout"') == 1
    assert html.count("<main") >= 1 and html.rstrip().endswith("</html>")
    current = re.findall(r'<a href="([^"]+)"[^>]*aria-current="page"', html.split("</nav>")[0])
    assert current == ([page.path] if page.path in ("/app/inbox", "/app/orders") else [])
    assert "$" not in html.split("<body")[0] and "<!-- main -->" not in html


def test_a_part_without_its_three_sections_is_refused(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "shell.html").write_text("$title $body_class $nav $head $bar $main", "utf-8")
    (tmp_path / "broken.html").write_text("<!-- head -->\n<!-- main -->\n<main></main>\n", "utf-8")
    monkeypatch.setattr("router.web.pages.FOLDER", tmp_path)
    with pytest.raises(ValueError, match="head, bar and main"):
        render(StaffPage("/app/broken", "坏页", "broken.html"))
