"""Web chat on the utility's own site: ``/widget.js``, a visitor WebSocket, file upload."""

from channels.webchat.adapter import WebChatAdapter

ADAPTER = WebChatAdapter
