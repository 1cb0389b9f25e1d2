"""A caller's way through the default menu, event by event, as the runtime would feed it."""

from __future__ import annotations

import pytest

from channels.voice.ivr import DEFAULT_MENU, IvrMenu, parse_menu
from channels.voice.walk import (
    CallerContext,
    CollectDigits,
    CollectKey,
    Hangup,
    IvrWalk,
    KeyPress,
    Lookup,
    LookupOutcome,
    LookupRecord,
    Miss,
    Notice,
    Play,
    Step,
    ToAgent,
    Voicemail,
)


@pytest.fixture(scope="module")
def menu() -> IvrMenu:
    return parse_menu(DEFAULT_MENU.read_text("utf-8"))


def said(steps: list[Step]) -> list[str]:
    return [step.text for step in steps if isinstance(step, Play)]


def prompt(menu: IvrMenu, node: str, field: str = "prompt", language: str = "zh") -> str:
    return getattr(menu.nodes[node], field)[language]


def test_the_caller_hears_welcome_hot_topics_of_their_district_and_the_menu(menu: IvrMenu) -> None:
    notices = (Notice("东湖区今晚停水。", ("东湖区",)), Notice("西山区明日降压。", ("西山区", "南岸区")),
               Notice("全市水质达标。"))
    walk = IvrWalk(menu, CallerContext(district="东湖区", notices=notices))
    steps = walk.start()
    assert said(steps) == [menu.prompts.welcome["zh"], "最新停水公告:东湖区今晚停水。 全市水质达标。",
                           prompt(menu, "main")]
    assert steps[-1] == CollectKey(6) and walk.path == ["main"]
    unknown = IvrWalk(menu, CallerContext(notices=notices)).start()  # district unknown: every notice
    assert "西山区明日降压。" in said(unknown)[1] and "东湖区今晚停水。" in said(unknown)[1]
    quiet = IvrWalk(menu, CallerContext(district="东湖区")).start()
    assert len(said(quiet)) == 2  # no notice: no broadcast


def test_replay_back_invalid_key_and_timeout(menu: IvrMenu) -> None:
    walk = IvrWalk(menu)
    walk.start()
    assert walk.key("*") == [Play(prompt(menu, "main"), "zh"), CollectKey(6)]
    steps = walk.key("7")
    assert said(steps) == [menu.prompts.invalid["zh"], prompt(menu, "main")] and steps[-1] == CollectKey(6)
    steps = walk.timeout()
    assert said(steps) == [menu.prompts.no_input["zh"], prompt(menu, "main")]
    # Into the bill query and back with #.
    steps = walk.key("1")
    assert said(steps) == [prompt(menu, "bill")] and steps[-1] == CollectDigits(9, "#", 10)
    assert walk.digits("#") == [Play(prompt(menu, "main"), "zh"), CollectKey(6)]
    assert walk.path == ["main", "bill", "main"]
    assert walk.keys == [KeyPress("main", "*"), KeyPress("main", "7"), KeyPress("main", "1"), KeyPress("bill", "#")]
    assert walk.key("#") == [Play(prompt(menu, "main"), "zh"), CollectKey(6)]  # at the top: the menu again
    # The questions missed, for the key statistics: replays and going back are not misses.
    assert walk.misses == [Miss("main", "invalid"), Miss("main", "timeout")]
    walk.key("1")
    walk.digits("1234#")  # too short for an account number
    walk.digits("")  # nothing typed in time
    assert walk.misses[2:] == [Miss("bill", "invalid"), Miss("bill", "timeout")]


def test_retries_end_in_the_fallback_never_the_same_question_for_ever(menu: IvrMenu) -> None:
    walk = IvrWalk(menu)
    walk.start()
    walk.key("8")
    walk.timeout()
    steps = walk.key("8")  # the third failure with two retries
    assert said(steps) == [menu.prompts.invalid["zh"], prompt(menu, "agent")]
    assert steps[-1] == ToAgent("热线坐席", vip=False) and walk.end == "agent"
    assert walk.key("1") == [] and walk.timeout() == []  # nothing after the end


def test_silence_after_hours_falls_back_to_voicemail_not_an_agent(menu: IvrMenu) -> None:
    walk = IvrWalk(menu, CallerContext(open_now=False))
    steps = walk.start()
    assert said(steps) == [menu.prompts.welcome["zh"], menu.prompts.closed["zh"], prompt(menu, "main", "closed_prompt")]
    for _ in range(2):
        walk.timeout()
    steps = walk.timeout()
    assert steps[-3:] == [Voicemail("consultation", 120), Play(prompt(menu, "voicemail_general", "thanks"), "zh"),
                          Hangup("voicemail")]
    assert walk.path == ["main", "voicemail_general"]


def test_zero_reaches_a_person_from_anywhere_or_voicemail_when_nobody_is_there(menu: IvrMenu) -> None:
    walk = IvrWalk(menu, CallerContext(vip=True))
    walk.start()
    walk.key("1")
    assert walk.digits("0#")[-1] == ToAgent("热线坐席", vip=True)
    confirming = IvrWalk(menu)
    confirming.start()
    confirming.key("1")
    confirming.digits("31002346#")
    assert confirming.key("0")[-1] == ToAgent("热线坐席", vip=False)
    nobody = IvrWalk(menu, CallerContext(agents_available=False))
    nobody.start()
    steps = nobody.key("0")
    assert Voicemail("consultation", 120) in steps and nobody.end == "voicemail"
    assert nobody.path == ["main", "voicemail_general"]


def test_a_bill_by_account_number_read_back_denied_reentered_confirmed_and_answered(menu: IvrMenu) -> None:
    walk = IvrWalk(menu)
    walk.start()
    walk.key("1")
    steps = walk.digits("3100234#")  # seven digits
    assert said(steps) == [prompt(menu, "bill", "invalid"), prompt(menu, "bill")]
    steps = walk.digits("31002346#")
    assert said(steps) == ["您输入的户号是三幺零零二三四六,确认请按1,重新输入请按2。"] and steps[-1] == CollectKey(10)
    assert walk.key("*") == steps  # the read-back again
    steps = walk.key("2")  # wrong: type it again
    assert said(steps) == [prompt(menu, "bill")] and isinstance(steps[-1], CollectDigits)
    walk.digits("31002347")
    assert walk.key("1") == [Lookup("bill", "31002347")]
    steps = walk.result(LookupOutcome(True, "您的欠费为一百二十三元四角五分。"))
    assert said(steps) == ["您的欠费为一百二十三元四角五分。", prompt(menu, "main")]  # back to the menu
    assert walk.lookups == [LookupRecord("bill", "bill", "31002347", True)]
    assert walk.path == ["main", "bill", "main"]


def test_an_unknown_number_is_asked_again_then_the_fallback(menu: IvrMenu) -> None:
    walk = IvrWalk(menu)
    walk.start()
    walk.key("2")
    assert walk.digits("202612060001#") == [Lookup("work_order", "202612060001")]
    steps = walk.result(LookupOutcome(False))
    assert said(steps) == [prompt(menu, "work_order", "not_found"), prompt(menu, "work_order")]
    walk.digits("12ab")  # not digits
    walk.digits("202612060002")
    steps = walk.result(LookupOutcome(False))
    assert steps[-1] == ToAgent("热线坐席", vip=False)
    assert [r.found for r in walk.lookups] == [False, False]


def test_outage_notices_by_the_callers_district(menu: IvrMenu) -> None:
    walk = IvrWalk(menu, CallerContext(district="东湖区"))
    walk.start()
    steps = walk.key("3")
    assert steps == [Play(prompt(menu, "outage"), "zh"), Lookup("outage", "东湖区")]
    steps = walk.result(LookupOutcome(False))
    assert said(steps) == [prompt(menu, "outage", "not_found"), prompt(menu, "main")]


def test_a_leak_report_goes_to_voicemail_with_its_category(menu: IvrMenu) -> None:
    walk = IvrWalk(menu)
    walk.start()
    steps = walk.key("4")
    assert steps == [Play(prompt(menu, "repair"), "zh"), Voicemail("leak_repair", 120),
                     Play(prompt(menu, "repair", "thanks"), "zh"), Hangup("voicemail")]


def test_language_switch_to_english_and_back(menu: IvrMenu) -> None:
    walk = IvrWalk(menu)
    walk.start()
    steps = walk.key("9")
    assert steps == [Play(prompt(menu, "main_en", language="en"), "en"), CollectKey(6)] and walk.language == "en"
    walk.key("1")
    steps = walk.digits("31002346#")
    assert said(steps) == [
        "You entered three one zero zero two three four six. Press 1 to confirm, 2 to enter it again."]
    walk.key("#")
    walk.key("#")  # from the English menu back to the one the switch was made in
    assert walk.node == "main"
    walk.key("9")
    walk.key("9")
    assert walk.language == "zh" and walk.node == "main"
    english = IvrWalk(menu, CallerContext(language="en")).start()
    assert said(english)[0] == menu.prompts.welcome["en"]


def test_a_blacklisted_caller_is_rejected_politely(menu: IvrMenu) -> None:
    walk = IvrWalk(menu, CallerContext(blacklisted=True, notices=(Notice("停水"),)))
    assert walk.start() == [Play(menu.prompts.blacklisted["zh"], "zh"), Hangup("blacklisted")]
    assert walk.path == [] and walk.end == "blacklisted" and walk.key("1") == []


def test_a_call_taken_up_after_a_restart_keeps_the_callers_choice_of_a_person(menu: IvrMenu) -> None:
    main_menu = prompt(menu, "main")
    chose_a_person = IvrWalk(menu, CallerContext(agents_available=True)).resume("agent")
    assert chose_a_person[-1] == ToAgent("热线坐席", vip=False)
    assert said(chose_a_person) == [prompt(menu, "agent")]
    for last in ("bill", None, "no-such-node"):  # anywhere else: back at the menu (no welcome again)
        steps = IvrWalk(menu, CallerContext(agents_available=True)).resume(last)
        assert said(steps) == [main_menu] and isinstance(steps[-1], CollectKey)
