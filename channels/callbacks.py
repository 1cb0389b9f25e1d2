"""请给我回电 from a resident on any channel (the web chat widget, the official account's page): the request goes
on the callback list (router/callbacks.py) and an event into their conversation, where the agents see it."""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from channels.base import InboundMessage, RouterPort
from router.callbacks import checked_ask
from router.logs import get_logger, mask_phone
from router.models import utcnow

log = get_logger(__name__)


class CallbackBody(BaseModel):
    """A number, the earliest time (none: as soon as possible), a note."""

    model_config = ConfigDict(extra="forbid")
    client_id: str = Field(pattern=r"^[A-Za-z0-9\-]{8,64}$")  # the same for the retries of one request
    phone: str = Field(min_length=3, max_length=40)
    preferred_after: AwareDatetime | None = None
    note: str | None = Field(None, max_length=200)


async def ask_to_be_called_back(router: RouterPort, channel: str, external_id: str,
                                body: CallbackBody) -> dict[str, Any]:
    """Store the request of the resident ``external_id`` of ``channel``; what the resident is shown (the request,
    the number masked, and the event in their conversation). Raises ``Invalid`` for a number that is not a
    person's phone or a time out of range."""
    ask = checked_ask(body.phone, body.preferred_after, body.note, utcnow())
    when = ("尽快" if ask.preferred_after is None
            else ask.preferred_after.astimezone(router.settings.zone).strftime("%m月%d日 %H:%M 以后"))
    result = await router.ingest(InboundMessage(
        channel=channel, external_id=external_id, channel_message_id=f"callback-{body.client_id}",
        type="event", text=f"请给我回电:{mask_phone(ask.phone)},{when}" + (f"({ask.note})" if ask.note else ""),
        payload={"callback": {"phone": mask_phone(ask.phone), "when": when}}))
    stored = await router.callbacks.ask(channel, external_id, result.conversation_id, ask)
    log.info("callback asked for", channel=channel, callback_id=stored.id)
    return {"callback": {"id": stored.id, "phone": mask_phone(ask.phone), "when": when, "state": stored.state},
            "message": result.message}
