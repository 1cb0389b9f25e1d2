"""Prompts rendered by espeak-ng and sox into the WAV Asterisk plays, once per voice and text."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import pytest

from channels.voice.ivr import DEFAULT_MENU, parse_menu
from channels.voice.prompts import Prompts, prompt_key
from tests.channels.voice.conftest import VoiceWorld


def audio_of(path: Path) -> tuple[int, int, int, float]:
    with wave.open(str(path), "rb") as audio:
        return (audio.getnchannels(), audio.getsampwidth(), audio.getframerate(),
                audio.getnframes() / audio.getframerate())


async def test_a_prompt_is_rendered_once_as_8khz_mono_16_bit_and_named_by_its_hash(tmp_path: Path) -> None:
    prompts = Prompts(tmp_path / "prompts")
    text = "您好,欢迎致电水务服务热线。"
    first = await asyncio.gather(*(prompts.media(text) for _ in range(4)))
    assert set(first) == {f"sound:shuiwu/{prompt_key('cmn', text)}"}
    [path] = list((tmp_path / "prompts").iterdir())
    channels, width, rate, seconds = audio_of(path)
    assert (channels, width, rate) == (1, 2, 8000) and 1.0 < seconds < 10.0
    rendered_at = path.stat().st_mtime_ns
    assert await prompts.media(f"  {text} ") == first[0]  # spacing does not make another prompt
    assert path.stat().st_mtime_ns == rendered_at

    english = await prompts.media("Welcome to the water hotline.", "en")
    assert english != first[0] and len(list((tmp_path / "prompts").iterdir())) == 2


async def test_a_prompt_with_numbers_is_played_as_its_words_and_numbers_each_rendered_once(tmp_path: Path) -> None:
    """A busy queue announces many places and waits; only a number not heard before is rendered."""
    prompts = Prompts(tmp_path / "prompts")
    template = "您前面还有{ahead}位来电,预计等待{minutes}分钟,请不要挂机。"
    media = await prompts.composed(template, {"ahead": 12, "minutes": 3})
    pieces = ["您前面还有", "12", "位来电,预计等待", "3", "分钟,请不要挂机。"]
    assert media.split(",") == [f"sound:shuiwu/{prompt_key('cmn', piece)}" for piece in pieces]
    assert len(list((tmp_path / "prompts").iterdir())) == 5
    for path in (tmp_path / "prompts").iterdir():
        assert audio_of(path)[:3] == (1, 2, 8000)
    again = await prompts.composed(template, {"ahead": 3, "minutes": 12})  # the same pieces in other places
    assert again.split(",") == [media.split(",")[i] for i in (0, 3, 2, 1, 4)]
    await prompts.composed(template, {"ahead": 11, "minutes": 3})
    assert len(list((tmp_path / "prompts").iterdir())) == 6  # one number more
    english = await prompts.composed("There are {ahead} callers ahead of you.", {"ahead": 12}, "en")
    assert english.split(",")[1] == f"sound:shuiwu/{prompt_key('en', '12')}"
    with pytest.raises(KeyError):
        await prompts.composed(template, {"ahead": 1})
    for refused, language in (("   ", "zh"), ("{ahead}位" * 1100, "zh"), (template, "fr")):
        with pytest.raises(ValueError):
            await prompts.composed(refused, {"ahead": 1, "minutes": 2}, language)


@pytest.mark.parametrize(("text", "language"), [("", "zh"), ("   ", "zh"), ("x" * 2001, "zh"), ("你好", "fr")])
async def test_a_prompt_without_text_or_voice_is_refused(tmp_path: Path, text: str, language: str) -> None:
    with pytest.raises(ValueError):
        await Prompts(tmp_path).media(text, language)


async def test_the_menus_fixed_prompts_are_rendered_when_the_hub_starts(voice: VoiceWorld) -> None:
    """No caller waits for espeak-ng on a prompt the menu says word for word."""
    menu = parse_menu(DEFAULT_MENU.read_text("utf-8"))
    files = {voice.adapter.prompts.file_of(text, language) for text, language in menu.fixed_prompts()}
    assert len(files) >= 40
    deadline = asyncio.get_running_loop().time() + 90
    while missing := [f for f in files if not f.exists()]:
        assert asyncio.get_running_loop().time() < deadline, f"{len(missing)} prompts not rendered"
        await asyncio.sleep(0.5)
