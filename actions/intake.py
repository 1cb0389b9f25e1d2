"""The repair intake as residents really answer it: one step of the form per message, decided here.

Rasa's form only asks and remembers; what a message means for the question being asked is decided by
:func:`answer`, a plain function of the report so far and the message (tested without Rasa). The order
matters: an answer that fits the question fills it before anything else is considered, because "户内" or
"单户" may look like an FAQ question to the NLU; then a change of mind (cancel), a request for a person, an
FAQ question (answered, the question asked again), and only then the answer is unusable. Two unusable
answers to one question never lead to a third identical question: a choice falls back to "其他", anything
else offers a person, and a third hands the resident over with what was collected.

Details given early (an address, a phone number, the scope in the first message) are found by
:func:`details_in` and never asked again. Before filing, the report is read back for confirmation; the
answer may correct it ("地址错了,是188号").
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from actions.common import LANDLINE, MOBILE, phone_in

OTHER = "其他"


@dataclass(frozen=True, slots=True)
class Choice:
    name: str
    synonyms: tuple[str, ...] = ()  # words that mean it when the question is asked
    said_early: tuple[str, ...] = ()  # words that mean it even in the first message, before it is asked


@dataclass(frozen=True, slots=True)
class Problem:
    category: str  # the work-order category
    name: str
    field: str | None  # the category's required custom field, chosen from ``choices``
    field_name: str
    question: str
    choices: tuple[Choice, ...] = ()

    def choice_names(self) -> list[str]:
        return [choice.name for choice in self.choices]


PROBLEMS: dict[str, Problem] = {
    "report_leak": Problem("leak_repair", "漏水报修", "leak_location", "漏水位置", "请问漏水的位置在哪里?", (
        Choice("路面", ("马路", "路上", "街上", "路边", "人行道", "大街", "路中间", "路口", "公路", "街边"),
               ("马路上", "路面上", "人行道上", "路中间", "大马路")),
        Choice("小区内", ("小区里", "小区", "院子", "楼下", "绿化带", "草坪", "花坛", "楼道外", "园区", "楼前", "楼后"),
               ("小区里", "小区内", "院子里", "绿化带")),
        Choice("户内", ("家里", "屋里", "屋内", "室内", "家中", "我家", "自己家", "厨房", "卫生间", "洗手间", "厕所",
                        "阳台", "浴室", "水龙头", "屋企", "屋企入面", "房间"),
               ("家里", "屋里", "厨房", "卫生间", "洗手间", "屋企")),
        Choice("水表井", ("水表", "表井", "水表箱", "表箱", "水表那", "水表处", "水表后", "水表前"),
               ("水表井", "表井", "水表箱")),
        Choice("消防栓", ("消火栓", "消防龙头", "消防", "栓"), ("消防栓", "消火栓")),
        Choice(OTHER, ("别的", "其它", "不知道", "不清楚", "不确定", "说不清")),
    )),
    "report_no_water": Problem("no_water", "停水报修", "scope", "停水范围", "请问停水的范围是?", (
        Choice("单户", ("就我家", "只有我家", "只是我家", "我一家", "我们一家", "一户", "自己家", "本户", "我家",
                        "我屋企", "净系我屋企", "就我一户", "只有我"),
               ("就我家", "只有我家", "只是我家", "就我一家", "只有我们家")),
        Choice("整栋", ("整栋楼", "整幢", "整个楼", "全楼", "这栋楼", "一栋楼", "整栋", "整个单元", "单元", "整条楼",
                        "成栋楼", "楼里都", "全栋", "整座楼"),
               ("整栋楼", "整幢楼", "整个楼", "全楼", "整个单元", "成栋楼", "全栋")),
        Choice("小区", ("整个小区", "全小区", "小区都", "小区里都", "整个园区", "小区全部", "成个小区"),
               ("整个小区", "全小区", "小区都", "成个小区")),
        Choice("片区", ("一片", "整片", "附近都", "周边", "周围都", "整条街", "好几个小区", "这一带", "一大片", "附近",
                        "成片"),
               ("整片", "附近都", "周边都", "整条街", "这一带", "好几个小区", "一大片")),
        Choice(OTHER, ("别的", "其它", "不知道", "不清楚", "说不清")),
    )),
    "report_low_pressure": Problem("low_pressure", "水压低", None, "", ""),
    "report_water_quality": Problem("water_quality", "水质问题", "symptom", "水质情况", "请问水是什么情况?", (
        Choice("浑浊", ("浑", "混浊", "混", "发白", "白色", "不清", "有泡", "奶白", "白浊"), ("浑浊", "混浊", "发白")),
        Choice("发黄", ("黄", "黄色", "发红", "红色", "锈", "铁锈", "黄水", "红水", "啡色", "咖啡色"),
               ("发黄", "黄水", "发红", "铁锈")),
        Choice("异味", ("臭", "味道", "怪味", "气味", "漂白粉", "消毒水", "腥", "难闻", "有味", "味"),
               ("异味", "臭味", "怪味", "漂白粉味", "消毒水味")),
        Choice("有杂质", ("杂质", "沙", "沙子", "虫", "颗粒", "渣", "脏东西", "沉淀", "絮", "黑点"),
               ("杂质", "沙子", "虫子", "颗粒", "沉淀")),
        Choice(OTHER, ("别的", "其它", "不知道", "不清楚", "说不清")),
    )),
}
BY_CATEGORY = {problem.category: problem for problem in PROBLEMS.values()}

# Form slots in the order they are asked; ``detail`` only for categories with a required field.
SLOTS = ("detail", "address", "phone", "description", "confirmed")
ADDRESS_MARKERS = tuple("路街道巷弄号栋幢楼单元室村镇区苑园城庭府湾寓厦")
# An address inside a longer sentence: a road or a housing estate and a number (or a building) after it.
ADDRESS_IN_TEXT = re.compile(
    r"([\u4e00-\u9fa5A-Za-z0-9]{1,12}?(?:路|街|道|大道|巷|弄|村|小区|花园|新村|苑|公寓|大厦|广场|城)"
    r"(?:[东西南北中]段)?\s*[0-9一二三四五六七八九十]{1,5}\s*(?:号|栋|幢|弄|号楼)"
    r"(?:\s*[0-9]{1,4}\s*(?:栋|幢|号楼|单元|室|楼|层|号)){0,4})")
ADDRESS_LEADS = re.compile(r"在|是|住|于|到|:")
CANCEL_WORDS = ("算了", "不报了", "不用报", "不报修", "取消", "不用了", "不需要了", "不修了", "不弄了", "不要了",
                "先不报", "不想报", "撤销", "冇事了", "冇嘢了", "唔使", "唔洗", "唔报", "无需报修",
                "不办了")
PERSON_WORDS = ("人工", "真人", "客服人员", "接线员", "话务员", "转接", "找个人", "找人工", "坐席")
AFFIRM_WORDS = ("确认", "确定", "是的", "是", "对", "对的", "没错", "没问题", "可以", "好", "好的", "提交", "行", "嗯",
                "ok", "冇问题", "系", "啱", "无误", "正确", "yes", "对了")
DENY_WORDS = ("不对", "不是", "错了", "有误", "唔啱", "唔系", "不正确")
QUESTION_MARKS = ("?", "吗", "么", "怎么", "怎样", "多少", "什么", "哪", "几", "谁", "为啥", "为什么", "如何", "是否",
                  "咩", "点解")
SEPARATORS = " ,,。;;!!、"
CORRECTION_LEAD = re.compile(r"(?:改成|改为|换成|应该是|应为|是|为|到)\s*(.+)$")
HOUSE_NUMBER = re.compile(r"[0-9]+\s*号")
FAQ_CONFIDENCE = 0.5
INTENT_CONFIDENCE = 0.6
MAX_UNUSABLE = 2  # answers to one question that could not be used, before the bot changes tack


@dataclass(frozen=True, slots=True)
class Heard:
    """One resident message, as the form sees it."""

    text: str  # as the bot got it (normalised by the hub)
    intent: str | None = None
    confidence: float = 0.0
    faq: str | None = None  # the FAQ answer's response name (utter_faq/…) when the message is an FAQ question
    faq_confidence: float = 0.0
    choice: str | None = None  # from a button's structured payload: /inform{"choice": "户内"}
    kind: str = "text"  # text, image, location, …
    message_id: int | None = None
    location: dict[str, Any] | None = None  # a shared position: label, lat, lng


@dataclass(slots=True)
class Step:
    """What one message does to the report: slots to set, what to say, what to ask next, or the end."""

    slots: dict[str, Any] = field(default_factory=dict)
    say: list[str] = field(default_factory=list)
    faq: str | None = None  # answer this FAQ response first
    ask: str | None = None  # the slot to ask next (None: the form's next empty slot)
    hinted: bool = False  # ``say`` already asks again, in other words: the question is not repeated
    end: str | None = None  # "cancelled" or "handoff"


def compact(text: str) -> str:
    """The text without spaces and punctuation, lower case: what choice words are matched against."""
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(c for c in text if not (c.isspace() or unicodedata.category(c).startswith(("P", "S"))))


def _negated(text: str, start: int) -> bool:
    return text[max(0, start - 2):start] in ("不是", "并非", "唔系") or text[max(0, start - 1):start] == "非"


def choice_in(problem: Problem, text: str, *, asked: bool) -> str | None:
    """The choice a resident means: the offered name, a synonym (only when ``asked``, except the unambiguous
    ones in ``said_early``); the longest word wins, a negated one ("不是路面") never does, and a message not
    answering the question names one choice only or none."""
    words = compact(text)
    if not words:
        return None
    found: dict[str, int] = {}  # choice → its longest word in the text
    for choice in problem.choices:
        for word in (choice.name, *(choice.synonyms if asked else ()), *choice.said_early):
            at = words.find(compact(word))
            while at >= 0 and _negated(words, at):
                at = words.find(compact(word), at + 1)
            if at >= 0:
                found[choice.name] = max(found.get(choice.name, 0), len(word))
    if not found or (not asked and len(found) > 1):  # said in passing, two choices are a guess
        return None
    return max(found, key=lambda name: found[name])


def without_phones(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    return LANDLINE.sub(" ", MOBILE.sub(" ", text))


def looks_like_address(text: str) -> bool:
    text = text.strip()
    return len(text) >= 4 and (any(c.isdigit() for c in text) or any(m in text for m in ADDRESS_MARKERS))


def address_of(text: str, *, whole: bool) -> str | None:
    """The address in ``text``: the whole answer when it was asked for (``whole``) and looks like one, else an
    address pattern found in a sentence ("前进中路188号整栋楼没水了" → 前进中路188号)."""
    text = without_phones(text)
    text = re.sub(r"^(?:我家|我的|地址|住址|位置|在|是|就在)*[是在::]?\s*", "", text.strip())
    text = re.sub(r"[,,。;;!!\s]*(?:电话|手机|联系方式|联系电话)[是::]?\s*$", "", text).strip(SEPARATORS)
    if whole and looks_like_address(text):
        return text[:300]
    found = ADDRESS_IN_TEXT.search(text)
    if found is None:
        return None
    address = found.group(1).strip()
    # The pattern starts as early as it can ("我家在前进中路188号"): drop what comes before the place.
    for lead in ADDRESS_LEADS.finditer(address):
        rest = address[lead.end():]
        if ADDRESS_IN_TEXT.fullmatch(rest):
            address = rest
    return address[:300]


def details_in(problem: Problem, text: str) -> dict[str, Any]:
    """Slots a first message fills already: an address, a phone number, an unambiguous choice."""
    found: dict[str, Any] = {}
    phone = phone_in(text)
    if phone:
        found["phone"] = phone
    address = address_of(text, whole=False)
    if address:
        found["address"] = address
    if problem.field:  # the place's own name is no answer ("幸福小区8栋" does not say the whole 小区)
        chosen = choice_in(problem, text.replace(address or "\0", " "), asked=False)
        if chosen is not None and chosen != OTHER:
            found["detail"] = chosen
    return found


def summary(problem: Problem, slots: dict[str, Any]) -> str:
    lines = [f"类别:{problem.name}"]
    if problem.field and slots.get("detail"):
        lines.append(f"{problem.field_name}:{slots['detail']}")
    lines.append(f"地址:{slots.get('address') or '未提供'}")
    lines.append(f"电话:{slots.get('phone') or '未提供'}")
    if slots.get("description"):
        lines.append(f"情况:{str(slots['description'])[:60]}")
    if slots.get("photo_message_ids"):
        lines.append(f"照片:{len(slots['photo_message_ids'])} 张")
    return "\n".join(lines)


def _contains(text: str, words: tuple[str, ...]) -> bool:
    squeezed = compact(text)
    return any(compact(word) in squeezed for word in words)


def _choice_words(problem: Problem) -> set[str]:
    return {compact(word) for choice in problem.choices for word in (choice.name, *choice.synonyms)}


def _is_question(text: str) -> bool:
    return any(mark in text for mark in QUESTION_MARKS)


def _wants_to_cancel(heard: Heard) -> bool:
    # Words, not the NLU's "deny": "不知道" is no reason to drop a report.
    return _contains(heard.text, CANCEL_WORDS)


def _wants_a_person(heard: Heard) -> bool:
    return _contains(heard.text, PERSON_WORDS) or (
        heard.intent == "request_human" and heard.confidence >= INTENT_CONFIDENCE)


def _is_faq(heard: Heard) -> bool:
    return heard.intent == "faq" and heard.faq is not None and heard.faq_confidence >= FAQ_CONFIDENCE


def _fill(problem: Problem, asking: str, heard: Heard, slots: dict[str, Any]) -> dict[str, Any]:
    """The slots an answer to ``asking`` fills ({} when it does not fit)."""
    text = heard.text
    if asking == "detail":
        if heard.choice in problem.choice_names():
            return {"detail": heard.choice}
        # A question that happens to hold a choice word ("家里水管漏水谁负责维修?") is a question.
        if _is_faq(heard) and _is_question(text) and compact(text) not in _choice_words(problem):
            return {}
        chosen = choice_in(problem, text, asked=True)
        return {"detail": chosen} if chosen else {}
    if asking == "address":
        address = address_of(text, whole=True)
        found: dict[str, Any] = {"address": address} if address else {}
        phone = phone_in(text)
        if found and phone and not slots.get("phone"):
            found["phone"] = phone
        return found
    if asking == "phone":
        phone = phone_in(text)
        return {"phone": phone} if phone else {}
    if asking == "description":
        words = compact(text)
        if len(words) < 2 or (_is_faq(heard) and _is_question(text)):
            return {}
        return {"description": text.strip()[:2000]}
    return {}


def _correction(problem: Problem, heard: Heard, slots: dict[str, Any]) -> dict[str, Any]:
    """What a reply to the read-back changes: "地址错了,是188号", "电话改成139…", "是户内不是路面"."""
    text = unicodedata.normalize("NFKC", heard.text).strip()
    changed: dict[str, Any] = {}
    phone = phone_in(text)
    if phone and phone != slots.get("phone"):
        changed["phone"] = phone
    if problem.field:
        chosen = heard.choice if heard.choice in problem.choice_names() else choice_in(problem, text, asked=True)
        if chosen and chosen != slots.get("detail") and not ("地址" in text and not heard.choice):
            changed["detail"] = chosen
    rest = without_phones(text)
    if "地址" in rest or "门牌" in rest or ADDRESS_IN_TEXT.search(rest) or (HOUSE_NUMBER.search(rest) and not phone):
        clause = re.split(r"[,,。;;]", rest)
        tail = next((part for part in reversed(clause) if (part.strip() and any(c.isdigit() for c in part))
                     or looks_like_address(part)), rest)
        lead = CORRECTION_LEAD.search(tail)
        new = (lead.group(1) if lead else re.sub(r"^.*?地址[是为::]?", "", tail)).strip(SEPARATORS)
        old = str(slots.get("address") or "")
        if re.fullmatch(r"[0-9]+\s*号", new) and HOUSE_NUMBER.search(old):
            # Only the house number was wrong: keep the road ("前进中路166号3栋" → 前进中路188号3栋).
            last = list(HOUSE_NUMBER.finditer(old))[-1]
            new = old[:last.start()] + new.replace(" ", "") + old[last.end():]
        if looks_like_address(new) and new != old:
            changed["address"] = new[:300]
    return changed


def answer(problem: Problem, asking: str | None, heard: Heard, slots: dict[str, Any]) -> Step:
    """One step of the repair form: what the resident's message ``heard`` does while ``asking`` is asked.

    ``slots`` are the report so far (detail, address, phone, description, photo_message_ids, misses …).
    """
    step = Step()
    if asking is None:
        return step
    if heard.kind == "image" and heard.message_id is not None:
        photos = [*(slots.get("photo_message_ids") or []), heard.message_id][-5:]
        step.slots["photo_message_ids"] = photos
        if asking == "description":
            step.say.append("照片已收到。请再用一句话描述一下情况。")
        else:
            step.say.append("照片已收到,会附在工单上。")
        step.ask = asking
        return step
    if heard.kind == "location" and heard.location:
        located = heard.location
        label = str(located.get("label") or heard.text or "").strip()
        if label:
            step.slots["address"] = label[:300]
            position = {k: located[k] for k in ("lat", "lng") if isinstance(located.get(k), int | float)}
            step.slots["location"] = position or None
            if asking == "confirmed":
                step.say.append("已更正。")
                step.ask = "confirmed"
            return step
    if asking == "confirmed":
        return _confirm(problem, heard, slots, step)
    # Any text describes the situation: there a change of mind or a request for a person is heard first;
    # elsewhere an answer that fits wins ("人工湖路5号" is an address).
    changes_course = asking == "description" and (_wants_to_cancel(heard) or _wants_a_person(heard))
    filled = {} if changes_course else _fill(problem, asking, heard, slots)
    if filled:
        # An address or a phone number said along with the answer ("户内,前进中路188号") is not asked again.
        passing = details_in(problem, heard.text) if asking != "description" else {}
        step.slots.update({slot: value for slot, value in passing.items()
                           if slot not in filled and slot != "detail" and not slots.get(slot)})
        step.slots.update(filled)
        step.slots["misses"] = None
        return step
    if _wants_to_cancel(heard):
        step.end = "cancelled"
        return step
    return _not_an_answer(problem, asking, heard, slots, step)


def _not_an_answer(problem: Problem, asking: str, heard: Heard, slots: dict[str, Any], step: Step) -> Step:
    """A message that does not answer ``asking``: a request for a person, an FAQ question, or unusable."""
    if _wants_a_person(heard):
        step.end = "handoff"
        return step
    if _is_faq(heard):
        step.faq = heard.faq
        step.ask = asking
        return step
    return _unusable(problem, asking, slots, step)


def _confirm(problem: Problem, heard: Heard, slots: dict[str, Any], step: Step) -> Step:
    choice = heard.choice
    said = compact(heard.text)
    changed = _correction(problem, heard, slots)
    plain_yes = not choice and (said in {compact(w) for w in AFFIRM_WORDS} or (
        said.startswith(("确认", "确定", "提交", "没问题", "是的", "对的")) and not _contains(heard.text, DENY_WORDS)
        and not _contains(heard.text, CANCEL_WORDS)))
    affirmed = heard.intent == "affirm" and heard.confidence >= INTENT_CONFIDENCE and not _contains(heard.text,
                                                                                                     DENY_WORDS)
    if choice == "确认提交" or ((plain_yes or affirmed) and not changed):
        step.slots["confirmed"] = True
        return step
    # A bare "不对" here asks for a correction; only words of giving up cancel.
    if choice == "取消报修" or (_contains(heard.text, CANCEL_WORDS) and not changed):
        step.end = "cancelled"
        return step
    if changed:
        step.slots.update(changed)
        step.slots["misses"] = None
        step.say.append("已更正。")
        step.ask = "confirmed"
        return step
    return _not_an_answer(problem, "confirmed", heard, slots, step)


HINTS = {
    "address": "地址太简短了,请说明路名门牌号或小区楼栋,例如:前进东路 88 号。",
    "phone": "这个号码好像不对,请输入 11 位手机号或带区号的座机(如 0512-57001234)。",
    "description": "请用一句话描述一下现场情况。",
    "confirmed": "请回复“确认”提交;如有信息需要修改,请直接告诉我,例如“地址错了,是188号”;不报了请回复“取消”。",
}


def _unusable(problem: Problem, asking: str, slots: dict[str, Any], step: Step) -> Step:
    misses = dict(slots.get("misses") or {})
    misses[asking] = misses.get(asking, 0) + 1
    step.slots["misses"] = misses
    count = misses[asking]
    if asking == "detail":
        if count >= MAX_UNUSABLE:
            step.slots["detail"] = OTHER
            step.say.append(f"没能确定{problem.field_name},先按“{OTHER}”登记,工作人员会再与您确认。")
            return step
        step.say.append("没能识别您的选择,请点选下面的选项或回复它前面的数字;如需人工客服请回复“人工”。")
        step.ask = asking
        return step
    if count > MAX_UNUSABLE:
        step.end = "handoff"
        return step
    hint = HINTS[asking]
    if count == MAX_UNUSABLE:
        hint += "如需人工客服帮您登记,请回复“人工”。"
    step.say.append(hint)
    step.ask = asking
    step.hinted = True
    return step
