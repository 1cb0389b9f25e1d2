"""Callers put through to agents on registered desk phones (sipp), through the same ACD as chats.

A caller presses 0, hears their place in the queue and music; the ACD gives the call to a ready agent with a
phone; that phone rings. An agent who does not answer is set away (未接来电) and the next agent's phone rings;
the caller talks to the agent who answers, in the recorded bridge; the agent hangs up and the caller keys a
score. A caller who gives up waiting is counted as abandoned and put on the callback list.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from channels.voice.ivr import BUILT_IN_PROMPTS
from channels.voice.prompts import HOLD_MUSIC
from router.acd.calls import MISSED_REASON
from router.logs import mask_phone
from router.models import AgentPresence, Call, CallbackRequest, Conversation, Role, utcnow
from router.phones import normalized_phone
from router.settings import Settings
from tests.channels.voice.conftest import RING_SECONDS, SETTLE, VoiceWorld, agent_with_phone, connected_world, extension
from tests.channels.voice.test_calls import caller, wav_seconds
from tests.conftest import PASSWORD
from tests.support import sipp
from tests.support.actors import Staff
from tests.support.asterisk import Asterisk, free_udp_range


async def test_a_caller_waits_with_music_rings_an_agent_who_misses_then_talks_to_the_next_and_scores(
        desk: VoiceWorld) -> None:
    admin = await desk.hub.staff(Role.ADMIN, listen=False)
    missing, missing_ext, missing_password = await agent_with_phone(desk, admin)
    answering, answering_ext, answering_password = await agent_with_phone(desk, admin)
    port = desk.asterisk.sip_port
    number, since = caller(), utcnow()
    async with sipp.DeskPhone(port, missing_ext, missing_password, answer=False) as unanswered, \
            sipp.DeskPhone(port, answering_ext, answering_password, ring_ms=1000, talk_ms=4000) as taken:
        # Both ready; the one who misses has the lower id, so least-busy picks them first.
        await missing.becomes("ready")
        await answering.becomes("ready")
        # 0 for a person, then wait: about 6 s to the first ring, 5 s ringing out, 1 s to the second agent's
        # answer, 4 s talking (the caller speaks, the agent's phone echoes); the survey question (with 8 s to
        # answer after it) follows, and the caller keys 4.
        steps = [SETTLE, *sipp.digits("0"), sipp.Pause(10000), sipp.Voice(3000), sipp.Pause(8800),
                 *sipp.digits("4")]
        result = await desk.call(number, steps, wait_for_hangup=True, timeout=90)
        assert result.completed, result.output
        assert "CANCEL" in unanswered.log() and "BYE" in taken.log()

    call = await desk.ended_call(number, since)
    assert (call.outcome, call.agent_id, call.survey_score, call.hangup_side) == (
        "agent", answering.user["id"], 4, "hub")
    assert call.answered_at < call.queued_at < call.connected_at < call.ended_at
    kinds = [(e.kind, (e.detail or {}).get("agent_id")) for e in await desk.events(call.id)
             if e.kind in {"queued", "ring", "missed", "connect", "agent_hangup"}]
    assert kinds == [("queued", None), ("ring", missing.user["id"]), ("missed", missing.user["id"]),
                     ("ring", answering.user["id"]), ("connect", answering.user["id"]),
                     ("agent_hangup", answering.user["id"])]
    [missed] = await desk.events(call.id, "missed")
    assert missed.detail["cause"] == "no_answer"
    [survey] = await desk.events(call.id, "survey")
    assert survey.detail == {"score": 4}

    # The caller heard their place (nobody ahead) while the first phone rang.
    prompts = [e.detail for e in await desk.events(call.id, "prompt")]
    position = BUILT_IN_PROMPTS["queue_position"]["zh"].format(ahead=0, minutes=2)  # 180 s a call, two agents
    assert position in [p.get("text") for p in prompts]
    assert BUILT_IN_PROMPTS["survey"]["zh"] in [p.get("text") for p in prompts]

    # The agent who did not answer is away, with the reason; the call's conversation is the other agent's.
    async with desk.hub.hub.sessions() as session:
        away = await session.get(AgentPresence, missing.user["id"])
        conversation = await session.get(Conversation, call.conversation_id)
    assert (away.state, away.reason) == ("away", MISSED_REASON)
    assert (conversation.state, conversation.assignee_id) == ("assigned", answering.user["id"])
    assigned = await answering.gets_assigned(call.conversation_id)
    assert assigned["channel"] == "voice"

    # The whole call is recorded, both sides in one file. Asterisk writes the bridge's audio as it flows, so the
    # silences (sipp sends RTP only while it plays a pcap) are left out: a little shorter than the call.
    assert call.recording_file_id is not None
    length = wav_seconds(await desk.recording(call.recording_file_id))
    assert 0 < (call.ended_at - call.answered_at).total_seconds() - length < 5
    for staff in (admin, missing, answering):
        await staff.close()


async def test_a_caller_who_gives_up_waiting_is_counted_abandoned_and_put_on_the_callback_list(
        desk: VoiceWorld) -> None:
    admin = await desk.hub.staff(Role.ADMIN, listen=False)
    busy, _, _ = await agent_with_phone(desk, admin)
    await busy.becomes("away", "开会")  # signed in with a phone, so the line takes calls, but nobody is ready
    number, since = caller(), utcnow()
    result = await desk.call(number, [SETTLE, *sipp.digits("0"), sipp.Pause(14000)])
    assert result.completed, result.output

    call = await desk.ended_call(number, since)
    assert (call.outcome, call.agent_id, call.connected_at, call.hangup_side) == ("abandoned", None, None, "caller")
    [abandon] = await desk.events(call.id, "abandon")
    assert 8 < abandon.detail["waited_seconds"] < 15
    [announce, *_] = await desk.events(call.id, "announce")
    assert announce.detail == {"ahead": 0, "minutes": 3}  # 180 s a call, one agent
    # Their place, then music, until they hung up.
    waiting = [(p.detail.get("text"), p.detail["media"], p.detail["outcome"])
               for p in await desk.events(call.id, "prompt")]
    position = BUILT_IN_PROMPTS["queue_position"]["zh"].format(ahead=0, minutes=3)
    assert waiting[-2:] == [(position, waiting[-2][1], "done"), (None, f"sound:shuiwu/{HOLD_MUSIC}", "hangup")]
    async with desk.hub.hub.sessions() as session:
        conversation = await session.get(Conversation, call.conversation_id)
        [request] = await session.scalars(select(CallbackRequest).where(
            CallbackRequest.conversation_id == call.conversation_id))
    assert conversation.state == "closed"
    assert (request.phone, request.state, request.channel) == (call.caller, "open", "voice")
    for staff in (admin, busy):
        await staff.close()


async def test_a_caller_in_the_menu_is_nobodys_until_they_press_0_then_rings_the_team_the_menu_names(
        desk: VoiceWorld) -> None:
    """No bot on this hub: the call is the IVR's until the caller asks for a person, and then it waits in the
    queue of the team the menu's agent node names, not in the hotline's."""
    admin = await desk.hub.staff(Role.ADMIN, listen=False)
    hotline, hotline_ext, hotline_password = await agent_with_phone(desk, admin)
    repairs, repairs_ext, repairs_password = await agent_with_phone(desk, admin, teams=["维修调度"])
    menu = (await admin.call("GET", "/api/ivr/menu"))["yaml"]
    assert "skill: 热线坐席" in menu
    await admin.call("PUT", "/api/ivr/menu", {"yaml": menu.replace("skill: 热线坐席", "skill: 维修调度")})
    number, since = caller(), utcnow()
    port = desk.asterisk.sip_port
    async with sipp.DeskPhone(port, hotline_ext, hotline_password, ring_ms=300) as hotline_phone, \
            sipp.DeskPhone(port, repairs_ext, repairs_password, ring_ms=300, talk_ms=2000) as repairs_phone:
        await hotline.becomes("ready")  # ready with a phone, and in the hotline team: the ACD's first choice
        await repairs.becomes("ready")
        calling = asyncio.create_task(desk.call(
            number, [SETTLE, sipp.Pause(4000), *sipp.digits("0"), sipp.Pause(30000)], wait_for_hangup=True,
            timeout=60))
        # While the caller listens to the menu, the call is the IVR's: not queued, nobody's.
        deadline = asyncio.get_running_loop().time() + 3
        while asyncio.get_running_loop().time() < deadline:
            async with desk.hub.hub.sessions() as session:
                conversation = await session.scalar(
                    select(Conversation).join(Call, Call.conversation_id == Conversation.id)
                    .where(Call.caller == normalized_phone(number), Call.started_at >= since))
            if conversation is not None:
                assert (conversation.state, conversation.assignee_id) == ("bot", None)
            await asyncio.sleep(0.2)
        assert conversation is not None, "the call has no conversation"
        result = await calling
        assert result.completed, result.output
        assert "BYE" in repairs_phone.log()
        assert "INVITE" not in hotline_phone.log()

    call = await desk.ended_call(number, since)
    assert (call.outcome, call.agent_id) == ("agent", repairs.user["id"])
    assert [(e.detail or {}).get("agent_id") for e in await desk.events(call.id, "ring")] == [repairs.user["id"]]
    teams = {t["name"]: t["id"] for t in (await admin.call("GET", "/api/teams"))["items"]}
    async with desk.hub.hub.sessions() as session:
        conversation = await session.get(Conversation, call.conversation_id)
    assert (conversation.team_id, conversation.assignee_id) == (teams["维修调度"], repairs.user["id"])
    for staff in (admin, hotline, repairs):
        await staff.close()


async def live_call_of(world: VoiceWorld, agent_id: int, within: float = 30.0) -> int:
    """The id of the call put through to ``agent_id``, once it is."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        for live in list(world.adapter.calls.values()):
            if agent_id in world.adapter.agents_on_call(live.call_id):
                return live.call_id
        assert asyncio.get_running_loop().time() < deadline, "the call was not put through"
        await asyncio.sleep(0.1)


async def test_hold_an_attended_transfer_a_conference_and_the_last_agent_hanging_up_before_the_survey(
        desk: VoiceWorld) -> None:
    admin = await desk.hub.staff(Role.ADMIN, listen=False)
    first, first_ext, first_password = await agent_with_phone(desk, admin)
    second, second_ext, second_password = await agent_with_phone(desk, admin)
    third, third_ext, third_password = await agent_with_phone(desk, admin)
    stranger = await desk.hub.staff(Role.AGENT, listen=False)
    port = desk.asterisk.sip_port
    number, since = caller(), utcnow()
    async with sipp.DeskPhone(port, first_ext, first_password, ring_ms=500) as first_phone, \
            sipp.DeskPhone(port, second_ext, second_password, ring_ms=500) as second_phone, \
            sipp.DeskPhone(port, third_ext, third_password, ring_ms=500) as third_phone:
        await first.becomes("ready")  # the others are signed in, not ready: only the first gets the call
        started = asyncio.get_running_loop().time()
        # 0, then the caller stays on the line; 4 for the survey about 40 s into the call.
        caller_task = asyncio.create_task(desk.call(number, [SETTLE, *sipp.digits("0"), sipp.Pause(37800),
                                                             *sipp.digits("4")], wait_for_hangup=True, timeout=90))
        call_id = await live_call_of(desk, first.user["id"])
        control = f"/api/calls/{call_id}/control"

        # An agent not on the call may not touch it.
        status, refused = await stranger.attempt("POST", control, {"action": "hold"})
        assert (status, refused["error"]["code"]) == (403, "not_on_call")

        held = await first.call("POST", control, {"action": "hold"})
        assert (held["agents"], held["held"]) == ([first.user["id"]], True)
        await asyncio.sleep(1.5)  # the caller hears music
        resumed = await first.call("POST", control, {"action": "resume"})
        assert resumed["held"] is False

        # Attended transfer: the second agent answers aside, then has the caller; the first leaves.
        status, refused = await first.attempt("POST", control, {"action": "transfer"})
        assert (status, refused["error"]["code"]) == (409, "not_consulting")
        consulting = await first.call("POST", control, {"action": "consult", "agent_id": second.user["id"]})
        assert (consulting["held"], consulting["consulted"]) == (True, second.user["id"])
        transferred = await first.call("POST", control, {"action": "transfer"})
        assert (transferred["agents"], transferred["held"], transferred["consulted"]) == (
            [second.user["id"]], False, None)
        status, refused = await first.attempt("POST", control, {"action": "hold"})
        assert (status, refused["error"]["code"]) == (403, "not_on_call")

        # The second agent brings in a third: all three talk; then the second hangs up.
        await second.call("POST", control, {"action": "consult", "agent_id": third.user["id"]})
        together = await second.call("POST", control, {"action": "conference"})
        assert (sorted(together["agents"]), together["held"]) == (sorted([second.user["id"], third.user["id"]]),
                                                                   False)
        left = await second.call("POST", control, {"action": "hangup"})
        assert left["agents"] == [third.user["id"]]

        # The third agent hangs up last, about 33 s in: the caller hears the survey and keys 4.
        await asyncio.sleep(max(0.0, started + 33 - asyncio.get_running_loop().time()))
        await third.call("POST", control, {"action": "hangup"})
        result = await caller_task
        assert result.completed, result.output
        for phone in (first_phone, second_phone, third_phone):
            assert "BYE" in phone.log()

    call = await desk.ended_call(number, since)
    assert (call.agent_id, call.survey_score, call.outcome) == (second.user["id"], 4, "agent")
    steps = [(e.kind, (e.detail or {}).get("agent_id")) for e in await desk.events(call.id)
             if e.kind in {"connect", "hold", "resume", "consult", "transfer", "conference", "agent_hangup"}]
    one, two, three = first.user["id"], second.user["id"], third.user["id"]
    assert steps == [("connect", one), ("hold", None), ("resume", None), ("hold", None), ("consult", two),
                     ("resume", None), ("transfer", two), ("hold", None), ("consult", three), ("resume", None),
                     ("conference", None), ("agent_hangup", two), ("agent_hangup", three)]
    [survey] = await desk.events(call.id, "survey")
    assert survey.detail == {"score": 4}
    async with desk.hub.hub.sessions() as session:
        conversation = await session.get(Conversation, call.conversation_id)
    assert conversation.assignee_id == two  # the conversation went with the transfer
    for staff in (admin, first, second, third, stranger):
        await staff.close()


async def test_a_caller_sent_to_another_teams_queue_then_transferred_to_a_number_outside(
        asterisk: Asterisk, own_voice_settings: Settings) -> None:
    outside_port, outside_number = free_udp_range(1), caller()
    settings = own_voice_settings.model_copy(update={
        "voice_ring_seconds": RING_SECONDS, "voice_hours": "24x7", "voice_outbound_caller_id": "962740",
        "voice_outbound_uri": f"sip:{{number}}@127.0.0.1:{outside_port}"})
    number, since = caller(), utcnow()
    async with connected_world(settings, asterisk) as world:
        admin = await world.hub.staff(Role.ADMIN, listen=False)
        hotline, hotline_ext, hotline_password = await agent_with_phone(world, admin)
        repairs, repairs_ext, repairs_password = await agent_with_phone(world, admin, teams=["维修调度"])
        teams = {t["name"]: t["id"] for t in (await admin.call("GET", "/api/teams"))["items"]}
        port = asterisk.sip_port
        async with sipp.DeskPhone(port, hotline_ext, hotline_password, ring_ms=300) as hotline_phone, \
                sipp.DeskPhone(port, repairs_ext, repairs_password, ring_ms=300) as repairs_phone, \
                sipp.DeskPhone(None, outside_number, None, ring_ms=300, talk_ms=5000, port=outside_port) as outside:
            await hotline.becomes("ready")
            await repairs.becomes("ready")  # in the repairs team only: the hotline's queue is not theirs
            calling = asyncio.create_task(world.call(number, [SETTLE, *sipp.digits("0"), sipp.Pause(60000)],
                                                     wait_for_hangup=True, timeout=90))
            call_id = await live_call_of(world, hotline.user["id"])
            control = f"/api/calls/{call_id}/control"
            for wrong, code in (({"action": "queue"}, "invalid"),
                                ({"action": "queue", "team_id": 999999}, "unknown_team"),
                                ({"action": "consult", "agent_id": repairs.user["id"], "phone": outside_number},
                                 "invalid"),
                                ({"action": "consult", "phone": "12345"}, "bad_phone")):
                status, refused = await hotline.attempt("POST", control, wrong)
                assert (status, refused["error"]["code"]) == (422, code), wrong

            # A blind transfer to the repairs team's queue: the hotline agent is off the call at once, and the
            # caller waits for the repairs agent the ACD picks.
            sent = await hotline.call("POST", control, {"action": "queue", "team_id": teams["维修调度"]})
            assert sent["agents"] == []
            await live_call_of(world, repairs.user["id"])

            # The repairs agent consults a number outside (the district office) and hands the caller over.
            consulting = await repairs.call("POST", control, {"action": "consult", "phone": outside_number})
            assert (consulting["held"], consulting["consulted"], consulting["consulted_number"]) == (
                True, None, mask_phone(f"+86{outside_number}"))
            handed = await repairs.call("POST", control, {"action": "transfer"})
            assert (handed["agents"], handed["held"], handed["outside"]) == (
                [], False, mask_phone(f"+86{outside_number}"))
            # The office talks with the caller, then hangs up: so does the call (no survey for the office's talk).
            result = await calling
            assert result.completed, result.output
            for phone in (hotline_phone, repairs_phone, outside):
                assert "BYE" in phone.log()
            assert "962740" in outside.log()  # the office sees the hotline's number

        call = await world.ended_call(number, since)
        assert (call.agent_id, call.outcome, call.survey_score, call.hangup_side) == (
            repairs.user["id"], "agent", None, "hub")
        steps = [(e.kind, (e.detail or {}).get("agent_id") or (e.detail or {}).get("number")
                  or (e.detail or {}).get("team")) for e in await world.events(call.id)
                 if e.kind in {"connect", "requeue", "ring", "consult", "transfer", "outside_hangup"}]
        office = mask_phone(f"+86{outside_number}")
        assert steps == [("ring", hotline.user["id"]), ("connect", hotline.user["id"]), ("requeue", "维修调度"),
                         ("ring", repairs.user["id"]), ("connect", repairs.user["id"]), ("consult", office),
                         ("transfer", office), ("outside_hangup", office)]
        async with world.hub.hub.sessions() as session:
            conversation = await session.get(Conversation, call.conversation_id)
        assert (conversation.team_id, conversation.assignee_id) == (teams["维修调度"], repairs.user["id"])
        for staff in (admin, hotline, repairs):
            await staff.close()


async def test_a_supervisor_listens_in_then_barges_in_on_their_own_phone(desk: VoiceWorld) -> None:
    admin = await desk.hub.staff(Role.ADMIN, listen=False)
    agent, agent_ext, agent_password = await agent_with_phone(desk, admin)
    supervisor = await desk.hub.staff(Role.SUPERVISOR)
    supervisor_ext = extension()
    given = await admin.call("PUT", f"/api/users/{supervisor.user['id']}/phone", {"extension": supervisor_ext})
    port, ari = desk.asterisk.sip_port, desk.adapter.ari
    number, since = caller(), utcnow()
    async with sipp.DeskPhone(port, agent_ext, agent_password, ring_ms=300), \
            sipp.DeskPhone(port, supervisor_ext, given["password"], ring_ms=300, talk_ms=3000):
        await agent.becomes("ready")
        calling = asyncio.create_task(desk.call(number, [
            SETTLE, *sipp.digits("0"), sipp.Pause(4000), sipp.Voice(4000), sipp.Pause(3000), sipp.Voice(4000),
            sipp.Pause(3000)], timeout=60))
        call_id = await live_call_of(desk, agent.user["id"])
        [agent_leg] = [c["id"] for c in await ari.channels() if c["id"].startswith("agent-")]

        # An agent may not listen in; the supervisor does, on their phone: a snoop on the caller's channel.
        status, refused = await agent.attempt("POST", f"/api/calls/{call_id}/monitor", {"mode": "listen"})
        assert (status, refused["error"]["code"]) == (403, "role_forbidden")
        listening = await supervisor.call("POST", f"/api/calls/{call_id}/monitor", {"mode": "listen"})
        assert listening["monitors"] == {str(supervisor.user["id"]): "listen"}
        assert listening["agents"] == [agent.user["id"]]
        [monitor] = [b for b in await ari.request("GET", "/bridges") if b["id"].startswith("monitor-")]
        snoop = next(c for c in monitor["channels"] if c.startswith("snoop-"))
        supervisor_leg = next(c for c in monitor["channels"] if c != snoop)
        await asyncio.sleep(1.5)
        heard = await ari.request("GET", f"/channels/{supervisor_leg}/rtp_statistics")
        assert heard["txcount"] > 25, heard  # the call's audio reaches the supervisor's phone
        # The supervisor hangs up: the snoop and its bridge go; the call goes on.
        deadline = asyncio.get_running_loop().time() + 10
        while any(c["id"] in (snoop, supervisor_leg) for c in await ari.channels()):
            assert asyncio.get_running_loop().time() < deadline, "the snoop outlived the supervisor's leg"
            await asyncio.sleep(0.2)
        assert not [b for b in await ari.request("GET", "/bridges") if b["id"].startswith("monitor-")]
        assert desk.adapter.agents_on_call(call_id) == [agent.user["id"]]

        # Barging in: the supervisor's phone joins the call's own bridge.
        barging = await supervisor.call("POST", f"/api/calls/{call_id}/monitor", {"mode": "barge"})
        assert barging["monitors"] == {str(supervisor.user["id"]): "barge"}
        live = next(c for c in desk.adapter.calls.values() if c.call_id == call_id)
        bridge = await ari.request("GET", f"/bridges/{live.bridge_id}")
        joined = set(bridge["channels"]) - {live.channel_id, agent_leg}
        assert any(c.startswith("agent-") for c in joined), bridge["channels"]

        result = await calling
        assert result.completed, result.output

    call = await desk.ended_call(number, since)
    monitors = [(e.detail["agent_id"], e.detail["mode"]) for e in await desk.events(call.id, "monitor")]
    assert monitors == [(supervisor.user["id"], "listen"), (supervisor.user["id"], "barge")]
    for staff in (admin, agent, supervisor):
        await staff.close()


async def test_a_supervisor_takes_a_call_over_then_ends_it(desk: VoiceWorld) -> None:
    admin = await desk.hub.staff(Role.ADMIN, listen=False)
    agent, agent_ext, agent_password = await agent_with_phone(desk, admin)
    supervisor = await desk.hub.staff(Role.SUPERVISOR, listen=False)
    supervisor_ext = extension()
    given = await admin.call("PUT", f"/api/users/{supervisor.user['id']}/phone", {"extension": supervisor_ext})
    port = desk.asterisk.sip_port
    number, since = caller(), utcnow()
    async with sipp.DeskPhone(port, agent_ext, agent_password, ring_ms=300) as agent_phone, \
            sipp.DeskPhone(port, supervisor_ext, given["password"], ring_ms=300) as supervisor_phone:
        await agent.becomes("ready")
        calling = asyncio.create_task(desk.call(number, [SETTLE, *sipp.digits("0"), sipp.Pause(40000)],
                                                wait_for_hangup=True, timeout=60))
        call_id = await live_call_of(desk, agent.user["id"])
        control = f"/api/calls/{call_id}/control"
        status, refused = await agent.attempt("POST", control, {"action": "release"})
        assert (status, refused["error"]["code"]) == (403, "role_forbidden")  # an agent ends only their part

        # 接管: the supervisor's phone rings, then the supervisor has the caller and the agent is off the call.
        taken = await supervisor.call("POST", f"/api/calls/{call_id}/monitor", {"mode": "takeover"})
        assert (taken["agents"], taken["monitors"]) == ([supervisor.user["id"]], {})
        deadline = asyncio.get_running_loop().time() + 10
        while "BYE" not in agent_phone.log():
            assert asyncio.get_running_loop().time() < deadline, "the agent's phone was not hung up"
            await asyncio.sleep(0.2)
        # 强拆: the call ends for everybody.
        await supervisor.call("POST", control, {"action": "release"})
        result = await calling
        assert result.completed, result.output
        assert "BYE" in supervisor_phone.log()

    call = await desk.ended_call(number, since)
    assert (call.agent_id, call.hangup_side, call.survey_score) == (supervisor.user["id"], "hub", None)
    kinds = {"connect", "agent_hangup", "monitor", "transfer", "release"}
    steps = [(e.kind, (e.detail or {}).get("agent_id"), (e.detail or {}).get("mode"))
             for e in await desk.events(call.id) if e.kind in kinds]
    one, boss = agent.user["id"], supervisor.user["id"]
    assert steps == [("connect", one, None), ("agent_hangup", one, None), ("monitor", boss, "takeover"),
                     ("transfer", boss, None), ("release", None, None)]
    async with desk.hub.hub.sessions() as session:
        conversation = await session.get(Conversation, call.conversation_id)
    assert conversation.assignee_id == boss
    audited = (await admin.call("GET", f"/api/audit?action=call.&target_id={call.id}"))["items"]
    assert sorted((a["action"], a["actor"]) for a in audited) == [
        ("call.monitor", supervisor.user["username"]), ("call.release", supervisor.user["username"])]
    for staff in (admin, agent, supervisor):
        await staff.close()


async def test_a_call_with_an_agent_goes_on_through_a_hub_restart_to_the_survey(
        asterisk: Asterisk, own_voice_settings: Settings) -> None:
    settings = own_voice_settings.model_copy(update={"voice_ring_seconds": RING_SECONDS, "voice_hours": "24x7"})
    number, since = caller(), utcnow()
    async with connected_world(settings, asterisk) as first:
        admin = await first.hub.staff(Role.ADMIN, listen=False)
        agent, agent_ext, agent_password = await agent_with_phone(first, admin)
        phone = await sipp.DeskPhone(first.asterisk.sip_port, agent_ext, agent_password, ring_ms=300).__aenter__()
        await agent.becomes("ready")
        started = asyncio.get_running_loop().time()
        # 0; the caller stays on the line and keys 4 for the survey about 26 s in.
        calling = asyncio.create_task(first.call(number, [SETTLE, *sipp.digits("0"), sipp.Pause(24300),
                                                          *sipp.digits("4")], wait_for_hangup=True, timeout=90))
        call_id = await live_call_of(first, agent.user["id"])
        for staff in (admin, agent):
            await staff.close()
    # The hub went away mid-talk; caller and agent talk on in Asterisk. The next hub takes the talk up.
    try:
        async with connected_world(settings, asterisk) as second:
            deadline = asyncio.get_running_loop().time() + 15
            while second.adapter.agents_on_call(call_id) != [agent.user["id"]]:
                assert asyncio.get_running_loop().time() < deadline, "the talk was not taken up"
                assert not calling.done(), (await calling).output
                await asyncio.sleep(0.1)
            again = await Staff(second.hub.url).login(agent.user["username"], PASSWORD)
            # The agent files the resident's repair from the call, as from a chat.
            async with second.hub.hub.sessions() as session:
                conversation_id = (await session.get(Call, call_id)).conversation_id
            order = await again.call("POST", "/api/workorders", {
                "category": "leak_repair", "title": "水表井漏水", "description": "来电反映楼下水表井冒水",
                "custom_fields": {"leak_location": "水表井"}, "conversation_id": conversation_id}, expect=201)
            await asyncio.sleep(max(0.0, started + 16 - asyncio.get_running_loop().time()))
            await again.call("POST", f"/api/calls/{call_id}/control", {"action": "hangup"})
            result = await calling
            assert result.completed, result.output
            call = await second.ended_call(number, since)
            assert (call.agent_id, call.survey_score, call.outcome) == (agent.user["id"], 4, "agent")
            assert [e.kind for e in await second.events(call.id) if e.kind in {"connect", "agent_hangup", "survey"}
                    ] == ["connect", "agent_hangup", "survey"]
            assert "BYE" in phone.log()
            # The call's recording is the order's too, played on the order desk through the call records.
            detail = await again.call("GET", f"/api/workorders/{order['id']}")
            assert detail["satisfaction"] == 4  # the score given after the restart is the order's too
            [recording] = detail["call_recordings"]
            assert (recording["call_id"], recording["url"]) == (call.id, f"/api/calls/{call.id}/recording")
            status, audio, content_type = await again.fetch(recording["url"])
            assert (status, content_type, audio[:4]) == (200, "audio/wav", b"RIFF")
            await again.close()
    finally:
        await phone.__aexit__(None, None, None)



async def test_an_agent_calls_a_resident_their_phone_rings_first_and_the_call_is_recorded(
        asterisk: Asterisk, own_voice_settings: Settings) -> None:
    resident_port = free_udp_range(1)
    settings = own_voice_settings.model_copy(update={
        "voice_hours": "24x7", "voice_outbound_uri": f"sip:{{number}}@127.0.0.1:{resident_port}",
        "voice_outbound_caller_id": "962740"})
    number = caller()
    async with connected_world(settings, asterisk) as world:
        admin = await world.hub.staff(Role.ADMIN, listen=False)
        agent, agent_ext, agent_password = await agent_with_phone(world, admin)
        async with sipp.DeskPhone(asterisk.sip_port, agent_ext, agent_password, ring_ms=300) as desk_phone, \
                sipp.DeskPhone(None, number, None, ring_ms=500, talk_ms=4000, port=resident_port) as resident:
            status, refused = await agent.attempt("POST", "/api/calls/outbound", {"phone": "12345"})
            assert (status, refused["error"]["code"]) == (422, "bad_phone")
            status, refused = await agent.attempt("POST", "/api/calls/outbound", {"phone": number, "contact_id": 1})
            assert (status, refused["error"]["code"]) == (422, "invalid")
            status, refused = await agent.attempt("POST", "/api/calls/outbound", {"contact_id": 999999})
            assert (status, refused["error"]["code"]) == (404, "contact_not_found")
            placed = await agent.call("POST", "/api/calls/outbound", {"phone": number}, expect=202)
            call_id = placed["call_id"]
            deadline = asyncio.get_running_loop().time() + 30
            while True:
                async with world.hub.hub.sessions() as session:
                    call = await session.get(Call, call_id)
                if call.ended_at is not None and call.recording_file_id is not None:
                    break
                assert asyncio.get_running_loop().time() < deadline, "the outbound call did not end"
                await asyncio.sleep(0.3)
            # The resident heard the hotline's number, the national number was dialled; both hung up.
            invite = resident.log()
            assert f"INVITE sip:{number}@127.0.0.1:{resident_port}" in invite and "962740" in invite
            assert "BYE" in desk_phone.log()
        assert (call.did, call.agent_id, call.outcome) == ("outbound", agent.user["id"], "agent")
        assert call.caller == f"+86{number}" and call.connected_at is not None
        kinds = [e.kind for e in await world.events(call.id) if e.kind in {"ring", "dial", "connect"}]
        assert kinds == ["ring", "dial", "connect"]
        assert wav_seconds(await world.recording(call.recording_file_id)) > 2
        async with world.hub.hub.sessions() as session:
            conversation = await session.get(Conversation, call.conversation_id)
        assert (conversation.channel, conversation.assignee_id) == ("voice", agent.user["id"])
        for staff in (admin, agent):
            await staff.close()
