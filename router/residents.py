"""Links that let a resident see their own things (their work orders) without an account.

A resident is a channel identity (WeChat openid, web-chat visitor id); whoever proved it (WeChat's OAuth,
the widget's visitor token) gets a link with this signed, expiring token naming it.
"""

from __future__ import annotations

from itsdangerous import BadSignature, URLSafeTimedSerializer

SALT = "resident-pages"
TOKEN_MAX_AGE = 24 * 3600


def resident_token(secret_key: str, channel: str, external_id: str) -> str:
    return URLSafeTimedSerializer(secret_key, salt=SALT).dumps([channel, external_id])


def resident_of(secret_key: str, token: str) -> tuple[str, str] | None:
    """The (channel, external id) a token names, or None if it is forged or expired."""
    try:
        channel, external_id = URLSafeTimedSerializer(secret_key, salt=SALT).loads(token, max_age=TOKEN_MAX_AGE)
    except (BadSignature, ValueError, TypeError):
        return None
    return str(channel), str(external_id)
