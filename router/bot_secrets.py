"""The secrets the hub shares with the bot's processes, each derived from the hub's secret key unless set.

Three distinct values, so that one leaking does not open the others: the hub API token the action server
calls the hub with, the token the hub (and only the hub) calls Rasa with, and the secret Rasa calls the
action server with.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from pydantic import SecretStr


def derived_secret(secret_key: str, purpose: bytes) -> str:
    """A value stable for a given hub secret and purpose, from which neither can be recovered."""
    digest = hmac.new(secret_key.encode(), purpose, hashlib.sha256).digest()
    return "shw_" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def actions_token(secret_key: str) -> str:
    """The action server's bearer token for the hub's API: stored only as a digest in the hub."""
    return derived_secret(secret_key, b"shuiwu action server")


def rasa_token(configured: SecretStr, secret_key: str) -> str:
    """What Rasa requires on its HTTP API and on the webhook the hub sends residents' messages to."""
    return configured.get_secret_value() or derived_secret(secret_key, b"shuiwu rasa server")


def actions_secret(configured: SecretStr, secret_key: str) -> str:
    """What the action server requires on Rasa's calls to run an action."""
    return configured.get_secret_value() or derived_secret(secret_key, b"shuiwu action server webhook")
