"""The resident the customer 360 tests look at: known on several channels, with a work order and two accounts."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp

from router.billing import DemoBilling
from router.models import ContactIdentity, utcnow
from tests.support.actors import Resident, Staff

ACCOUNT_OF_ORDER = "30005678"  # named in the resident's billing dispute (the demo billing system knows it)


async def known_resident(running_hub: Any, http: aiohttp.ClientSession, agent: Staff) -> dict[str, Any]:
    """A resident who wrote in the web chat (now served by ``agent``), is also known by an SMS number and an
    account number (both new on every call: an identity belongs to one resident) and has a billing dispute on
    file. The caller closes ``resident``."""
    resident = await Resident(http, running_hub.url).connect()
    said = await resident.says(f"这个月水费怎么这么高?({uuid.uuid4().hex[:6]})")
    conversation_id = said["conversation_id"]
    contact_id = (await agent.claims(conversation_id))["contact"]["id"]
    order = await agent.call("POST", "/api/workorders", {
        "category": "billing_dispute", "title": "水费争议", "description": "居民认为本月水费偏高",
        "custom_fields": {"account_number": ACCOUNT_OF_ORDER}, "conversation_id": conversation_id}, expect=201)
    phone = f"+86138{uuid.uuid4().int % 10**8:08d}"
    account = await _known_account()
    async with running_hub.hub.sessions.begin() as session:
        session.add_all([
            ContactIdentity(contact_id=contact_id, channel="sms", external_id=phone, created_at=utcnow()),
            ContactIdentity(contact_id=contact_id, channel="account", external_id=account, created_at=utcnow()),
        ])
    return {"resident": resident, "contact_id": contact_id, "conversation_id": conversation_id, "order": order,
            "phone": phone, "account": account}


async def _known_account() -> str:
    """A fresh account number that the demo billing system has bills for."""
    while True:
        number = f"3{uuid.uuid4().int % 10**7:07d}"
        if await DemoBilling().account(number) is not None:
            return number
