"""Shuiwu Hub router: conversations, bot-or-human routing, agent API and the hub process."""
