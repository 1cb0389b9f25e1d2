"""A hub process whose web chat sends are recorded to a file, for tests that kill it mid-send.

``python -m tests.support.outbound_proc RECORD_FILE`` runs the hub's storage and outbound worker with
the real web chat adapter replaced by one that appends each send to RECORD_FILE (as a receiving
platform would log it). A message whose text contains ``HANG_MARK`` is recorded, then the send never
returns: the platform got it but the hub never learnt so. ``HUB_TEST_SEND_DELAY`` slows every send.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from channels.base import DeliveryResult, OutboundMessage
from channels.webchat import WebChatAdapter
from router.hub import Hub
from router.logs import configure_logging
from router.settings import Settings

HANG_MARK = "[hang]"


class RecordingWebChat(WebChatAdapter):
    def __init__(self, router: Hub, record: Path, hang: bool, delay: float) -> None:
        super().__init__(router)
        self.record, self.hang, self.delay = record, hang, delay

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        await asyncio.sleep(self.delay)
        with self.record.open("a") as handle:
            handle.write(json.dumps({"key": message.idempotency_key, "id": message.message_id,
                                     "text": message.text, "pid": os.getpid()}) + "\n")
        if self.hang and message.text and HANG_MARK in message.text:
            await asyncio.Event().wait()
        return await super().send(message)


async def main(record: Path) -> None:
    settings = Settings()
    hub = Hub(settings)
    hub.adapters["webchat"] = RecordingWebChat(hub, record, hang=os.environ.get("HUB_TEST_HANG") == "1",
                                               delay=float(os.environ.get("HUB_TEST_SEND_DELAY", "0")))
    await hub.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await hub.stop()
    print("stopped", flush=True)


if __name__ == "__main__":
    configure_logging("WARNING")
    asyncio.run(main(Path(sys.argv[1])))
