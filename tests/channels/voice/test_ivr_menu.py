"""Parsing and checking IVR menus: the default one is valid, and every problem is reported with its node."""

from __future__ import annotations

import json

import pytest
import yaml

from channels.voice.ivr import DEFAULT_MENU, MenuInvalid, Problem, parse_menu

PROMPTS = {name: {"zh": "提示"} for name in ("welcome", "closed", "blacklisted", "invalid", "no_input", "goodbye")}
PROMPTS["hot_topics"] = {"zh": "公告:{notices}"}


def menu_text(nodes: dict, **top: object) -> str:
    # Through JSON: a dict used twice would become a YAML alias, which menus refuse.
    menu = json.loads(json.dumps({"languages": ["zh"], "start": "main", "prompts": PROMPTS, "nodes": nodes, **top}))
    return yaml.safe_dump(menu, allow_unicode=True, sort_keys=False)


def problems(text: str) -> list[Problem]:
    with pytest.raises(MenuInvalid) as raised:
        parse_menu(text)
    return raised.value.problems


def menu_node(keys: dict, fallback: str = "bye", **more: object) -> dict:
    return {"kind": "menu", "prompt": {"zh": "请选择"}, "keys": keys, "fallback": fallback, **more}


BYE = {"kind": "hangup"}


def test_the_default_menu_is_valid_and_its_tree_is_json() -> None:
    menu = parse_menu(DEFAULT_MENU.read_text("utf-8"))
    tree = menu.tree()
    assert tree["start"] == "main" and tree["nodes"]["main"]["keys"]["4"] == "repair"
    assert tree["nodes"]["repair"] == {**tree["nodes"]["repair"], "kind": "voicemail", "category": "leak_repair"}
    assert menu.languages == ("zh", "en") and set(menu.nodes["bill"].prompt) == {"zh", "en"}


def test_the_prompts_said_word_for_word_can_be_rendered_before_any_call() -> None:
    menu = parse_menu(DEFAULT_MENU.read_text("utf-8"))
    fixed = menu.fixed_prompts()
    assert (menu.prompts.welcome["zh"], "zh") in fixed and (menu.prompts.welcome["en"], "en") in fixed
    assert (menu.nodes["main"].prompt["zh"], "zh") in fixed
    assert (menu.nodes["repair"].thanks["en"], "en") in fixed
    # Known only during a call: the notices in force, the number typed.
    assert not any("{" in text for text, _ in fixed)
    assert (menu.prompts.hot_topics["zh"], "zh") not in fixed
    assert all(language in menu.languages for _, language in fixed)


def test_a_small_valid_menu() -> None:
    menu = parse_menu(menu_text({"main": menu_node({"1": "sub"}), "sub": menu_node({"1": "bye"}), "bye": BYE}))
    assert list(menu.nodes) == ["main", "sub", "bye"] and menu.default_language == "zh"


def test_a_key_to_a_missing_node_and_an_unreachable_node() -> None:
    found = problems(menu_text({"main": menu_node({"1": "bye", "2": "nowhere"}), "bye": BYE, "lonely": BYE}))
    assert Problem("main", "按键 2 指向不存在的节点 nowhere") in found
    assert Problem("lonely", "从入口无法到达该节点") in found


def test_a_loop_without_exit_is_refused_even_with_fallbacks() -> None:
    found = problems(menu_text({"main": menu_node({"1": "a"}), "a": menu_node({"1": "b"}),
                                "b": menu_node({"1": "a", "2": "main"}), "bye": BYE}))
    assert [p.node for p in found] == ["main"]
    assert "main、a、b 构成死循环" in found[0].message
    ok = menu_text({"main": menu_node({"1": "a"}), "a": menu_node({"1": "b"}),
                    "b": menu_node({"1": "a", "2": "bye"}), "bye": BYE})
    assert parse_menu(ok).start == "main"  # one way out is enough


def test_a_menu_that_only_leads_into_a_dead_loop() -> None:
    found = problems(menu_text({"main": menu_node({"1": "a"}), "a": menu_node({"1": "b"}), "b": menu_node({"1": "a"}),
                                "bye": BYE}))
    assert [p.node for p in found] == ["a", "main"]
    assert "a、b 构成死循环" in found[0].message and "只能进入死循环" in found[1].message


def test_duplicate_keys_and_nodes_are_reported_with_their_line() -> None:
    text = menu_text({"main": menu_node({"1": "bye"}), "bye": BYE}).replace(
        "      '1': bye\n", "      '1': bye\n      '1': main\n")
    text += "  bye:\n    kind: hangup\n"
    found = problems(text)
    assert any(p.node == "main" and "重复的键 1" in p.message and "keys" in p.message for p in found)
    assert any(p.node == "bye" and "重复的键 bye" in p.message for p in found)


def test_field_problems_each_with_their_node() -> None:
    found = problems(menu_text({
        "main": menu_node({"1": "bill", "*": "bye", "12": "bye"}, timeout=0, retries=9),
        "bill": {"kind": "bill", "prompt": {"zh": "请输入户号"}, "digits": {"min_length": 8, "max_length": 6},
                 "not_found": {"zh": "没有"}, "fallback": "main"},
        "talk": {"kind": "hangup", "prompt": {"zh": "长" * 301}},
        "bye": BYE,
    }))
    by_node: dict[str | None, list[str]] = {}
    for problem in found:
        by_node.setdefault(problem.node, []).append(problem.message)
    assert any(m.startswith("timeout:") for m in by_node["main"])
    assert any(m.startswith("retries:") for m in by_node["main"])
    assert any("min_length 不能大于 max_length" in m for m in by_node["bill"])
    assert any(m.startswith("prompt.zh:") and "300" in m for m in by_node["talk"])


def test_reserved_keys_fallbacks_prompts_and_languages() -> None:
    found = problems(menu_text({
        "main": menu_node({"1": "bill", "*": "bye", "12": "bye"}, fallback="main"),
        "bill": {"kind": "bill", "prompt": {"zh": "请输入户号", "en": "Account number"},
                 "digits": {"min_length": 8, "max_length": 8}, "confirm": {"zh": "确认请按1"},
                 "not_found": {"zh": "没有"}, "fallback": "bye"},
        "en": {"kind": "language", "language": "en", "then": "main"},
        "bye": BYE,
    }))
    messages = {str(p) for p in found}
    assert "main: 按键 * 是保留键(0 转人工、* 重听、# 返回)" in messages
    assert "main: 按键 12 无效,只能是 1–9 中的一个数字" in messages
    assert any(m.startswith("main: fallback 必须指向") for m in messages)
    assert any("confirm 须含 {value}" in m for m in messages)
    found = problems(menu_text({
        "main": menu_node({"1": "bill", "2": "en"}),
        "bill": {"kind": "bill", "prompt": {"zh": "请输入户号", "en": "Account number"},
                 "digits": {"min_length": 8, "max_length": 8}, "confirm": {"zh": "户号{value}"},
                 "not_found": {"zh": "没有"}, "fallback": "bye"},
        "en": {"kind": "language", "language": "en", "then": "main"},
        "bye": BYE,
    }))
    messages = {str(p) for p in found}
    assert "bill: prompt 须有且只有这些语言:zh" in messages
    assert "en: 语言 en 不在 languages 中" in messages


def test_agents_need_an_after_hours_node_and_the_operator_an_agent() -> None:
    nodes = {"main": menu_node({"1": "agent"}), "agent": {"kind": "agent", "prompt": {"zh": "转人工"}, "skill": "热线"},
             "bye": BYE}
    assert any("after_hours" in p.message for p in problems(menu_text(nodes)))
    found = problems(menu_text(nodes, operator="bye", after_hours="agent"))
    assert {p.message.split(" 必须")[0] for p in found} == {"operator", "after_hours"}
    assert parse_menu(menu_text(nodes, operator="agent", after_hours="bye")).operator == "agent"


@pytest.mark.parametrize(("text", "expected"), [
    ("", "菜单为空"),
    ("- a\n- b\n", "菜单须是一个映射"),
    ("nodes: [\n", "YAML 格式错误"),
    ("languages: [zh]\n", "start: Field required"),
    ("a: &x [1, 2]\nb: *x\n", "不能使用 YAML 别名"),
    ("[" * 60000, "YAML 嵌套超过 10 层"),
])
def test_what_is_not_a_menu(text: str, expected: str) -> None:
    assert any(expected in str(p) for p in problems(text))


def test_nodes_that_fail_still_report_keys_to_missing_nodes() -> None:
    found = problems(menu_text({"main": menu_node({"1": "nowhere"}, timeout=99), "bye": BYE}))
    assert Problem("main", "按键 1 指向不存在的节点 nowhere") in found and any(p.node == "main" and "timeout" in
                                                                              p.message for p in found)


def test_unquoted_keys_are_menu_keys() -> None:
    text = menu_text({"main": menu_node({"1": "bye"}), "bye": BYE}).replace("'1': bye", "1: bye")
    assert "1: bye" in text and parse_menu(text).nodes["main"].keys == {"1": "bye"}
