"""Where a stored file is fetched, and the signed links that let a resident fetch one without a staff session.

Staff fetch ``/files/{id}`` with their session, as far as :mod:`router.access` lets them. A resident gets a link
naming one file and when it stops working, signed with the hub's secret (salted for this purpose only), never a
token that names the resident: whoever sees such a link in a log or a forwarded chat gets that one file, for a
while. The widget's links last minutes (it receives fresh ones whenever it loads the conversation); a link in a
WeChat message lasts a day, because the resident may open it hours after it was sent.
"""

from __future__ import annotations

import time
from urllib.parse import urlencode

from itsdangerous import BadSignature, URLSafeSerializer

SALT = "stored-file-link"
PATH = "/files/"
WIDGET_LINK_SECONDS = 10 * 60
MESSAGE_LINK_SECONDS = 24 * 3600


def file_path(file_id: str) -> str:
    """The address of a stored file (for staff, with their session)."""
    return f"{PATH}{file_id}"


def signed_file_link(secret_key: str, file_id: str, lifetime_seconds: int) -> str:
    """The file's address with a signature that opens it for ``lifetime_seconds``."""
    expires = int(time.time()) + lifetime_seconds
    signature = URLSafeSerializer(secret_key, salt=SALT).dumps([file_id, expires])
    return f"{file_path(file_id)}?{urlencode({'s': signature})}"


def link_opens(secret_key: str, file_id: str, signature: str) -> bool:
    """Whether ``signature`` is ours, names this file and has not expired."""
    try:
        named, expires = URLSafeSerializer(secret_key, salt=SALT).loads(signature)
    except (BadSignature, ValueError, TypeError):
        return False
    return named == file_id and isinstance(expires, int) and expires > time.time()
