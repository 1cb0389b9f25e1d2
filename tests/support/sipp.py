"""Real SIP callers for the voice tests: sipp as a UAC with a scenario generated from a list of steps.

A call is INVITE → 200 → ACK, then the steps (pauses, RFC 2833 DTMF digits from sipp's own pcaps, a voice
pcap), then the caller's BYE, or, with ``wait_for_hangup``, the server's BYE answered with 200. sipp's
``play_pcap_audio`` cancels audio already playing, so a voice pcap belongs after the digits. Every call runs
with ``-m 1`` and timeouts, so that a test never hangs on it.

sipp replays a pcap's RTP headers as they are, and each of its DTMF pcaps was captured with its own sequence
numbers, timestamps and SSRC: Asterisk takes a digit whose sequence numbers go back (``4`` after ``3``) for
a late packet and drops it. So every call gets copies of its pcaps renumbered as one stream.
"""

from __future__ import annotations

import asyncio
import re
import struct
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from xml.sax.saxutils import escape

from tests.support.asterisk import free_udp_range

PCAPS = Path("/usr/share/sip-tester")
DTMF_FILES = {**{str(d): f"dtmf_2833_{d}.pcap" for d in range(10)}, "*": "dtmf_2833_star.pcap",
              "#": "dtmf_2833_pound.pcap"}
VOICE = PCAPS / "g711a.pcap"  # a few seconds of speech, G.711 A-law
DTMF_MS = 300  # a digit pcap lasts about 250 ms; the next step waits this long after starting it
NUMBER = re.compile(r"^\+?[0-9]{1,20}$")
SSRC = 0x5A5A0001


@dataclass(frozen=True)
class Pause:
    ms: int


@dataclass(frozen=True)
class Digit:
    digit: str

    def __post_init__(self) -> None:
        if self.digit not in DTMF_FILES:
            raise ValueError(f"no DTMF pcap for {self.digit!r}")


@dataclass(frozen=True)
class Voice:
    ms: int = 3000  # how long to wait after starting it
    pcap: Path = VOICE


Step = Pause | Digit | Voice


def digits(keys: str, gap_ms: int = 400) -> list[Step]:
    """Key presses, one after another with ``gap_ms`` of silence between them."""
    steps: list[Step] = []
    for key in keys:
        steps += [Digit(key), Pause(gap_ms)]
    return steps


@dataclass(frozen=True)
class CallResult:
    completed: bool  # every message of the scenario went as written
    returncode: int
    output: str


_SDP = """Content-Type: application/sdp
    Content-Length: [len]

    v=0
    o={party} 53655765 2353687637 IN IP[local_ip_type] [local_ip]
    s=-
    c=IN IP[media_ip_type] [media_ip]
    t=0 0
    m=audio [media_port] RTP/AVP 8 0 101
    a=rtpmap:8 PCMA/8000
    a=rtpmap:0 PCMU/8000
    a=rtpmap:101 telephone-event/8000
    a=fmtp:101 0-15
    a=sendrecv
"""  # G.711 and RFC 2833 digits, on sipp's media port: the offer of a caller, the answer of an agent's phone

_INVITE = """\
    INVITE sip:{did}@[remote_ip]:[remote_port] SIP/2.0
    Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
    From: <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
    To: <sip:{did}@[remote_ip]:[remote_port]>
    Call-ID: [call_id]
    CSeq: 1 INVITE
    Contact: sip:{caller}@[local_ip]:[local_port]
    Max-Forwards: 70
    """ + _SDP.replace("{party}", "caller")

_IN_DIALOG = """\
    {method} sip:{did}@[remote_ip]:[remote_port] SIP/2.0
    Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
    From: <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
    To: <sip:{did}@[remote_ip]:[remote_port]>[peer_tag_param]
    Call-ID: [call_id]
    CSeq: {cseq} {method}
    Contact: sip:{caller}@[local_ip]:[local_port]
    Max-Forwards: 70
    Content-Length: 0
"""

_OK_TO_BYE = """\
    SIP/2.0 200 OK
    [last_Via:]
    [last_From:]
    [last_To:]
    [last_Call-ID:]
    [last_CSeq:]
    Content-Length: 0
"""


class _Stream:
    """Copies of pcaps whose RTP packets continue one stream: sequence numbers and timestamps only go up."""

    def __init__(self, directory: Path) -> None:
        self.directory, self.seq, self.timestamp, self.count = directory, 1000, 16000, 0

    def copy(self, source: Path) -> Path:
        data = bytearray(source.read_bytes())
        if struct.unpack("<I", data[:4])[0] != 0xA1B2C3D4 or struct.unpack("<I", data[20:24])[0] != 1:
            raise ValueError(f"{source}: not a little-endian Ethernet pcap")
        offset, first, last = 24, None, 0
        while offset < len(data):
            length = struct.unpack("<I", data[offset + 8:offset + 12])[0]
            packet = offset + 16
            rtp = packet + 14 + (data[packet + 14] & 0x0F) * 4 + 8  # past Ethernet, IPv4 and UDP
            timestamp = struct.unpack(">I", data[rtp + 4:rtp + 8])[0]
            first = timestamp if first is None else first
            last = max(last, timestamp)
            struct.pack_into(">HII", data, rtp + 2, self.seq & 0xFFFF,
                             (self.timestamp + timestamp - first) & 0xFFFFFFFF, SSRC)
            self.seq += 1
            offset = packet + length
        self.timestamp += (last - (first or 0)) + 8000
        self.count += 1
        target = self.directory / f"{self.count:03d}-{source.name}"
        target.write_bytes(bytes(data))
        return target


def scenario(caller: str, did: str, steps: list[Step], *, wait_for_hangup: bool = False,
             hangup_timeout_ms: int = 30000, stream: _Stream | None = None) -> str:
    """The sipp XML scenario of one call from ``caller`` to ``did`` (its pcaps renumbered into ``stream``)."""
    if not NUMBER.match(caller) or not NUMBER.match(did):
        raise ValueError("caller and DID must be phone numbers")
    parts = ['<?xml version="1.0" encoding="ISO-8859-1" ?>', '<scenario name="hub caller">',
             f'<send retrans="500"><![CDATA[\n{_INVITE.format(did=did, caller=caller)}\n]]></send>',
             '<recv response="100" optional="true"/>', '<recv response="180" optional="true"/>',
             '<recv response="183" optional="true"/>', '<recv response="200" rrs="true"/>',
             "<send><![CDATA[\n"
             + _IN_DIALOG.format(method="ACK", cseq=1, did=did, caller=caller) + "\n]]></send>"]
    if wait_for_hangup:
        # The server may hang up as soon as it has what it waits for: a pause at the end would take its BYE
        # for an unexpected message, so the last steps' pauses are left to the wait for the BYE.
        while steps and isinstance(steps[-1], Pause):
            steps = steps[:-1]
    for index, step in enumerate(steps):
        last = wait_for_hangup and index == len(steps) - 1
        match step:
            case Pause(ms):
                parts.append(f'<pause milliseconds="{int(ms)}"/>')
            case Digit(digit):
                pcap = _pcap(PCAPS / DTMF_FILES[digit], stream)
                parts.append(f'<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>')
                if not last:
                    parts.append(f'<pause milliseconds="{DTMF_MS}"/>')
            case Voice(ms, pcap):
                parts.append(f'<nop><action><exec play_pcap_audio="{_pcap(pcap, stream)}"/></action></nop>')
                if not last:
                    parts.append(f'<pause milliseconds="{int(ms)}"/>')
    if wait_for_hangup:
        parts += [f'<recv request="BYE" timeout="{hangup_timeout_ms}"/>',
                  f"<send><![CDATA[\n{_OK_TO_BYE}\n]]></send>"]
    else:
        parts += ["<send retrans=\"500\"><![CDATA[\n"
                  + _IN_DIALOG.format(method="BYE", cseq=2, did=did, caller=caller) + "\n]]></send>",
                  '<recv response="200" crlf="true"/>']
    parts.append("</scenario>")
    return "\n".join(parts) + "\n"


def _pcap(path: Path, stream: _Stream | None) -> str:
    return escape(str(stream.copy(path) if stream is not None else path), {'"': "&quot;"})


async def call(sip_port: int, caller: str, did: str, steps: list[Step], *, wait_for_hangup: bool = False,
               timeout: float = 60.0) -> CallResult:
    """Place one call to the SIP server on 127.0.0.1:``sip_port`` and wait for sipp to finish."""
    with tempfile.TemporaryDirectory(prefix="sipp-") as work:
        path = Path(work) / "call.xml"
        path.write_text(scenario(caller, did, steps, wait_for_hangup=wait_for_hangup,
                                 hangup_timeout_ms=int(timeout * 1000), stream=_Stream(Path(work))))
        returncode, out = await _sipp(sip_port, path, timeout, "-mi", "127.0.0.1", "-mp", str(free_udp_range(4)),
                                      "-recv_timeout", "20000", "-trace_err", "-error_file",
                                      str(Path(work) / "errors.log"))
        errors = Path(work) / "errors.log"
        text = out[-2000:]
        if errors.exists():
            text += "\n" + errors.read_text(errors="replace")[-3000:]
        return CallResult(completed=returncode == 0, returncode=returncode, output=text)


async def _sipp(sip_port: int, scenario_path: Path, timeout: float, *options: str) -> tuple[int, str]:
    """Run one sipp scenario (``-m 1``) against 127.0.0.1:``sip_port`` in the scenario's folder; its exit code
    and output, killed if it outlives ``timeout`` by 15 s."""
    process = await asyncio.create_subprocess_exec(
        "sipp", f"127.0.0.1:{sip_port}", "-sf", str(scenario_path), "-m", "1", "-i", "127.0.0.1",
        "-p", str(free_udp_range(1)), "-timeout", f"{int(timeout)}s", "-timeout_error", "-nostdin", *options,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        cwd=scenario_path.parent)
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout + 15)
    except TimeoutError:
        process.kill()
        out, _ = await process.communicate()
    return process.returncode or 0, out.decode(errors="replace")


_REGISTER = """\
    REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
    Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
    From: <sip:{user}@[remote_ip]:[remote_port]>;tag=[pid]SIPpTag00[call_number]
    To: <sip:{user}@[remote_ip]:[remote_port]>
    Call-ID: [call_id]
    CSeq: {cseq} REGISTER
    Contact: <sip:{user}@[local_ip]:[local_port]>
    {authorization}Max-Forwards: 70
    Expires: {expires}
    Content-Length: 0
"""
STATUS_LINE = re.compile(r"^SIP/2\.0 (\d{3}) ", re.MULTILINE)


def register_scenario(user: str, password: str, expires: int) -> str:
    """REGISTER as phone ``user``; answer the digest challenge with ``password``; end on the final response."""
    if not NUMBER.match(user) or not password.isprintable() or " " in password:
        raise ValueError("a phone's user is its extension and its password has no spaces")
    challenged = _REGISTER.format(user=user, cseq=2, expires=expires, authorization=(
        f"[authentication username={user} password={password}]\n    "))
    return "\n".join([
        '<?xml version="1.0" encoding="ISO-8859-1" ?>', '<scenario name="hub agent phone">',
        f'<send retrans="500"><![CDATA[\n{_REGISTER.format(user=user, cseq=1, expires=expires, authorization="")}'
        "\n]]></send>",
        '<recv response="401" auth="true" optional="true" next="challenged"/>',
        '<recv response="403" optional="true" next="done"/>', '<recv response="404" next="done"/>',
        '<label id="challenged"/>',
        f'<send retrans="500"><![CDATA[\n{challenged}\n]]></send>',
        '<recv response="200" optional="true" next="done"/>', '<recv response="401" optional="true" next="done"/>',
        '<recv response="403" optional="true" next="done"/>', '<recv response="404" next="done"/>',
        '<label id="done"/>', "</scenario>", ""])


async def register(sip_port: int, user: str, password: str, *, expires: int = 300, timeout: float = 15.0) -> int:
    """Register SIP phone ``user`` with the server on 127.0.0.1:``sip_port`` as a desk phone does; the status
    of the server's final answer (200 registered; 401, 403 or 404 refused)."""
    with tempfile.TemporaryDirectory(prefix="sipp-reg-") as work:
        path, messages = Path(work) / "register.xml", Path(work) / "messages.log"
        path.write_text(register_scenario(user, password, expires))
        _, out = await _sipp(sip_port, path, timeout, "-trace_msg", "-message_file", str(messages))
        statuses = STATUS_LINE.findall(messages.read_text(errors="replace")) if messages.exists() else []
        if not statuses:
            raise AssertionError(f"no answer to REGISTER from {sip_port}: {out[-1500:]}")
        return int(statuses[-1])


_AGENT_REPLY = """\
    SIP/2.0 {status}
    [last_Via:]
    [last_From:]
    [last_To:];tag=[pid]SIPpTag01[call_number]
    [last_Call-ID:]
    {cseq}
    Contact: <sip:{user}@[local_ip]:[local_port]>
    {body}"""
_AGENT_BYE = """\
    BYE [next_url] SIP/2.0
    Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
    From: [$local_to];tag=[pid]SIPpTag01[call_number]
    To: [$remote_from]
    Call-ID: [call_id]
    CSeq: 2 BYE
    Contact: <sip:{user}@[local_ip]:[local_port]>
    Max-Forwards: 70
    Content-Length: 0
"""


def agent_scenario(user: str, *, answer: bool, ring_ms: int, talk_ms: int | None) -> str:
    """What a desk phone does with each call Asterisk puts to it (sipp's out-of-call scenario): ring for
    ``ring_ms``, then answer and hang up after ``talk_ms`` (None: wait for the other side's BYE), or, not
    answering, ring until Asterisk gives up (CANCEL). Asterisk's OPTIONS (qualify) are answered too."""
    def reply(status: str, cseq: str = "[last_CSeq:]", body: str = "Content-Length: 0\n") -> str:
        return f"<send><![CDATA[\n{_AGENT_REPLY.format(status=status, user=user, cseq=cseq, body=body)}\n]]></send>"
    parts = ['<?xml version="1.0" encoding="ISO-8859-1" ?>', '<scenario name="hub agent desk phone">',
             '<recv request="OPTIONS" optional="true" next="options"/>',
             '<recv request="INVITE" rrs="true">' + (
                 # Kept for the phone's own BYE (sipp refuses a variable that is set but never used).
                 '<action><ereg regexp=".*" search_in="hdr" header="From:" assign_to="remote_from"/>'
                 '<ereg regexp=".*" search_in="hdr" header="To:" assign_to="local_to"/></action>'
                 if answer and talk_ms is not None else "") + '</recv>',
             reply("180 Ringing")]
    if answer:
        parts += [f'<pause milliseconds="{int(ring_ms)}"/>',
                  reply("200 OK", body=_SDP.format(party="agent")).replace("<send>", '<send retrans="500">'),
                  '<recv request="ACK"/>']
        if talk_ms is None:
            parts += ['<recv request="BYE"/>', reply("200 OK")]
        else:
            parts += [f'<pause milliseconds="{int(talk_ms)}"/>',
                      f'<send retrans="500"><![CDATA[\n{_AGENT_BYE.format(user=user)}\n]]></send>',
                      '<recv response="200" crlf="true"/>']
    else:
        parts += ['<recv request="CANCEL"/>', reply("200 OK"),
                  reply("487 Request Terminated", cseq="CSeq: [cseq] INVITE"), '<recv request="ACK"/>']
    parts += ['<nop next="end"/>', '<label id="options"/>', reply("200 OK"), '<label id="end"/>', "</scenario>", ""]
    return "\n".join(parts)


async def _stop(process: asyncio.subprocess.Process | None, work: tempfile.TemporaryDirectory[str]) -> None:
    """Stop a sipp that runs until told, and remove its folder."""
    if process is not None and process.returncode is None:
        process.kill()
        await process.wait()
    work.cleanup()


class DeskPhone:
    """An agent's desk phone played by sipp: registers as ``user`` and takes each call Asterisk puts to it as
    :func:`agent_scenario` says, until the test leaves the ``async with``. Without a ``password`` it is a
    resident's phone behind the carrier instead: it registers nowhere and answers on ``port`` (no
    ``sip_port``)."""

    def __init__(self, sip_port: int | None, user: str, password: str | None, *, answer: bool = True,
                 ring_ms: int = 1000, talk_ms: int | None = None, port: int | None = None) -> None:
        self.sip_port, self.user, self.password = sip_port, user, password
        self.port = port or free_udp_range(1)
        self._scenario = agent_scenario(user, answer=answer, ring_ms=ring_ms, talk_ms=talk_ms)
        self._work = tempfile.TemporaryDirectory(prefix="sipp-phone-")
        self.messages = Path(self._work.name) / "messages.log"
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> DeskPhone:
        work = Path(self._work.name)
        (work / "phone.xml").write_text(self._scenario)
        if self.password is None:  # a resident's phone: sipp as a server, one call
            where = ["-sf", str(work / "phone.xml")]
        else:
            # Registered, the phone stays up (a long pause) to take calls: each INVITE is an out-of-call message.
            (work / "register.xml").write_text(register_scenario(self.user, self.password, 300).replace(
                '<label id="done"/>', '<label id="done"/>\n<pause milliseconds="600000"/>'))
            where = [f"127.0.0.1:{self.sip_port}", "-sf", str(work / "register.xml"), "-oocsf", str(work / "phone.xml")]
        self._process = await asyncio.create_subprocess_exec(
            "sipp", *where, "-m", "1", "-i", "127.0.0.1", "-p", str(self.port), "-mi", "127.0.0.1",
            "-mp", str(free_udp_range(4)), "-rtp_echo", "-nostdin", "-trace_msg", "-message_file", str(self.messages),
            stdin=asyncio.subprocess.DEVNULL, stdout=(work / "out.log").open("wb"), stderr=asyncio.subprocess.STDOUT,
            cwd=work)
        deadline = asyncio.get_running_loop().time() + 15
        while self.password is not None and (
                "CSeq: 2 REGISTER" not in self.log() or STATUS_LINE.findall(self.log())[-1:] != ["200"]):
            if self._process.returncode is not None or asyncio.get_running_loop().time() > deadline:
                output = (work / "out.log").read_text(errors="replace")[-1500:]
                raise AssertionError(f"phone {self.user} did not register: {self.log()[-1500:]}\n{output}")
            await asyncio.sleep(0.1)
        return self

    def log(self) -> str:
        """The SIP messages the phone sent and received so far."""
        return self.messages.read_text(errors="replace") if self.messages.exists() else ""

    async def __aexit__(self, *exc: object) -> None:
        await _stop(self._process, self._work)


INVITED = re.compile(r"^INVITE sip:(\d+)@", re.MULTILINE)
TRACED = re.compile(r"^-{20,} ", re.MULTILINE)  # sipp's -trace_msg: a line of dashes and the time before each message


def residents_scenario(busy: str, no_answer: str, opt_out: str, answer_ms: int = 300, key_ms: int = 800) -> str:
    """What the residents behind the carrier do with each call (sipp as a server, one scenario for all): numbers
    matching the regular expression ``busy`` are busy (486), ``no_answer`` ring until the caller gives up
    (CANCEL), ``opt_out`` answer and press 9; every other number answers and presses 1. Each answered call waits
    for the other side's BYE. The expressions match the dialled number (the Request-URI's user part)."""
    def reply(status: str, cseq: str = "[last_CSeq:]", body: str = "Content-Length: 0\n", retrans: bool = False) -> str:
        send = '<send retrans="500">' if retrans else "<send>"
        text = _AGENT_REPLY.format(status=status, user="resident", cseq=cseq, body=body)
        return f"{send}<![CDATA[\n{text}\n]]></send>"

    def answer(digit: str) -> list[str]:
        pcap = escape(str(PCAPS / DTMF_FILES[digit]), {'"': "&quot;"})
        return [f'<pause milliseconds="{answer_ms}"/>', reply("200 OK", body=_SDP.format(party="resident"),
                                                              retrans=True),
                '<recv request="ACK"/>', f'<pause milliseconds="{key_ms}"/>',
                f'<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>',
                '<recv request="BYE"/>', reply("200 OK"), '<nop next="end"/>']

    return "\n".join([
        '<?xml version="1.0" encoding="ISO-8859-1" ?>', '<scenario name="residents behind the carrier">',
        '<recv request="INVITE" rrs="true"><action>'
        f'<ereg regexp="^INVITE sip:{busy}@" search_in="msg" check_it="false" assign_to="busy"/>'
        f'<ereg regexp="^INVITE sip:{no_answer}@" search_in="msg" check_it="false" assign_to="silent"/>'
        f'<ereg regexp="^INVITE sip:{opt_out}@" search_in="msg" check_it="false" assign_to="refuses"/>'
        "</action></recv>",
        '<nop test="busy" next="busy"/>', '<nop test="silent" next="silent"/>',
        '<nop test="refuses" next="refuses"/>',
        reply("180 Ringing"), *answer("1"),
        '<label id="refuses"/>', reply("180 Ringing"), *answer("9"),
        '<label id="busy"/>', reply("486 Busy Here", cseq="CSeq: [cseq] INVITE"), '<recv request="ACK"/>',
        '<nop next="end"/>',
        '<label id="silent"/>', reply("180 Ringing"), '<recv request="CANCEL"/>', reply("200 OK"),
        reply("487 Request Terminated", cseq="CSeq: [cseq] INVITE"), '<recv request="ACK"/>',
        '<label id="end"/>', "</scenario>", ""])


class Residents:
    """Residents' phones behind the carrier's trunk, played by one sipp server on ``port`` (see
    :func:`residents_scenario`), up to ``max_calls`` calls at once, until the test leaves the ``async with``."""

    def __init__(self, busy: str, no_answer: str, opt_out: str, *, max_calls: int = 100) -> None:
        self.port = free_udp_range(1)
        self._scenario = residents_scenario(busy, no_answer, opt_out)
        self._max_calls = max_calls
        self._work = tempfile.TemporaryDirectory(prefix="sipp-residents-")
        self.messages = Path(self._work.name) / "messages.log"
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Residents:
        work = Path(self._work.name)
        (work / "residents.xml").write_text(self._scenario)
        self._process = await asyncio.create_subprocess_exec(
            "sipp", "-sf", str(work / "residents.xml"), "-i", "127.0.0.1", "-p", str(self.port), "-mi", "127.0.0.1",
            "-mp", str(free_udp_range(4)), "-l", str(self._max_calls), "-nostdin", "-trace_msg", "-message_file",
            str(self.messages), "-trace_err", "-error_file", str(work / "errors.log"),
            stdin=asyncio.subprocess.DEVNULL, stdout=(work / "out.log").open("wb"), stderr=asyncio.subprocess.STDOUT,
            cwd=work)
        await asyncio.sleep(0.3)
        if self._process.returncode is not None:
            raise AssertionError(f"sipp residents did not start: {self.output()}")
        return self

    def invites(self) -> Counter[str]:
        """How often each number was called (INVITEs received, retransmissions of one call counted once)."""
        text = self.messages.read_text(errors="replace") if self.messages.exists() else ""
        calls: dict[str, str] = {}
        for block in text.split("\n\n"):
            number = INVITED.search(block)
            call_id = re.search(r"^Call-ID:\s*(\S+)", block, re.MULTILINE | re.IGNORECASE)
            if number and call_id:
                calls[call_id.group(1)] = number.group(1)
        return Counter(calls.values())

    def calls(self) -> list[tuple[datetime, datetime | None]]:
        """Each call as the residents' phones saw it: from its INVITE until the BYE or CANCEL that ended it, or
        the busy answer (None: not ended)."""
        text = self.messages.read_text(errors="replace") if self.messages.exists() else ""
        spans: dict[str, list[datetime | None]] = {}
        for block in TRACED.split(text)[1:]:
            stamp, _, message = block.partition("\n")
            call_id = re.search(r"^Call-ID:\s*(\S+)", message, re.MULTILINE | re.IGNORECASE)
            first = next((line for line in message.splitlines()[1:] if line.strip()), "")
            if call_id is None:
                continue
            at = datetime.strptime(stamp.strip(), "%Y-%m-%d %H:%M:%S.%f")
            span = spans.setdefault(call_id.group(1), [None, None])
            received = "message received" in message.split("\n", 1)[0]
            if received and first.startswith("INVITE ") and span[0] is None:
                span[0] = at
            elif span[1] is None and ((received and first.startswith(("BYE ", "CANCEL ")))
                                      or (not received and first.startswith("SIP/2.0 486"))):
                span[1] = at
        return [(start, end) for start, end in spans.values() if start is not None]

    def output(self) -> str:
        work = Path(self._work.name)
        return "\n".join(path.read_text(errors="replace")[-2000:] for path in (work / "out.log", work / "errors.log")
                         if path.exists())

    async def __aexit__(self, *exc: object) -> None:
        await _stop(self._process, self._work)
