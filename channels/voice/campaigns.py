"""The campaign dialer: calls the targets of running campaigns (router/campaigns.py) and speaks their message.

Every ``HUB_VOICE_CAMPAIGN_POLL_SECONDS`` the dialer looks at the running campaigns inside their call window and
claims as many due targets as each has channels free (calls of the campaign out now, ringing or talking, count
against its channels). A call goes out through the carrier's trunk like an agent's (channels/voice/outbound.py);
answered, the resident hears the message and the keys: the confirmation key, or the opt-out key that puts the
number on the do-not-call list. Other keys and silence repeat the message once; the call is recorded.

Each result goes back to the campaign: confirmed, heard (nothing pressed), opted out, busy (Q.850 17), no
answer, or failed (a number the carrier refuses). A call that is still up when the hub comes back after a stop
is taken up and its message played again; targets whose call is gone are settled as interrupted, so that no
resident is called twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict

from channels.base import RouterPort
from channels.voice.agents import CallControlRefused
from channels.voice.ari import AriClient, AriError
from channels.voice.call import CallEnded, LiveCall
from channels.voice.outbound import ResidentLine
from router.campaigns import DueTarget, in_window
from router.logs import get_logger
from router.models import Campaign, TargetState, utcnow
from router.tasks import TaskSet

log = get_logger(__name__)

CAMPAIGN = "campaign"  # the ``did`` of a campaign call's record, the prefix of its channel, its application argument
CONFIRM_KEY, OPT_OUT_KEY = "1", "9"
CHOICES = "确认收到请按1;如不希望再接到此类电话,请按9。"
THANKS = {TargetState.CONFIRMED: "已确认,谢谢,再见。",
          TargetState.OPTED_OUT: "已登记,今后不再拨打。再见。",
          TargetState.HEARD: "谢谢接听,再见。"}
KEY_SECONDS = 6.0  # after the message, how long the resident has to press a key
ROUNDS = 2  # the message is said at most this often
CLOSE_WAIT = 10.0  # seconds a call that was hung up may take to be closed before its channel is counted free
BUSY, UNALLOCATED_CAUSES = 17, frozenset({1, 3, 21, 22, 27, 28, 38})  # Q.850: busy; numbers that cannot be reached


def unanswered_result(cause: int | None) -> TargetState:
    """What an unanswered call means for its target, by the Q.850 cause Asterisk gave."""
    if cause == BUSY:
        return TargetState.BUSY
    return TargetState.FAILED if cause in UNALLOCATED_CAUSES else TargetState.NO_ANSWER


class CampaignDialer:
    def __init__(self, router: RouterPort, ari: AriClient, line: ResidentLine) -> None:
        self._router, self._ari, self._line = router, ari, line
        self._book = router.campaigns
        # Campaign → its targets with a call out now (reserved when claimed, so that a pass that follows at once
        # sees the channel taken); the channels of those calls.
        self._out: defaultdict[int, set[int]] = defaultdict(set)
        self._channels: set[str] = set()
        self._tasks = TaskSet()
        self._settled = asyncio.Event()  # targets a stopped hub left dialing are settled: dialing may begin
        self._freed = asyncio.Event()  # a call ended: its channel is free for the next target at once

    async def run(self) -> None:
        """Dial until cancelled (the adapter's task); a pass that fails is logged and the next one tries again."""
        await self._settled.wait()
        while True:
            self._freed.clear()
            if self._ari.connected.is_set():
                try:
                    await self.dial_due()
                except Exception:
                    log.exception("campaign pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._freed.wait(), self._router.settings.voice_campaign_poll_seconds)

    async def dial_due(self) -> None:
        now = utcnow()
        for campaign in await self._book.running():
            if not in_window(campaign.call_from, campaign.call_until, now, self._router.settings.zone):
                continue
            free = campaign.channels - len(self._out[campaign.id])
            claimed = await self._book.claim(campaign.id, free, now) if free > 0 else []
            for target in claimed:
                self._out[campaign.id].add(target.target_id)
                self._tasks.spawn(self._call(campaign, target))
            if not claimed and not self._out[campaign.id] and await self._book.finish_if_done(campaign.id, now):
                log.info("campaign done", campaign_id=campaign.id)

    async def take_up(self, call: LiveCall) -> None:
        """A campaign call still up after the hub came back: its channel counts against the campaign's at once;
        the message is said again and its result kept (in the background)."""
        found = await self._book.target_of_call(call.channel_id)
        if found is None:
            await call.hangup("normal")
            return
        campaign, target_id = found
        self._out[campaign.id].add(target_id)
        self._channels.add(call.channel_id)
        self._tasks.spawn(self._finish_taken_up(call, campaign, target_id))

    async def _finish_taken_up(self, call: LiveCall, campaign: Campaign, target_id: int) -> None:
        try:
            await self._result(target_id, await self._speak(call, campaign))
        finally:
            await self._free(campaign, target_id, call)

    async def settle(self, live_channels: set[str]) -> None:
        """After (re)connecting: targets left dialing by a stopped hub, whose call is neither followed here nor
        still up, are settled as interrupted; a leg of theirs still ringing is hung up. Dialing begins after the
        first settling."""
        try:
            settled = await self._book.settle(live_channels | self._channels, utcnow())
            if settled:
                log.warning("campaign calls interrupted by a stop settled", count=settled)
            try:
                channels = await self._ari.channels()
            except AriError:
                channels = []
            for channel in channels:
                channel_id = channel.get("id")
                # A channel of this process is in ``_channels`` before it is originated: checked at the last
                # moment, a call placed meanwhile is never taken for a stray.
                if isinstance(channel_id, str) and channel_id.startswith(f"{CAMPAIGN}-") and channel_id not in (
                        live_channels | self._channels):
                    with contextlib.suppress(AriError):
                        await self._ari.hangup(channel_id)
        finally:
            self._settled.set()

    async def _call(self, campaign: Campaign, target: DueTarget) -> None:
        call: LiveCall | None = None
        try:
            endpoint = self._line.endpoint(target.phone)
        except CallControlRefused:
            log.error("campaign cannot dial: no trunk configured", campaign_id=campaign.id)
            await self._result(target.target_id, TargetState.FAILED)
            await self._free(campaign, target.target_id, call)
            return
        try:
            call = await self._line.place(target.phone, CAMPAIGN)
            self._channels.add(call.channel_id)
            await self._book.placed(target.target_id, call.call_id)
            ring = await self._line.ring(call, endpoint, campaign.ring_seconds)
            if not ring.answered:
                result = unanswered_result(ring.cause)
                await self._line.close_unanswered(call, f"campaign_{result.value}", result.value, ring.cause)
            else:
                await self._line.connect(call)
                result = await self._speak(call, campaign)
            await self._result(target.target_id, result)
        except AriError as exc:
            assert call is not None
            log.warning("campaign call failed", call_id=call.call_id, error=exc.message)
            await call.hangup("normal")
            await self._result(target.target_id, TargetState.HEARD if call.ended.is_set() else TargetState.FAILED)
        except Exception:
            # The database went away mid-call: the target stays dialing, settled as interrupted after a restart.
            log.exception("campaign call not followed to its end", target_id=target.target_id)
        finally:
            await self._free(campaign, target.target_id, call)

    async def _free(self, campaign: Campaign, target_id: int, call: LiveCall | None) -> None:
        """The target's channel is free for the next one once its call is over and the call's record closed."""
        if call is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(call.closed.wait(), CLOSE_WAIT)
            self._channels.discard(call.channel_id)
        self._out[campaign.id].discard(target_id)
        self._freed.set()

    async def _speak(self, call: LiveCall, campaign: Campaign) -> TargetState:
        """The message and the keys; the result (``heard`` for a resident who hangs up or presses nothing)."""
        result = TargetState.HEARD
        try:
            for _ in range(ROUNDS):
                await call.play(f"{campaign.message} {CHOICES}")
                key = await call.collect_key(KEY_SECONDS)
                if key in (CONFIRM_KEY, OPT_OUT_KEY):
                    result = TargetState.CONFIRMED if key == CONFIRM_KEY else TargetState.OPTED_OUT
                    break
            await call.set_outcome(f"campaign_{result.value}")
            await call.play(THANKS[result], interruptible=False)
            await call.hangup("normal")
        except CallEnded:
            await call.set_outcome(f"campaign_{result.value}")
        return result

    async def _result(self, target_id: int, result: TargetState) -> None:
        state = await self._book.result(target_id, result, utcnow())
        log.info("campaign call result", target_id=target_id, result=result.value, target_state=state.value)

    async def stop(self) -> None:
        await self._tasks.cancel()
