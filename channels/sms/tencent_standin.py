"""A stand-in for Tencent Cloud SMS (API 3.0, ``SendSms`` of version 2021-01-11), for the tests and the demo.

It checks each request as Tencent does: the TC3-HMAC-SHA256 ``Authorization`` recomputed from the documented
algorithm (``AuthFailure.SignatureFailure``), the SecretId (``AuthFailure.SecretIdNotFound``), the timestamp
within five minutes (``AuthFailure.SignatureExpire``), the SDK application, the approved signature and template
and their variables, every number (``InvalidParameterValue.IncorrectPhoneNumber`` for one number of a set);
answers with Tencent's JSON (``Response.SendStatusSet`` or ``Response.Error``, ``RequestId``) as
``application/json``; shows each text on the handset as 【签名】 and the template filled in; then pushes the
delivery reports (短信下发状态通知) to ``status_url`` and, with :meth:`StandInTencentSms.reply`, a resident's
reply (短信回复) to ``reply_url``. Codes from the Tencent SDK's own list.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web
from tencentcloud.sms.v20210111 import errorcodes

from router.logs import get_logger

log = get_logger(__name__)

AUTHORIZATION = re.compile(
    r"^TC3-HMAC-SHA256 Credential=(?P<id>[^/]+)/(?P<date>\d{4}-\d{2}-\d{2})/(?P<service>[a-z]+)/tc3_request, "
    r"SignedHeaders=(?P<headers>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})$")
MAINLAND = re.compile(r"^\+861[3-9]\d{9}$")
SKEW_SECONDS = 300


@dataclass
class Shown:
    text: str
    serial_no: str


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def tc3_signature(secret_key: str, date: str, service: str, string_to_sign: str) -> str:
    """The signature of ``string_to_sign`` (Tencent's signature v3, step 3)."""
    signing = _hmac(_hmac(_hmac(f"TC3{secret_key}".encode(), date), service), "tc3_request")
    return hmac.new(signing, string_to_sign.encode(), hashlib.sha256).hexdigest()


class StandInTencentSms:
    def __init__(self, secret_id: str, secret_key: str, sdk_app_id: str, sign_name: str,
                 templates: dict[str, str], *, undeliverable: str | None = None, report_delay: float = 0.05) -> None:
        self.secret_id, self.secret_key, self.sdk_app_id, self.sign_name = secret_id, secret_key, sdk_app_id, sign_name
        self.templates = templates  # approved: id → text with {1}, {2} …
        self.undeliverable = re.compile(undeliverable) if undeliverable else None
        self.report_delay = report_delay
        self.status_url = self.reply_url = ""
        self.handsets: defaultdict[str, list[Shown]] = defaultdict(list)
        self.requests = 0
        self.reports: list[dict[str, Any]] = []  # delivery reports pushed, and the hub's answers
        self._failures: list[tuple[str, str]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self.endpoint = ""

    async def start(self, port: int = 0) -> StandInTencentSms:
        app = web.Application()
        app.router.add_post("/", self._api)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.endpoint = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> StandInTencentSms:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def fail_next(self, code: str, message: str = "", count: int = 1) -> None:
        """Answer the next ``count`` requests with ``Response.Error`` ``code``."""
        self._failures += [(code, message or code)] * count

    # ---------------------------------------------------------------------------------------------- the API

    @staticmethod
    def _answer(body: dict[str, Any]) -> web.Response:
        body["RequestId"] = str(uuid.uuid4())
        return web.Response(body=json.dumps({"Response": body}, ensure_ascii=False).encode(),
                            content_type="application/json")

    def _error(self, code: str, message: str) -> web.Response:
        log.info("tencent sms stand-in: refused", code=code)
        return self._answer({"Error": {"Code": code, "Message": message}})

    def _refusal(self, request: web.Request, body: bytes) -> tuple[str, str] | None:
        """Why the request is refused before its parameters are read (API 3.0's common errors), or None."""
        match = AUTHORIZATION.match(request.headers.get("Authorization", ""))
        if match is None:
            return "AuthFailure.InvalidAuthorization", "Authorization 头部格式错误。"
        if match["id"] != self.secret_id:
            return "AuthFailure.SecretIdNotFound", "密钥不存在。"
        try:
            timestamp = int(request.headers["X-TC-Timestamp"])
        except (KeyError, ValueError):
            return errorcodes.MISSINGPARAMETER, "缺少参数 X-TC-Timestamp。"
        if abs(time.time() - timestamp) > SKEW_SECONDS:
            return "AuthFailure.SignatureExpire", "签名过期,Timestamp 与服务器时间相差不得超过五分钟。"
        names = match["headers"].split(";")
        canonical_headers = "".join(f"{name}:{self._header(request, name)}\n" for name in names)
        canonical_request = "\n".join([request.method, request.path, request.query_string, canonical_headers,
                                       match["headers"], hashlib.sha256(body).hexdigest()])
        date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
        string_to_sign = "\n".join(["TC3-HMAC-SHA256", str(timestamp), f"{date}/{match['service']}/tc3_request",
                                    hashlib.sha256(canonical_request.encode()).hexdigest()])
        expected = tc3_signature(self.secret_key, date, match["service"], string_to_sign)
        if (match["date"] != date or match["service"] != "sms" or "host" not in names
                or not hmac.compare_digest(expected, match["signature"])):
            return "AuthFailure.SignatureFailure", "请求签名验证失败,请检查您的签名计算是否正确。"
        if request.headers.get("X-TC-Action") != "SendSms" or request.headers.get("X-TC-Version") != "2021-01-11":
            return "InvalidAction", "接口不存在。"
        return None

    @staticmethod
    def _header(request: web.Request, name: str) -> str:
        value = request.headers.get(name, "").strip()
        return value.lower() if name == "content-type" else value

    async def _api(self, request: web.Request) -> web.Response:
        self.requests += 1
        body = await request.read()
        refused = self._refusal(request, body)
        if refused is None and self._failures:
            refused = self._failures.pop(0)
        if refused is not None:
            return self._error(*refused)
        try:
            params = json.loads(body)
            numbers, template_id = params["PhoneNumberSet"], str(params["TemplateId"])
            values = [str(v) for v in params.get("TemplateParamSet") or []]
            assert isinstance(numbers, list) and all(isinstance(n, str) for n in numbers)
        except (ValueError, KeyError, TypeError, AssertionError):
            return self._error(errorcodes.INVALIDPARAMETER_INVALIDPARAMETERS, "参数格式错误。")
        if not numbers:
            return self._error(errorcodes.MISSINGPARAMETER_EMPTYPHONENUMBERSET, "传入的号码列表为空。")
        if len(numbers) > 200:
            return self._error(errorcodes.LIMITEXCEEDED_PHONENUMBERCOUNTLIMIT, "单次提交的号码数超过200个。")
        if str(params.get("SmsSdkAppId")) != self.sdk_app_id:
            return self._error(errorcodes.INVALIDPARAMETERVALUE_SDKAPPIDNOTEXIST, "SdkAppId 不存在。")
        if params.get("SignName") != self.sign_name:
            return self._error(errorcodes.FAILEDOPERATION_SIGNATUREINCORRECTORUNAPPROVED,
                               "签名格式错误或者签名未审批。")
        template = self.templates.get(template_id)
        if template is None:
            return self._error(errorcodes.FAILEDOPERATION_TEMPLATEINCORRECTORUNAPPROVED, "模板未审批或内容不匹配。")
        if len(values) != len(re.findall(r"\{\d+\}", template)):
            return self._error(errorcodes.FAILEDOPERATION_TEMPLATEPARAMSETNOTMATCHAPPROVEDTEMPLATE,
                               "请求内容与审核通过的模板内容不匹配。")
        text = f"【{self.sign_name}】" + re.sub(r"\{(\d+)\}", lambda m: values[int(m[1]) - 1], template)
        statuses = []
        for number in numbers:
            if not MAINLAND.match(number):
                statuses.append({"SerialNo": "", "PhoneNumber": number, "Fee": 0,
                                 "SessionContext": params.get("SessionContext", ""),
                                 "Code": errorcodes.INVALIDPARAMETERVALUE_INCORRECTPHONENUMBER,
                                 "Message": "手机号格式错误。", "IsoCode": ""})
                continue
            serial = f"2433:{uuid.uuid4().int % 10**28:028d}"
            fee = -(-len(text) // 67) if len(text) > 70 else 1
            statuses.append({"SerialNo": serial, "PhoneNumber": number, "Fee": fee,
                             "SessionContext": params.get("SessionContext", ""), "Code": "Ok",
                             "Message": "send success", "IsoCode": "CN"})
            self._spawn(self._deliver(number, text, serial))
        return self._answer({"SendStatusSet": statuses})

    # ------------------------------------------------------------------------------- handsets and web hooks

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, number: str, text: str, serial: str) -> None:
        await asyncio.sleep(self.report_delay)
        failed = self.undeliverable is not None and bool(self.undeliverable.fullmatch(number.lstrip("+")))
        if not failed:
            self.handsets[number.removeprefix("+86")].append(Shown(text, serial))
        report = {"user_receive_time": datetime.now(UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S"),
                  "nationcode": "86", "mobile": number.removeprefix("+86"),
                  "report_status": "FAIL" if failed else "SUCCESS", "errmsg": "MK:0005" if failed else "DELIVRD",
                  "description": "用户手机不在服务区" if failed else "用户短信送达成功", "sid": serial}
        if self.status_url:
            await self._push(self.status_url, [report])

    async def _push(self, url: str, body: Any) -> dict[str, Any]:
        async with aiohttp.ClientSession() as http, http.post(url, json=body) as response:
            answer = {"status": response.status, "body": await response.text()}
        self.reports.append({"sent": body, "answer": answer})
        return answer

    async def reply(self, mobile: str, text: str) -> dict[str, Any]:
        """A resident answers a text: Tencent's 短信回复 push to ``reply_url``; the hub's answer."""
        return await self._push(self.reply_url, {"extend": "", "mobile": mobile, "nationcode": "86",
                                                 "sign": self.sign_name, "text": text, "time": int(time.time())})
