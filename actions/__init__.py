"""The bot's custom actions (rasa-sdk): ``python -m actions.server`` (the hub starts it) loads every module here."""
