"""SMS: texts to and from residents over the carrier's SMPP 3.4 interface."""

from channels.sms.adapter import SmsAdapter

ADAPTER = SmsAdapter
