"""The commands an operator types: run (with the demo), create-user, create-token, migrate."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest
import requests

from router.net import free_port
from tests.support.hubproc import ROOT, HubProcess


def router_command(*args: str, env: dict[str, str], stdin: str | None = None,
                   timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "router", *args], cwd=ROOT, env={**os.environ, **env},
                          input=stdin, capture_output=True, text=True, timeout=timeout)


def test_run_with_demo_prints_urls_and_working_credentials(tmp_path) -> None:
    hub = HubProcess({"HUB_DEMO": "1", "HUB_DATABASE_URL": ""}, tmp_path / "var").start()
    try:
        output = hub.output()
        for path in ("/", "/app/inbox", "/app/orders", "/app/field", "/app/wallboard", "/notices"):
            assert f"{hub.url}{path}" in output, output
        admin = re.search(r"first admin: admin / (\S+)", output)
        agent = re.search(r"demo agent: (agent1) / (\S+)", output)
        crew = re.search(r"demo field_crew: (crew1) / (\S+)", output)
        assert admin and agent and crew, output
        assert (tmp_path / "var" / "hub.sqlite3").exists()  # SQLite under var/ by default
        page = requests.get(f"{hub.url}/", timeout=5)
        assert page.status_code == 200 and "/widget.js" in page.text and "962740" in page.text
        for username, password in [("admin", admin.group(1)), agent.groups(), crew.groups()]:
            login = requests.post(f"{hub.url}/api/auth/login", json={"username": username, "password": password},
                                  timeout=10)
            assert login.status_code == 200, login.text
            assert "HttpOnly" in login.headers["Set-Cookie"] and "SameSite=Lax" in login.headers["Set-Cookie"]
        # The demo dispatches leak reports to its repair centre, where crew1 works.
        session = requests.Session()
        session.post(f"{hub.url}/api/auth/login", json={"username": "agent1", "password": agent.group(2)}, timeout=10)
        order = session.post(f"{hub.url}/api/workorders", headers={"X-CSRF-Token": session.cookies["hub_csrf"]},
                             json={"category": "leak_repair", "title": "路面冒水", "description": "清源路冒水",
                                   "custom_fields": {"leak_location": "路面", "severity": "冒水"}}, timeout=10)
        assert order.status_code == 201, order.text
        assert (order.json()["state"], order.json()["department"]["name"]) == ("dispatched", "管网抢修中心")
        assert admin.group(1) not in (tmp_path / "var").joinpath("hub.sqlite3").read_bytes().decode("latin-1")
        # The demo's official account: a resident writes through the stand-in WeChat and reaches the agents.
        say = re.search(r"(python -m channels\.wechat\.standin say .*) '我家停水了'", output)
        assert say, output
        said = subprocess.run([sys.executable, "-m", *say.group(1).split()[2:], "--wait", "0", "南门小区停水了"],
                              capture_output=True, text=True, timeout=60, cwd=ROOT, check=True)
        assert "公众号被动回复: success" in said.stdout, said.stdout + said.stderr
        queued = session.get(f"{hub.url}/api/conversations", params={"state": "queued"}, timeout=10).json()
        assert any(c["channel"] == "wechat" and c["last_message"]["text"] == "南门小区停水了"
                   for c in queued["items"]), queued
        # And its SMS channel: a resident texts through the stand-in SMSC and reaches the agents too.
        text = re.search(r"(python -m channels\.sms\.smpp_standin say .*) '我家停水了'", output)
        assert text, output
        texted = subprocess.run([sys.executable, "-m", *text.group(1).split()[2:], "--wait", "0",
                                 "--from", "8613900139000", "北门小区水压低"],
                                capture_output=True, text=True, timeout=60, cwd=ROOT, check=True)
        assert '{"statuses": [0]}' in texted.stdout, texted.stdout + texted.stderr
        queued = session.get(f"{hub.url}/api/conversations", params={"state": "queued"}, timeout=10).json()
        assert any(c["channel"] == "sms" and c["last_message"]["text"] == "北门小区水压低"
                   for c in queued["items"]), queued
        assert requests.get(f"{hub.url}/readyz", timeout=5).json()["checks"]["sms"] is True
    finally:
        hub.kill()
    restarted = HubProcess({"HUB_DEMO": "1", "HUB_DATABASE_URL": ""}, tmp_path / "var").start()
    try:  # the one-time password is shown only once
        assert "first admin" not in restarted.output().split("Shuiwu Hub is running")[-1]
        assert restarted.terminate() == 0, restarted.output()  # SIGTERM: a clean, graceful exit
    finally:
        restarted.kill()


def test_create_user_and_token_from_the_command_line(tmp_path) -> None:
    env = {"HUB_VAR_DIR": str(tmp_path), "HUB_DATABASE_URL": "", "HUB_NEW_USER_PASSWORD": "a-long-password"}
    created = router_command("create-user", "zhangsan", "--role", "agent", "--display-name", "张三",
                             "--team", "热线坐席", env=env)
    assert created.returncode == 0 and "created agent zhangsan" in created.stdout, created.stderr
    again = router_command("create-user", "zhangsan", "--role", "agent", env=env)
    assert again.returncode == 2 and "用户名已存在" in again.stderr
    weak = router_command("create-user", "lisi", "--role", "agent", env={**env, "HUB_NEW_USER_PASSWORD": "short"})
    assert weak.returncode == 2 and "密码至少" in weak.stderr
    common = router_command("create-user", "lisi", "--role", "agent",
                            env={**env, "HUB_NEW_USER_PASSWORD": "password1234"})
    assert common.returncode == 2 and "容易被猜到" in common.stderr
    token = router_command("create-token", "action-server", "--role", "agent", env=env)
    assert token.returncode == 0 and token.stdout.startswith("shw_")
    assert token.stdout.strip() not in token.stderr  # printed once to stdout, never logged


@pytest.mark.parametrize(("args", "env"), [
    (["--host", "0.0.0.0"], {}),  # noqa: S104  (the attempt under test)
    ([], {"HUB_HOST": "::"}),
    ([], {"HUB_HOST": "192.0.2.2"}),
    ([], {"HUB_PUBLIC_URL": "https://kf.water.example.cn"}),
    ([], {"HUB_PUBLIC_URL": "http://192.0.2.2:8080"}),
])
def test_demo_mode_refuses_to_start_where_others_can_reach_it(tmp_path, args: list[str], env: dict[str, str]) -> None:
    """The demo's staff share a published password: a demo hub others can reach is refused before it listens."""
    refused = router_command("run", *args, timeout=30, env={
        "HUB_DEMO": "1", "HUB_VAR_DIR": str(tmp_path), "HUB_DATABASE_URL": "", "HUB_PORT": str(free_port()), **env})
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "HUB_DEMO" in refused.stderr and "python -m router run" in refused.stderr
    assert "shuiwu-demo" not in refused.stdout + refused.stderr
    assert not (tmp_path / "hub.sqlite3").exists()  # nothing was provisioned


def test_password_workers_end_with_a_killed_hub(tmp_path) -> None:
    """A hub killed outright cannot shut its hashing pool down; the workers notice and end by themselves."""
    hub = HubProcess({"HUB_DEMO": "1", "HUB_DATABASE_URL": ""}, tmp_path / "var").start()
    try:
        wrong = requests.post(f"{hub.url}/api/auth/login", json={"username": "agent1", "password": "not-the-one"},
                              timeout=30)
        assert wrong.status_code == 401, wrong.text
        workers = subprocess.run(["pgrep", "-P", str(hub.process.pid)], capture_output=True, text=True).stdout.split()
        assert workers, "a sign-in starts the hashing workers"
    finally:
        hub.kill()
    deadline = time.monotonic() + 10
    while any(os.path.exists(f"/proc/{pid}") for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in workers if os.path.exists(f"/proc/{pid}")]
