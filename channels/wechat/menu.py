"""The custom menu and welcome text, from YAML (``channels/wechat/menu.yml`` or ``HUB_WECHAT_MENU_PATH``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, model_validator

from channels.wechat.messages import MenuButton

DEFAULT_MENU = Path(__file__).resolve().parent / "menu.yml"


class _Button(BaseModel):
    name: str = Field(min_length=1, max_length=16)  # WeChat: 4 Chinese characters top level, 8 below (bytes)
    type: Literal["click", "view"] | None = None
    key: str | None = Field(None, max_length=128)
    says: str | None = Field(None, min_length=1, max_length=200)
    url: str | None = Field(None, max_length=1024)
    sub_buttons: list[_Button] = Field(default_factory=list, max_length=5)

    @model_validator(mode="after")
    def _complete(self) -> _Button:
        if self.sub_buttons:
            if self.type is not None:
                raise ValueError(f"{self.name}: a button with sub_buttons has no type of its own")
        elif self.type == "click" and not (self.key and self.says):
            raise ValueError(f"{self.name}: a click button needs key and says")
        elif self.type == "view" and not self.url:
            raise ValueError(f"{self.name}: a view button needs url")
        elif self.type is None:
            raise ValueError(f"{self.name}: type click or view, or sub_buttons")
        return self


class _MenuFile(BaseModel):
    welcome: str = Field(min_length=1, max_length=600)
    buttons: list[_Button] = Field(min_length=1, max_length=3)


@dataclass(frozen=True)
class Menu:
    welcome: str
    definition: dict[str, Any]  # the body of menu/create
    buttons: dict[str, MenuButton]  # click keys → what the resident "says"


def load_menu(path: Path | None, base_url: str) -> Menu:
    """Read and check the menu; raises ``ValueError`` naming what is wrong."""
    raw = yaml.safe_load((path or DEFAULT_MENU).read_text("utf-8"))
    menu = _MenuFile.model_validate(raw)
    buttons: dict[str, MenuButton] = {}

    def wechat(button: _Button) -> dict[str, Any]:
        if button.sub_buttons:
            return {"name": button.name, "sub_button": [wechat(b) for b in button.sub_buttons]}
        if button.type == "click":
            assert button.key and button.says
            buttons[button.key] = MenuButton(button.key, button.says)
            return {"type": "click", "name": button.name, "key": button.key}
        assert button.url
        return {"type": "view", "name": button.name, "url": button.url.replace("{base_url}", base_url.rstrip("/"))}

    definition = {"button": [wechat(b) for b in menu.buttons]}
    return Menu(menu.welcome, definition, buttons)
