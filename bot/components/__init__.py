"""Rasa graph components of this bot, referenced from config.yml (Rasa runs with bot/ as its working directory)."""
