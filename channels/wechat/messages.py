"""WeChat's messages in the hub's terms, both ways: inbound XML (parsed by wechatpy) to
:class:`~channels.base.InboundMessage`, outbound messages to customer-service and template bodies.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any

from wechatpy import events, messages

from channels.base import Attachment, InboundMessage, OutboundMessage, readable_text

CHANNEL = "wechat"
TEXT_MAX_BYTES = 2048  # WeChat's limit on a text message (passive reply and customer-service message), UTF-8
MEDIA_TYPES = {"image": "image", "voice": "voice", "video": "file", "shortvideo": "file"}


def message_key(message: messages.BaseMessage) -> str:
    """What makes a delivery unique: the MsgId, or for events (which have none) sender, time and event."""
    if message.type != "event" and message.id:
        return str(message.id)
    return f"{message.source}:{message.time}:{getattr(message, 'event', message.type)}:{_event_key(message)}"


def _event_key(message: messages.BaseMessage) -> str:
    return str(getattr(message, "key", "") or "")


@dataclass(frozen=True, slots=True)
class MenuButton:
    """A CLICK button: the resident "says" ``text`` when they press it."""

    key: str
    text: str


def inbound_of(message: messages.BaseMessage, *, buttons: dict[str, MenuButton],
               attachment: Attachment | None = None) -> InboundMessage | None:
    """The resident's message, or None for what is not one (events other than a menu click)."""
    common = {"channel": CHANNEL, "external_id": message.source, "channel_message_id": message_key(message)}
    match message:
        case messages.TextMessage():
            return InboundMessage(**common, text=message.content)
        case messages.ImageMessage() | messages.VoiceMessage() | messages.VideoMessage() | messages.ShortVideoMessage():
            kind = MEDIA_TYPES[message.type]
            payload: dict[str, Any] = {"wechat": {"media_id": message.media_id}}
            if attachment is None and isinstance(message, messages.ImageMessage) and message.image:
                # The media could not be fetched: WeChat's picture address still shows it.
                attachment = Attachment(url=message.image, name="微信图片.jpg", size=0, content_type="image/jpeg")
            text = getattr(message, "recognition", None) or None  # voice: WeChat's transcript, when enabled
            return InboundMessage(**common, type=kind, text=text, attachment=attachment, payload=payload)
        case messages.LocationMessage():
            lat, lng = message.location
            return InboundMessage(**common, type="location", text=message.label or None, payload={
                "location": {"lat": float(lat), "lng": float(lng), "label": message.label or ""}})
        case messages.LinkMessage():
            text = "\n".join(part for part in (message.title, message.description, message.url) if part)
            return InboundMessage(**common, text=text, payload={
                "link": {"title": message.title, "description": message.description, "url": message.url}})
        case events.ClickEvent():
            button = buttons.get(message.key)
            if button is None:
                return None
            return InboundMessage(**common, text=button.text, payload={"wechat": {"menu": message.key}})
    return None


def custom_message(message: OutboundMessage, *, media_id: str | None = None) -> dict[str, Any]:
    """The customer-service message body for ``message`` (an image needs its uploaded ``media_id``)."""
    if media_id is not None:
        return {"touser": message.recipient, "msgtype": "image", "image": {"media_id": media_id}}
    return {"touser": message.recipient, "msgtype": "text", "text": {"content": text_of(message)}}


def text_of(message: OutboundMessage) -> str:
    """The text a resident reads on WeChat, within its 2048 bytes (:func:`channels.base.readable_text`)."""
    return readable_text(message, lambda text: len(text.encode()) <= TEXT_MAX_BYTES)


def template_message(message: OutboundMessage, template_id: str, fields: dict[str, str],
                     url: str | None) -> dict[str, Any]:
    """A template message with ``fields`` (template key → text with ``{placeholders}``) filled from the message.

    Placeholders: ``text`` (the message), and for work-order notices ``number``, ``state``, ``action``.
    """
    order = (message.payload or {}).get("work_order") or {}
    values = {"text": text_of(message), "number": order.get("number", ""), "state": order.get("state", ""),
              "action": order.get("action", "")}
    formatter = string.Formatter()
    body: dict[str, Any] = {
        "touser": message.recipient, "template_id": template_id,
        "data": {key: {"value": formatter.vformat(pattern, (), values)[:200]} for key, pattern in fields.items()},
    }
    if url:
        body["url"] = url
    return body
