"""Logs never carry residents' phone or ID numbers, nor secrets; JSON logs are one object per line."""

from __future__ import annotations

import json
import logging

import pytest

from router.logs import configure_logging, get_logger, mask_personal_data


@pytest.mark.parametrize(("text", "masked"), [
    ("居民电话13812345678报修", "居民电话138****5678报修"),
    ("+86 15900001111", "+86 159****1111"),
    ("身份证320583199001011234", "身份证320583********1234"),
    ("身份证32058319900101123X", "身份证320583********123X"),
    ("户号 0012345678 账单", "户号 0012345678 账单"),  # account numbers stay readable
    ("工单 GD20261122-0001", "工单 GD20261122-0001"),
])
def test_mask_personal_data(text: str, masked: str) -> None:
    assert mask_personal_data(text) == masked


def test_json_log_lines_are_masked(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json=True)
    try:
        get_logger("test").info("resident called", phone="13812345678", password="hunter22", note="回拨13900002222")
        line = capsys.readouterr().err.strip().splitlines()[-1]
    finally:
        configure_logging("WARNING")
    record = json.loads(line)
    assert record["event"] == "resident called" and record["level"] == "info"
    assert record["phone"] == "138****5678" and record["note"] == "回拨139****2222"
    assert record["password"] == "***"
    assert "13812345678" not in line and "hunter22" not in line


def test_standard_library_loggers_are_masked_too(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json=True)
    try:
        logging.getLogger("aiohttp.server").warning("error from 13812345678")
        line = capsys.readouterr().err.strip().splitlines()[-1]
    finally:
        configure_logging("WARNING")
    assert "138****5678" in line and "13812345678" not in line
