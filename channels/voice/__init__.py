"""The phone channel on Asterisk's ARI: see :mod:`channels.voice.adapter`."""

from channels.voice.adapter import VoiceAdapter

ADAPTER = VoiceAdapter
