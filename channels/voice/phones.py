"""Agents' SIP phones in Asterisk, kept equal to the extensions set on the hub's staff accounts.

Asterisk's files hold no agent: docker/asterisk/sorcery.conf lets res_pjsip's endpoints, auths and aors live in
memory beside pjsip.conf, and the hub pushes one set per phone over ARI (push configuration,
``PUT /ari/asterisk/config/dynamic/res_pjsip/<type>/<id>``). Memory is forgotten when Asterisk restarts, so
every phone is pushed again after each ARI connection; between two, an admin's change (an extension set,
changed or removed, an account disabled) is published on :data:`PHONES_TOPIC` and the process connected to
Asterisk pushes or deletes what differs.

A phone's SIP user name is its extension; Asterisk challenges its REGISTER and calls with digest
authentication against ``md5_cred``, MD5 of ``extension:realm:password``, which is all the hub keeps of the
password (SIP digest is MD5 by protocol: RFC 3261, RFC 2617).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable

from channels.base import AgentPhone
from channels.voice.ari import AriClient, AriError
from router.logs import get_logger

log = get_logger(__name__)

PHONES_TOPIC = "voice.phones"  # an admin changed an agent's phone: the connected process syncs Asterisk
AGENT_CONTEXT = "from-agents"  # the dialplan context of what an agent's phone dials (docker/asterisk/extensions.conf)
EXTENSION_PATTERN = r"^[1-9][0-9]{2,5}$"  # 3 to 6 digits: never a caller's full number
CONFIG_CLASS = "res_pjsip"


def md5_cred(extension: str, realm: str, password: str) -> str:
    """The digest Asterisk checks a phone's password against (``auth_type = md5``)."""
    return hashlib.md5(f"{extension}:{realm}:{password}".encode(), usedforsecurity=False).hexdigest()


def sip_objects(phone: AgentPhone, realm: str) -> list[tuple[str, dict[str, str]]]:
    """The auth, aor and endpoint of one phone, in the order Asterisk needs them created. A softphone in the
    inbox speaks SIP over Asterisk's WebSocket (``/ws`` of its HTTP server) and WebRTC media: ICE, DTLS-SRTP
    with a certificate Asterisk makes itself, RTCP multiplexed (``webrtc = yes``)."""
    name = phone.extension
    media = ({"transport": "transport-ws", "webrtc": "yes", "dtls_auto_generate_cert": "yes"} if phone.webrtc
             else {"transport": "transport-udp", "direct_media": "no", "rtp_symmetric": "yes", "force_rport": "yes"})
    return [
        ("auth", {"auth_type": "md5", "username": name, "realm": realm, "md5_cred": phone.md5_cred}),
        # One registration at a time: a phone that registers again (rebooted, moved) replaces the old contact.
        ("aor", {"max_contacts": "1", "remove_existing": "yes", "qualify_frequency": "30"}),
        ("endpoint", {
            **media, "context": AGENT_CONTEXT, "disallow": "all", "allow": "ulaw,alaw", "auth": name, "aors": name,
            "dtmf_mode": "rfc4733", "rewrite_contact": "yes", "callerid": f"坐席 {name} <{name}>",
        }),
    ]


class PhoneBook:
    """Pushes agents' phones to Asterisk and deletes those no longer wanted; one sync at a time."""

    def __init__(self, ari: AriClient, load: Callable[[], Awaitable[list[AgentPhone]]], realm: str) -> None:
        """``load`` reads the phones the hub's accounts have now (active accounts with an extension)."""
        self._ari, self._load, self._realm = ari, load, realm
        self._pushed: dict[str, AgentPhone] = {}  # extension → the phone as Asterisk has it
        self._lock = asyncio.Lock()

    async def push_all(self) -> None:
        """After a (re)connection: Asterisk may have restarted and forgotten every phone."""
        async with self._lock:
            self._pushed.clear()
            await self._sync()

    async def sync(self) -> None:
        """After a change: push what is new or changed, delete what is gone."""
        async with self._lock:
            await self._sync()

    async def _sync(self) -> None:
        wanted = {phone.extension: phone for phone in await self._load()}
        for extension in sorted(set(self._pushed) - set(wanted)):
            await self._delete(extension)
            del self._pushed[extension]
            log.info("agent phone removed from Asterisk", extension=extension)
        for extension, phone in sorted(wanted.items()):
            before = self._pushed.get(extension)
            if before != phone:
                if before is not None and before.webrtc != phone.webrtc:
                    await self._delete(extension)  # a desk phone's settings must not linger on a softphone
                await self._push(phone)
                self._pushed[extension] = phone
                log.info("agent phone pushed to Asterisk", extension=extension)

    async def _push(self, phone: AgentPhone) -> None:
        for object_type, fields in sip_objects(phone, self._realm):
            await self._ari.request(
                "PUT", f"/asterisk/config/dynamic/{CONFIG_CLASS}/{object_type}/{phone.extension}",
                payload={"fields": [{"attribute": name, "value": value} for name, value in fields.items()]})

    async def _delete(self, extension: str) -> None:
        for object_type in ("endpoint", "aor", "auth"):
            try:
                await self._ari.request("DELETE", f"/asterisk/config/dynamic/{CONFIG_CLASS}/{object_type}/{extension}")
            except AriError as exc:
                if exc.status != 404:  # gone already (Asterisk restarted)
                    raise
