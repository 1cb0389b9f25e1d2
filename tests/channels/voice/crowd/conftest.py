"""The crowd's Asterisk: media ports for some eighty call legs at once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.channels.voice.conftest import running_asterisk
from tests.support.asterisk import Asterisk


@pytest.fixture(scope="package")
def asterisk() -> Iterator[Asterisk]:
    with running_asterisk(rtp_ports=400) as instance:
        yield instance
