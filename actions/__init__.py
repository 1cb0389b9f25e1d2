"""The bot's custom actions (rasa-sdk): ``python -m rasa_sdk --actions actions`` loads every module here."""
