"""The IVR menu as data: parsed from YAML (``channels/voice/ivr.yml`` by default, admins' versions from the
database) and checked as a whole, so that a menu which would trap or lose a caller is never stored.

A menu is a set of named nodes. ``menu`` nodes play a prompt and wait for a key; ``*`` replays, ``#`` goes back
to the previous menu and ``0`` reaches the operator from anywhere (these three are reserved). Self-service
nodes (``bill``, ``work_order``, ``application``: a number typed on the keypad; ``outage``: the caller's
district) end in a lookup the runtime performs. ``voicemail``, ``agent`` and ``hangup`` end the walk;
``language`` switches the prompts and goes on. Every prompt is given in each of the menu's languages.

:func:`parse_menu` raises :class:`MenuInvalid` with *every* problem found, each with the node it belongs to:
YAML errors, duplicate keys, bad fields (prompt length, timeouts, retries), keys to missing nodes, nodes no
caller can reach and loops of menus from which no choice leads to self-service, voicemail, a person or a
hang-up (the retry fallback does not count as a way out: it is what happens to a caller who gives up).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError, model_validator

from channels.voice.speech import LANGUAGES, Language

BUILT_IN_PROMPTS: dict[str, dict[str, str]] = {
    "queue_position": {
        "zh": "您前面还有{ahead}位来电,预计等待{minutes}分钟,请不要挂机。",
        "en": "There are {ahead} callers ahead of you. The expected wait is {minutes} minutes. Please hold."},
    "survey": {
        "zh": "请您对本次服务进行评价:非常满意请按5,满意请按4,一般请按3,不满意请按2,非常不满意请按1。",
        "en": "Please rate our service: press 5 for very satisfied, down to 1 for very dissatisfied."},
    "survey_thanks": {"zh": "感谢您的评价,再见。", "en": "Thank you for your rating. Goodbye."},
}

DEFAULT_MENU = Path(__file__).resolve().parent / "ivr.yml"
MAX_PROMPT_CHARS = 300  # about a minute of speech; longer prompts lose the caller
MAX_YAML_CHARS = 60_000
MAX_NODES = 100
MAX_DEPTH = 10  # a menu file nests five levels deep
KEYS = tuple("123456789")  # what a menu may assign; 0, * and # are reserved
OPERATOR_KEY, REPLAY_KEY, BACK_KEY = "0", "*", "#"
SELF_SERVICE_KINDS = ("bill", "work_order", "outage", "application")
TERMINAL_KINDS = (*SELF_SERVICE_KINDS, "voicemail", "agent", "hangup")  # a caller's way out of the menus
NO_EXIT = "任何按键都无法到达自助查询、留言、人工或挂机"
NODE_NAME = r"^[a-z][a-z0-9_]{0,31}$"

PromptText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_PROMPT_CHARS)]
Prompt = dict[Language, PromptText]
NodeName = Annotated[str, StringConstraints(pattern=NODE_NAME)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MenuNode(_Strict):
    kind: Literal["menu"]
    prompt: Prompt
    closed_prompt: Prompt | None = None  # after hours or with nobody on duty (no "0 for a person")
    keys: dict[str, NodeName] = Field(min_length=1)
    timeout: int = Field(6, ge=1, le=30)  # seconds to wait for a key
    retries: int = Field(2, ge=0, le=5)  # invalid keys or silences asked again before the fallback
    fallback: NodeName


class Digits(_Strict):
    min_length: int = Field(ge=1, le=20)
    max_length: int = Field(ge=1, le=20)
    terminator: Literal["#"] = "#"

    @model_validator(mode="after")
    def _ordered(self) -> Digits:
        if self.min_length > self.max_length:
            raise ValueError("min_length 不能大于 max_length")
        return self


class SelfServiceNode(_Strict):
    kind: Literal["bill", "work_order", "outage", "application"]
    prompt: Prompt | None = None  # asks for the number; for an outage, says what is coming
    digits: Digits | None = None  # none for outage notices: the caller's district is used
    confirm: Prompt | None = None  # read-back of the number, with {value}: 1 confirms, 2 re-enters
    invalid: Prompt | None = None  # a number of the wrong length
    not_found: Prompt
    timeout: int = Field(10, ge=1, le=30)
    retries: int = Field(2, ge=0, le=5)
    fallback: NodeName
    then: NodeName | None = None  # after the answer; by default back to the menu the caller came from

    @model_validator(mode="after")
    def _input(self) -> SelfServiceNode:
        if self.kind == "outage":
            if self.digits is not None or self.confirm is not None:
                raise ValueError("停水公告按来电区域查询,不接收按键输入(去掉 digits 和 confirm)")
        else:
            if self.digits is None or self.prompt is None:
                raise ValueError(f"{self.kind} 需要 prompt 和 digits")
            if self.kind == "bill" and self.confirm is None:
                raise ValueError("查询水费须复述户号并确认(confirm)")
        if self.confirm is not None and any("{value}" not in text for text in self.confirm.values()):
            raise ValueError("confirm 须含 {value}(复述的号码)")
        return self


class VoicemailNode(_Strict):
    kind: Literal["voicemail"]
    prompt: Prompt  # before the beep
    thanks: Prompt  # after the recording, before hanging up
    category: str = Field(pattern=r"^[a-z][a-z0-9_]{1,31}$")  # the work order's category code
    max_seconds: int = Field(120, ge=10, le=600)


class AgentNode(_Strict):
    kind: Literal["agent"]
    prompt: Prompt
    skill: str = Field(min_length=1, max_length=100)  # the team whose queue takes the call


class LanguageNode(_Strict):
    kind: Literal["language"]
    language: Language
    prompt: Prompt | None = None
    then: NodeName


class HangupNode(_Strict):
    kind: Literal["hangup"]
    prompt: Prompt | None = None  # the common goodbye when absent


Node = Annotated[MenuNode | SelfServiceNode | VoicemailNode | AgentNode | LanguageNode | HangupNode,
                 Field(discriminator="kind")]
_NODE = TypeAdapter(Node)


class CommonPrompts(_Strict):
    welcome: Prompt
    hot_topics: Prompt  # with {notices}: the current outage notices, before the menu
    closed: Prompt  # after hours: only self-service and voicemail
    blacklisted: Prompt  # the polite reject
    invalid: Prompt  # a key the menu does not know
    no_input: Prompt  # nothing pressed in time
    goodbye: Prompt
    # While a caller waits for an agent ({ahead} calls ahead, {minutes} expected), the survey after the agent
    # hangs up, and its thanks; absent, :data:`BUILT_IN_PROMPTS` are said.
    queue_position: Prompt | None = None
    survey: Prompt | None = None
    survey_thanks: Prompt | None = None

    def text(self, name: str, language: Language) -> str:
        """The prompt ``name`` in ``language``: the menu's own, else the built-in one."""
        prompt = getattr(self, name)
        return prompt[language] if prompt is not None else BUILT_IN_PROMPTS[name][language]


class _MenuFile(_Strict):
    languages: list[Language] = Field(min_length=1, max_length=len(LANGUAGES))
    start: NodeName
    operator: NodeName | None = None  # the agent node 0 reaches
    after_hours: NodeName | None = None  # where requests for a person go when nobody can answer
    hot_topics_max: int = Field(3, ge=0, le=10)
    prompts: CommonPrompts
    nodes: dict[str, dict[str, Any]] = Field(min_length=1, max_length=MAX_NODES)

    @model_validator(mode="after")
    def _unique_languages(self) -> _MenuFile:
        if len(set(self.languages)) != len(self.languages):
            raise ValueError("languages 中有重复的语言")
        return self


AnyNode = MenuNode | SelfServiceNode | VoicemailNode | AgentNode | LanguageNode | HangupNode


@dataclass(frozen=True, slots=True)
class Problem:
    node: str | None  # None: the menu as a whole
    message: str

    def __str__(self) -> str:
        return f"{self.node}: {self.message}" if self.node else self.message


class MenuInvalid(ValueError):
    """Every problem of a menu; nothing of it may be stored or played."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class IvrMenu:
    languages: tuple[Language, ...]
    start: str
    operator: str | None
    after_hours: str | None
    hot_topics_max: int
    prompts: CommonPrompts
    nodes: dict[str, AnyNode]

    @property
    def default_language(self) -> Language:
        return self.languages[0]

    def fixed_prompts(self) -> dict[tuple[str, Language], list[str]]:
        """Every prompt the menu says word for word, in each language, with where it is said (``welcome``,
        ``main.prompt``): what can be rendered before the first call or replaced by a recording (a prompt with
        ``{value}`` or ``{notices}`` is only known during a call)."""
        found: dict[tuple[str, Language], list[str]] = {}
        models: list[tuple[str | None, BaseModel]] = [(None, self.prompts), *self.nodes.items()]
        for name, model in models:
            for field, value in model.model_dump().items():
                if isinstance(value, dict) and value and set(value) <= set(self.languages):
                    for language, text in value.items():
                        if isinstance(text, str) and "{" not in text:
                            found.setdefault((text, language), []).append(f"{name}.{field}" if name else field)
        return found

    def tree(self) -> dict[str, Any]:
        """The parsed menu as JSON, for the admin page's tree view."""
        return {
            "languages": list(self.languages), "start": self.start, "operator": self.operator,
            "after_hours": self.after_hours, "hot_topics_max": self.hot_topics_max,
            "prompts": self.prompts.model_dump(mode="json"),
            "nodes": {name: node.model_dump(mode="json", exclude_none=True) for name, node in self.nodes.items()},
        }


def _pydantic_problems(exc: ValidationError, node: str | None, skip: int = 0) -> list[Problem]:
    """One problem per error; ``skip`` drops the discriminator's tag ("menu", "bill", …) that pydantic puts
    first in a node's error location."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"][skip:])
        message = error["msg"].removeprefix("Value error, ")
        problems.append(Problem(node, f"{where}: {message}" if where else message))
    return problems


def _duplicate_keys(root: yaml.Node | None) -> list[Problem]:
    """Keys given twice in one mapping (YAML keeps the last silently): a menu key, a node, a prompt."""
    problems: list[Problem] = []

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                if key in seen:
                    # Inside a node: the problem is the node's (a node given twice: that node's), and the
                    # place is named from the node on.
                    in_nodes = path[:1] == ("nodes",)
                    owner = (path[1] if len(path) > 1 else key) if in_nodes else None
                    where = ".".join(path[2:] if in_nodes else path)
                    line = key_node.start_mark.line + 1
                    problems.append(Problem(owner, f"第 {line} 行:{where + ' 中' if where else ''}重复的键 {key}"))
                seen.add(key)
                walk(value_node, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*path, str(index)))

    if root is not None:
        walk(root, ())
    return problems


def _read_yaml(text: str) -> tuple[Any, list[Problem]]:
    if len(text) > MAX_YAML_CHARS:
        return None, [Problem(None, f"菜单不能超过 {MAX_YAML_CHARS} 个字符")]
    try:
        depth = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                # An alias repeats a part of the menu; a few nested ones repeat it billions of times.
                return None, [Problem(None, "菜单中不能使用 YAML 别名(*name),请直接写出内容")]
            depth += isinstance(event, yaml.CollectionStartEvent) - isinstance(event, yaml.CollectionEndEvent)
            if depth > MAX_DEPTH:  # checked while reading: PyYAML slows down quadratically with the depth
                return None, [Problem(None, f"YAML 嵌套超过 {MAX_DEPTH} 层")]
        problems = _duplicate_keys(yaml.compose(text, Loader=yaml.SafeLoader))
        return yaml.safe_load(text), problems
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"第 {mark.line + 1} 行:" if mark is not None else ""
        return None, [Problem(None, f"YAML 格式错误:{where}{getattr(exc, 'problem', None) or exc}")]


def _prompts_of(node: AnyNode | CommonPrompts) -> list[tuple[str, Prompt]]:
    return [(name, value) for name, value in node if isinstance(value, dict) and name != "keys"]


def _choices(node: AnyNode) -> list[str]:
    """Where a caller can go from ``node`` by choice (keys, or what follows a switch or an answer)."""
    if isinstance(node, MenuNode):
        return list(node.keys.values())
    if isinstance(node, LanguageNode | SelfServiceNode) and node.then:
        return [node.then]
    return []


def _edges(node: AnyNode) -> list[str]:
    fallback = [node.fallback] if isinstance(node, MenuNode | SelfServiceNode) else []
    return _choices(node) + fallback


def _cycles(names: set[str], nodes: dict[str, AnyNode]) -> list[list[str]]:
    """Strongly connected groups of ``names`` that form a loop (Tarjan), each in menu order."""
    order = {name: i for i, name in enumerate(nodes)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(name: str) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        for target in _choices(nodes[name]):
            if target not in names:
                continue
            if target not in index:
                visit(target)
                low[name] = min(low[name], low[target])
            elif target in stack:
                low[name] = min(low[name], index[target])
        if low[name] == index[name]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == name:
                    break
            if len(group) > 1 or name in _choices(nodes[name]):
                groups.append(sorted(group, key=order.__getitem__))

    for name in sorted(names, key=order.__getitem__):
        if name not in index:
            visit(name)
    return groups


def _graph_problems(menu: _MenuFile, nodes: dict[str, AnyNode], failed: set[str]) -> list[Problem]:
    """References, kinds, languages, reachability and exits; ``failed``: nodes that did not parse."""
    problems: list[Problem] = []
    known = set(nodes) | failed

    def target(owner: str | None, label: str, name: str | None, kinds: tuple[str, ...] | None = None) -> None:
        if name is None:
            return
        if name not in known:
            problems.append(Problem(owner, f"{label} 指向不存在的节点 {name}"))
        elif kinds and name in nodes and nodes[name].kind not in kinds:
            problems.append(Problem(owner, f"{label} 必须指向{'、'.join(kinds)}类节点,{name} 是 {nodes[name].kind}"))

    target(None, "start", menu.start, ("menu", "language"))
    target(None, "operator", menu.operator, ("agent",))
    target(None, "after_hours", menu.after_hours, ("voicemail", "hangup"))
    if menu.after_hours is None and (menu.operator or any(n.kind == "agent" for n in nodes.values())):
        problems.append(Problem(None, "有人工节点时须设置 after_hours(下班或无人值守时的留言或挂机节点)"))
    languages = set(menu.languages)
    for field, prompt in _prompts_of(menu.prompts):
        if set(prompt) != languages:
            problems.append(Problem(None, f"prompts.{field} 须有且只有这些语言:{'、'.join(menu.languages)}"))
    if any("{notices}" not in text for text in menu.prompts.hot_topics.values()):
        problems.append(Problem(None, "prompts.hot_topics 须含 {notices}"))
    for text in (menu.prompts.queue_position or {}).values():
        if set(re.findall(r"{([^{}]*)}", text)) - {"ahead", "minutes"} or text.count("{") != text.count("}"):
            problems.append(Problem(None, "prompts.queue_position 只能用 {ahead}(前面的来电数)和 {minutes}(预计分钟)"))
    for name, node in nodes.items():
        for field, prompt in _prompts_of(node):
            if set(prompt) != languages:
                problems.append(Problem(name, f"{field} 须有且只有这些语言:{'、'.join(menu.languages)}"))
        if isinstance(node, MenuNode):
            for key, goes in node.keys.items():
                if key not in KEYS:
                    reserved = key in (OPERATOR_KEY, REPLAY_KEY, BACK_KEY)
                    problems.append(Problem(name, f"按键 {key} " + (
                        "是保留键(0 转人工、* 重听、# 返回)" if reserved else "无效,只能是 1–9 中的一个数字")))
                target(name, f"按键 {key}", goes)
        if isinstance(node, MenuNode | SelfServiceNode):
            target(name, "fallback", node.fallback, ("voicemail", "agent", "hangup"))
        if isinstance(node, LanguageNode | SelfServiceNode):
            target(name, "then", node.then, ("menu", "language") if isinstance(node, SelfServiceNode) else None)
        if isinstance(node, LanguageNode) and node.language not in languages:
            problems.append(Problem(name, f"语言 {node.language} 不在 languages 中"))

    reachable: set[str] = set()
    pending = [n for n in (menu.start, menu.operator, menu.after_hours) if n in nodes]
    while pending:
        name = pending.pop()
        if name in reachable:
            continue
        reachable.add(name)
        pending.extend(t for t in _edges(nodes[name]) if t in nodes and t not in reachable)
    if menu.start in nodes:
        problems.extend(Problem(name, "从入口无法到达该节点") for name in nodes if name not in reachable)

    exits = {name for name, node in nodes.items() if node.kind in TERMINAL_KINDS} | failed
    changed = True
    while changed:
        changed = False
        for name, node in nodes.items():
            if name not in exits and any(t in exits or t not in known for t in _choices(node)):
                exits.add(name)
                changed = True
    trapped = set(nodes) - exits
    looped: set[str] = set()
    for group in _cycles(trapped, nodes):
        looped.update(group)
        problems.append(Problem(group[0], f"节点 {'、'.join(group)} 构成死循环:{NO_EXIT}"))
    problems.extend(Problem(name, f"只能进入死循环,{NO_EXIT}")
                    for name in nodes if name in trapped and name not in looped)
    return problems


@functools.lru_cache(maxsize=16)
def parse_menu(text: str) -> IvrMenu:
    """The menu in ``text``, or :class:`MenuInvalid` with every problem found. Cached by text: the runtime
    parses the current version for each call."""
    raw, problems = _read_yaml(text)
    if raw is None and not problems:
        problems = [Problem(None, "菜单为空")]
    if problems and raw is None:
        raise MenuInvalid(problems)
    if not isinstance(raw, dict):
        raise MenuInvalid([*problems, Problem(None, "菜单须是一个映射(languages、start、prompts、nodes 等)")])
    try:
        menu = _MenuFile.model_validate(raw)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc, None))
        raw_nodes = raw.get("nodes")
        if isinstance(raw_nodes, dict):  # still report what is wrong inside the nodes
            problems.extend(p for name, body in raw_nodes.items() for p in _node_problems(str(name), body)[1])
        raise MenuInvalid(problems) from None
    nodes: dict[str, AnyNode] = {}
    failed: set[str] = set()
    for name, body in menu.nodes.items():
        node, node_problems = _node_problems(name, body)
        problems.extend(node_problems)
        if node is None:
            failed.add(name)
            problems.extend(_loose_references(name, body, set(menu.nodes)))
        else:
            nodes[name] = node
    problems.extend(_graph_problems(menu, nodes, failed))
    if problems:
        raise MenuInvalid(problems)
    return IvrMenu(tuple(menu.languages), menu.start, menu.operator, menu.after_hours, menu.hot_topics_max,
                   menu.prompts, nodes)


def _node_problems(name: str, body: Any) -> tuple[AnyNode | None, list[Problem]]:
    problems = []
    if isinstance(body, dict) and isinstance(body.get("keys"), dict):  # `1: bill` is as good as `"1": bill`
        body = {**body, "keys": {str(key): value for key, value in body["keys"].items()}}
    if not re.fullmatch(NODE_NAME, name):
        problems.append(Problem(name, "节点名只能由小写字母、数字和下划线组成,以字母开头,最长 32 个字符"))
    try:
        node = _NODE.validate_python(body)
    except ValidationError as exc:
        return None, [*problems, *_pydantic_problems(exc, name, skip=1)]
    return (None if problems else node), problems


def _loose_references(name: str, body: Any, known: set[str]) -> list[Problem]:
    """Keys to missing nodes in a node that did not parse, so that one round of fixes is enough."""
    if not isinstance(body, dict):
        return []
    keys = body.get("keys")
    targets = [(f"按键 {key}", goes) for key, goes in keys.items()] if isinstance(keys, dict) else []
    targets += [(field, body.get(field)) for field in ("fallback", "then")]
    return [Problem(name, f"{label} 指向不存在的节点 {goes}")
            for label, goes in targets if isinstance(goes, str) and goes not in known]
