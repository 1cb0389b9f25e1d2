"""The repair form's decisions (actions/intake.py), message by message, as residents answer."""

from __future__ import annotations

from typing import Any

import pytest

from actions.intake import OTHER, PROBLEMS, Heard, answer, details_in

LEAK, NO_WATER, QUALITY = PROBLEMS["report_leak"], PROBLEMS["report_no_water"], PROBLEMS["report_water_quality"]
SO_FAR = {"detail": "户内", "address": "前进中路166号3栋", "phone": "13912345678", "description": "厨房水管漏水"}


def said(text: str, intent: str = "nlu_fallback", confidence: float = 0.9, **extra: Any) -> Heard:
    return Heard(text=text, intent=intent, confidence=confidence, **extra)


@pytest.mark.parametrize(("problem", "text", "intent", "chosen"), [
    (LEAK, "户内", "faq", "户内"),  # the word offered, whatever the NLU thinks it is
    (LEAK, "家里", "faq", "户内"),
    (LEAK, "屋里厨房下面", "report_leak", "户内"),
    (LEAK, "屋企", "nlu_fallback", "户内"),
    (LEAK, "在马路上", "inform", "路面"),
    (LEAK, "小区里面的绿化带", "inform", "小区内"),
    (LEAK, "水表那里", "faq", "水表井"),
    (LEAK, "消火栓", "inform", "消防栓"),
    (LEAK, "不是路面,是水表井", "inform", "水表井"),
    (LEAK, "不清楚", "deny", OTHER),
    (NO_WATER, "单户", "faq", "单户"),
    (NO_WATER, "就我家", "faq", "单户"),
    (NO_WATER, "整栋楼都没有", "report_no_water", "整栋"),
    (NO_WATER, "整个小区", "inform", "小区"),
    (NO_WATER, "附近一片都停了", "report_no_water", "片区"),
    (QUALITY, "黄黄的", "report_water_quality", "发黄"),
    (QUALITY, "有股漂白粉味", "faq", "异味"),
    (QUALITY, "有沙子", "inform", "有杂质"),
])
def test_a_typed_choice_fills_the_question_before_any_intent(problem, text, intent, chosen) -> None:
    faq = "utter_faq/pipe_ownership" if intent == "faq" else None
    step = answer(problem, "detail", said(text, intent, faq=faq, faq_confidence=0.9), {})
    assert step.slots["detail"] == chosen and step.faq is None and step.end is None


def test_a_clicked_button_carries_its_choice() -> None:
    step = answer(LEAK, "detail", said('/inform{"choice": "水表井"}', "inform", choice="水表井"), {})
    assert step.slots["detail"] == "水表井"


def test_an_faq_question_is_answered_and_the_question_asked_again() -> None:
    step = answer(LEAK, "detail", said("家里水管漏水是谁负责维修", "faq", faq="utter_faq/pipe_ownership",
                                       faq_confidence=0.8), {})
    assert step.faq == "utter_faq/pipe_ownership" and "detail" not in step.slots
    step = answer(LEAK, "detail", said("漏水的损失谁来赔", "faq", faq="utter_faq/leak_compensation",
                                       faq_confidence=0.8), {})
    assert (step.faq, step.ask, step.slots.get("detail")) == ("utter_faq/leak_compensation", "detail", None)
    step = answer(LEAK, "description", said("水管归谁管?", "faq", faq="utter_faq/pipe_ownership",
                                            faq_confidence=0.8), {})
    assert step.faq == "utter_faq/pipe_ownership" and "description" not in step.slots


@pytest.mark.parametrize(("asking", "text", "intent"), [
    ("detail", "算了", "deny"), ("address", "不报了", "deny"), ("phone", "取消吧", "nlu_fallback"),
    ("description", "算了不用报了", "report_leak"), ("detail", "唔使喇", "deny"), ("confirmed", "取消", "deny"),
])
def test_a_change_of_mind_ends_the_report(asking: str, text: str, intent: str) -> None:
    assert answer(LEAK, asking, said(text, intent), SO_FAR).end == "cancelled"


def test_not_knowing_is_not_giving_up() -> None:
    assert answer(LEAK, "address", said("不知道", "deny"), {}).end is None


@pytest.mark.parametrize(("asking", "text"), [("detail", "转人工"), ("address", "我要找人工客服"),
                                              ("description", "真人客服在吗"), ("confirmed", "转人工吧")])
def test_a_person_is_asked_for(asking: str, text: str) -> None:
    assert answer(LEAK, asking, said(text, "request_human"), SO_FAR).end == "handoff"


def test_an_address_wins_over_a_word_in_it() -> None:
    step = answer(LEAK, "address", said("人工湖路5号", "request_human"), {})
    assert step.slots["address"] == "人工湖路5号" and step.end is None


def test_two_unusable_choices_fall_back_to_other_and_go_on() -> None:
    first = answer(LEAK, "detail", said("啊?"), {})
    assert first.ask == "detail" and "数字" in first.say[0] and "detail" not in first.slots
    second = answer(LEAK, "detail", said("嗯嗯"), {"misses": first.slots["misses"]})
    assert second.slots["detail"] == OTHER and second.ask is None


def test_two_unusable_addresses_offer_a_person_and_a_third_hands_over() -> None:
    misses: dict[str, Any] = {}
    steps = []
    for text in ("不知道", "就那边", "你们自己找"):
        step = answer(LEAK, "address", said(text), {"misses": misses})
        misses = step.slots["misses"]
        steps.append(step)
    assert steps[0].ask == "address" and "人工" not in steps[0].say[0]
    assert steps[1].ask == "address" and "人工" in steps[1].say[0]
    assert steps[2].end == "handoff"


def test_a_good_answer_forgets_the_misses() -> None:
    step = answer(LEAK, "phone", said("13912345678"), {"misses": {"phone": 1}})
    assert step.slots == {"phone": "13912345678", "misses": None}


@pytest.mark.parametrize(("text", "phone"), [("139 1234 5678", "13912345678"), ("0512-5700 1234", "0512-57001234"),
                                             ("+86 139-1234-5678", "13912345678")])
def test_phones_as_typed(text: str, phone: str) -> None:
    assert answer(LEAK, "phone", said(text), {}).slots["phone"] == phone


def test_an_address_with_the_phone_fills_both() -> None:
    step = answer(LEAK, "address", said("前进中路188号3栋201,电话13912345678"), {})
    assert step.slots["address"] == "前进中路188号3栋201" and step.slots["phone"] == "13912345678"


@pytest.mark.parametrize(("problem", "text", "found"), [
    (NO_WATER, "前进中路188号整栋楼没水了,电话13912345678",
     {"address": "前进中路188号", "phone": "13912345678", "detail": "整栋"}),
    (NO_WATER, "我家在幸福小区8栋,从昨晚就没水了", {"address": "幸福小区8栋"}),
    (LEAK, "清源路18号门口马路上在冒水", {"address": "清源路18号", "detail": "路面"}),
    (LEAK, "小区里消防栓漏水", {}),  # two places named: which one is not guessed
    (LEAK, "我家厨房水管漏水了", {"detail": "户内"}),
    (NO_WATER, "我家停水了", {}),  # 我家 alone does not say whether the neighbours have water
])
def test_details_given_early(problem, text: str, found: dict[str, str]) -> None:
    assert details_in(problem, text) == found


@pytest.mark.parametrize(("text", "changed"), [
    ("地址错了,是188号", {"address": "前进中路188号3栋"}),
    ("地址应该是人民路12号", {"address": "人民路12号"}),
    ("电话改成13800001111", {"phone": "13800001111"}),
    ("是水表井不是户内", {"detail": "水表井"}),
])
def test_a_correction_at_the_read_back(text: str, changed: dict[str, str]) -> None:
    step = answer(LEAK, "confirmed", said(text, "inform"), SO_FAR)
    assert {k: v for k, v in step.slots.items() if k != "misses"} == changed
    assert step.ask == "confirmed" and step.end is None


@pytest.mark.parametrize("text", ["确认", "对", "没问题", "好的", "确认提交", "系"])
def test_the_read_back_is_confirmed(text: str) -> None:
    assert answer(LEAK, "confirmed", said(text, "affirm"), SO_FAR).slots == {"confirmed": True}


def test_a_bare_no_at_the_read_back_asks_what_to_change() -> None:
    step = answer(LEAK, "confirmed", said("不对", "deny"), SO_FAR)
    assert step.end is None and step.ask == "confirmed" and "地址错了" in step.say[0]


def test_a_photo_is_kept_and_the_question_stays() -> None:
    step = answer(LEAK, "address", Heard(text="[image]", kind="image", message_id=41), {"photo_message_ids": [40]})
    assert step.slots["photo_message_ids"] == [40, 41] and step.ask == "address"


def test_a_shared_location_is_the_address() -> None:
    place = {"label": "昆山市前进东路88号", "lat": 31.38, "lng": 120.98}
    step = answer(LEAK, "address", Heard(text="昆山市前进东路88号", kind="location", location=place), {})
    assert step.slots["address"] == place["label"] and step.slots["location"] == {"lat": 31.38, "lng": 120.98}


def test_an_address_said_with_the_choice_is_not_asked_again() -> None:
    step = answer(LEAK, "detail", said("户内,地址是前进中路188号"), {})
    assert step.slots["detail"] == "户内" and step.slots["address"] == "前进中路188号"
    step = answer(LEAK, "detail", said("户内,前进中路188号"), {"address": "人民路12号"})
    assert "address" not in step.slots  # an address already given stays until the read-back corrects it
