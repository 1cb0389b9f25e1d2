"""The WeChat official account channel (微水务): see :mod:`channels.wechat.adapter`."""

from channels.wechat.adapter import WeChatAdapter

ADAPTER = WeChatAdapter
