"""What a resident may upload through the widget, decided by the file's content, not its name."""

from __future__ import annotations

from dataclasses import dataclass

import filetype

# Kinds by their content signature; a name's extension is never trusted on its own.
ALLOWED_KINDS = {
    "image/jpeg": "image",
    "image/png": "image",
    "image/gif": "image",
    "image/webp": "image",
    "application/pdf": "file",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "file",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "file",
}


@dataclass(frozen=True, slots=True)
class UploadKind:
    content_type: str
    message_type: str  # "image" or "file"


def classify(data: bytes, name: str) -> UploadKind | None:
    """The upload's real type, or None if it is not one residents may send."""
    kind = filetype.guess(data)
    if kind is not None:
        message_type = ALLOWED_KINDS.get(kind.mime)
        return UploadKind(kind.mime, message_type) if message_type else None
    if name.lower().endswith(".txt") and b"\x00" not in data:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return UploadKind("text/plain; charset=utf-8", "file")
    return None


def safe_name(name: str) -> str:
    """A display name without path parts or control characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(ch for ch in base if ch.isprintable()).strip()
    return cleaned[:200] or "file"
