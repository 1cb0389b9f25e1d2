"""Links that let a resident see their own things (their work orders, a survey) without an account.

A resident is a channel identity (WeChat openid, web-chat visitor id); whoever proved it (WeChat's OAuth,
the widget's visitor token) gets a link with this signed, expiring token naming it.

A satisfaction survey's link is never stored: its token is derived from the survey's id with the hub's secret,
and only what the resident receives carries it (the outbound send, the widget's history). Staff reading the
notice see :data:`SURVEY_LINK` where the link goes, and the survey's id in the message's payload.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

SALT = "resident-pages"
TOKEN_MAX_AGE = 24 * 3600
SURVEY_SALT = b"callback-survey"
SURVEY_LINK = "〔评价链接〕"  # what staff read in a notice where the resident got their survey's link


def resident_token(secret_key: str, channel: str, external_id: str) -> str:
    return URLSafeTimedSerializer(secret_key, salt=SALT).dumps([channel, external_id])


def resident_of(secret_key: str, token: str) -> tuple[str, str] | None:
    """The (channel, external id) a token names, or None if it is forged or expired."""
    try:
        channel, external_id = URLSafeTimedSerializer(secret_key, salt=SALT).loads(token, max_age=TOKEN_MAX_AGE)
    except (BadSignature, ValueError, TypeError):
        return None
    return str(channel), str(external_id)


def survey_token(secret_key: str, survey_id: int) -> str:
    """The token of a survey's link (43 URL-safe characters); only its hash is stored, with the survey."""
    digest = hmac.new(secret_key.encode(), SURVEY_SALT + b":" + str(survey_id).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def survey_reference(survey_id: int) -> dict[str, Any]:
    """What a stored notice keeps of its survey (in ``payload["survey"]``): the id, not the link."""
    return {"id": survey_id}


def with_survey_link(text: str | None, payload: dict[str, Any], base_url: str, secret_key: str,
                     ) -> tuple[str | None, dict[str, Any]]:
    """A notice as its resident receives it: the survey's link in the text and in ``payload["survey"]["url"]``."""
    survey = payload.get("survey")
    if not isinstance(survey, dict) or not isinstance(survey.get("id"), int):
        return text, payload
    url = f"{base_url}/survey?t={survey_token(secret_key, survey['id'])}"
    return (text.replace(SURVEY_LINK, url) if text else text), {**payload, "survey": {"url": url}}
