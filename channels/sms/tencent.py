"""Tencent Cloud SMS (短信 API 3.0, version 2021-01-11) as the SMS channel's provider.

Sending goes through Tencent's own SDK (its asyncio client signs every request with TC3-HMAC-SHA256). Cloud SMS
in mainland China sends approved templates only: every text goes as the one variable of the template
``HUB_SMS_TENCENT_TEMPLATE_ID`` (approved as, say, ``您好,{1}``), under the approved signature
``HUB_SMS_TENCENT_SIGN_NAME``. A code Tencent answers with decides whether a send is tried again (its internal
errors, rate limits, a suspended or unfunded account, a clock out of step) or not (a wrong number, a refused
template or signature, a number's daily limit).

Tencent pushes delivery reports and residents' replies to the hub (短信下发状态通知, 短信回复): the URLs set in
its console are ``/sms/tencent/{token}/status`` and ``/sms/tencent/{token}/reply``, with the secret
``HUB_SMS_CALLBACK_TOKEN`` in the path (Tencent signs neither).
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from aiohttp import web
from tencentcloud.common.credential import Credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sms.v20210111 import models
from tencentcloud.sms.v20210111.sms_client_async import SmsClient

from channels.base import ChannelSendError
from channels.sms.provider import Receipt, ReceiptHandler, Texted, TextHandler
from router.logs import get_logger

log = get_logger(__name__)

OK = {"result": 0, "errmsg": "OK"}
RETRYABLE_PREFIXES = ("InternalError", "RequestLimitExceeded", "AuthFailure.SignatureExpire",
                      "LimitExceeded.GlobalSmsSendingRateLimit", "LimitExceeded.DeliveryFrequencyLimit",
                      "LimitExceeded.PhoneNumberThirtySecondLimit", "LimitExceeded.PhoneNumberOneHourLimit",
                      "FailedOperation.InsufficientBalanceInSmsPackage",
                      "UnauthorizedOperation.ServiceSuspendDueToArrears", "ServerNetworkError", "ClientNetworkError")


def refusal(code: str, message: str) -> ChannelSendError:
    return ChannelSendError(f"腾讯云短信: {code} {message}".strip(), retryable=code.startswith(RETRYABLE_PREFIXES))


@dataclass(frozen=True, slots=True)
class TencentAccount:
    secret_id: str
    secret_key: str
    sdk_app_id: str
    sign_name: str
    template_id: str  # approved with one variable, {1}: the text
    endpoint: str = "https://sms.tencentcloudapi.com"
    region: str = "ap-guangzhou"
    callback_token: str = ""
    timeout_seconds: float = 10.0


class TencentSms:
    def __init__(self, account: TencentAccount, on_text: TextHandler, on_receipt: ReceiptHandler) -> None:
        self.account = account
        self._on_text, self._on_receipt = on_text, on_receipt
        address = urlsplit(account.endpoint)
        profile = ClientProfile(httpProfile=HttpProfile(protocol=address.scheme or "https", endpoint=address.netloc,
                                                        reqTimeout=int(account.timeout_seconds)))
        self._client = SmsClient(Credential(account.secret_id, account.secret_key), account.region, profile)

    def healthy(self) -> bool | None:
        return None  # nothing held open: each send tells

    def start(self) -> None:
        return None

    async def stop(self) -> None:
        await self._client.close()

    async def submit(self, phone: str, text: str, reference: int) -> list[str]:
        request = models.SendSmsRequest()
        request.PhoneNumberSet = [phone]
        request.SmsSdkAppId = self.account.sdk_app_id
        request.SignName = self.account.sign_name
        request.TemplateId = self.account.template_id
        request.TemplateParamSet = [text]
        request.SessionContext = str(reference)
        try:
            response = await self._client.SendSms(request)
        except TencentCloudSDKException as exc:
            raise refusal(exc.get_code() or "", exc.get_message() or "") from exc
        except httpx.HTTPError as exc:
            raise ChannelSendError(f"腾讯云短信无应答 ({type(exc).__name__})", retryable=True) from exc
        [status] = response.SendStatusSet
        if status.Code != "Ok":
            raise refusal(status.Code, status.Message)
        return [status.SerialNo]

    # ---------------------------------------------------------------------------------------------- web hooks

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/sms/tencent/{token}/status", self._status),
                web.post("/sms/tencent/{token}/reply", self._reply)]

    def _known(self, request: web.Request) -> bool:
        token = self.account.callback_token
        return bool(token) and hmac.compare_digest(request.match_info["token"].encode(), token.encode())

    async def _body(self, request: web.Request) -> Any:
        if not self._known(request):
            log.warning("sms: a Tencent callback with a wrong token", path=request.path)
            raise web.HTTPNotFound(text=json.dumps({"result": 1, "errmsg": "not found"}),
                                   content_type="application/json")
        try:
            return await request.json()
        except ValueError:
            log.warning("sms: a Tencent callback that is not JSON")
            raise web.HTTPBadRequest(text=json.dumps({"result": 1, "errmsg": "body is not JSON"}),
                                     content_type="application/json") from None

    async def _status(self, request: web.Request) -> web.Response:
        reports = await self._body(request)
        if not isinstance(reports, list) or not all(isinstance(r, dict) and isinstance(r.get("sid"), str)
                                                    for r in reports):
            return web.json_response({"result": 1, "errmsg": "a JSON array of reports with sid"}, status=400)
        for report in reports:
            delivered = report.get("report_status") == "SUCCESS"
            status = "success" if delivered else (
                f"短信未送达 ({report.get('errmsg', '')} {report.get('description', '')})".replace(" )", ")"))
            await self._on_receipt(Receipt(report["sid"], status))
        return web.json_response(OK)

    async def _reply(self, request: web.Request) -> web.Response:
        reply = await self._body(request)
        if not (isinstance(reply, dict) and isinstance(reply.get("mobile"), str)
                and isinstance(reply.get("text"), str) and isinstance(reply.get("time"), int)):
            return web.json_response({"result": 1, "errmsg": "mobile, text and time are required"}, status=400)
        nation = str(reply.get("nationcode") or "86")
        await self._on_text(Texted(f"+{nation}{reply['mobile']}", reply.get("extend") or "", reply["text"],
                                   datetime.fromtimestamp(reply["time"], UTC)))
        return web.json_response(OK)
