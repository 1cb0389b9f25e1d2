"""What the stand-in bot offers in the tests of offered choices: the leak location as buttons."""

from __future__ import annotations

WHERE = [{"title": "路面", "payload": '/inform{"detail":"路面"}'},
         {"title": "小区内", "payload": '/inform{"detail":"小区内"}'},
         {"title": "户内", "payload": '/inform{"detail":"户内"}'}]
ASKED = [{"recipient_id": "x", "text": "请问漏水的位置是?", "buttons": WHERE}]
PLAIN = [{"recipient_id": "x", "text": "好的,已记录。"}]
