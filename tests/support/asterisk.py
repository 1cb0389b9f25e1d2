"""A real Asterisk for the tests, started in the cached Debian root that ``scripts/asterisk-root.sh`` builds.

Each :class:`Asterisk` renders the production templates of ``docker/asterisk/`` for ports of its own (SIP on
UDP, HTTP for the ARI, an RTP range) and a random ARI password, into ``<root>/run/shuiwu/<name>/`` (never
through ``<root>/var/run``, an absolute link to the host's ``/run``), so several instances run side by side.
``stop()`` and ``start()`` again serve tests of Asterisk going away; ``cleanup()`` removes its folder.
"""

from __future__ import annotations

import http.client
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from base64 import b64encode
from pathlib import Path
from string import Template

from router.net import free_port

PROJECT = Path(__file__).resolve().parents[2]
TEMPLATES = PROJECT / "docker" / "asterisk"
CACHE = Path(os.environ.get("SHUIWU_CACHE") or Path.home() / ".cache" / "shuiwu-hub")
ROOT = CACHE / "asterisk-root"
PROMPTS = "usr/share/asterisk/sounds/shuiwu"  # in the root: the hub's rendered prompts, ``sound:shuiwu/<hash>``
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def root_ready(root: Path = ROOT) -> bool:
    return (root / "usr/sbin/asterisk").exists() and (root / ".shuiwu-complete").exists()


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_udp_range(count: int) -> int:
    """The first of ``count`` consecutive UDP ports free on 127.0.0.1 right now (an even one, as RTP likes)."""
    rng = secrets.SystemRandom()
    for _ in range(200):
        first = rng.randrange(20000, 60000 - count) & ~1
        if all(_udp_free(first + i) for i in range(count)):
            return first
    raise RuntimeError(f"no {count} consecutive free UDP ports")


class Asterisk:
    """One Asterisk instance in the shared root; ``app`` is the Stasis application its dialplan calls."""

    def __init__(self, name: str, *, app: str = "hub", root: Path = ROOT, rtp_ports: int = 40) -> None:
        if not root_ready(root):
            raise RuntimeError(f"no Asterisk root in {root}: run scripts/asterisk-root.sh (make test does)")
        self.name, self.app, self.root = name, app, root
        self.inner_dir = f"/run/shuiwu/{name}"  # as Asterisk sees it, inside the root
        self.dir = root / "run" / "shuiwu" / name
        self.ari_user = "hub"
        self.ari_password = secrets.token_urlsafe(18)
        self.sip_port = free_udp_range(1)
        self.http_port = free_port()
        self.rtp_start = free_udp_range(rtp_ports)
        self.rtp_end = self.rtp_start + rtp_ports - 1
        self.process: subprocess.Popen[bytes] | None = None
        self.prompt_dir = root / PROMPTS
        self._render()

    @property
    def ari_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def log_path(self) -> Path:
        return self.dir / "log" / "messages.log"

    @property
    def recordings(self) -> Path:
        return self.dir / "spool" / "recording"

    def _render(self) -> None:
        modules = next(iter(sorted(self.root.glob("usr/lib/*/asterisk/modules"))), None) \
            or self.root / "usr/lib/asterisk/modules"
        values = {
            "AST_CONF_DIR": f"{self.inner_dir}/etc", "AST_RUN_DIR": self.inner_dir,
            "AST_MODULE_DIR": "/" + str(modules.relative_to(self.root)),
            "AST_HTTP_BIND": "127.0.0.1", "AST_HTTP_PORT": str(self.http_port),
            "AST_ARI_USER": self.ari_user, "AST_ARI_PASSWORD": self.ari_password,
            "AST_SIP_BIND": "127.0.0.1", "AST_SIP_PORT": str(self.sip_port), "AST_SIP_TRUNK_MATCH": "127.0.0.1",
            "AST_RTP_START": str(self.rtp_start), "AST_RTP_END": str(self.rtp_end), "AST_STASIS_APP": self.app,
        }
        etc = self.dir / "etc"
        for sub in ("etc", "lib", "spool/recording", "run", "log"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self.prompt_dir.mkdir(parents=True, exist_ok=True)
        for template in sorted(TEMPLATES.glob("*.conf")):
            (etc / template.name).write_text(Template(template.read_text()).substitute(values))

    def start(self) -> None:
        """Start Asterisk and wait until its ARI answers."""
        if self.process is not None and self.process.poll() is None:
            return
        log = (self.dir / "console.log").open("ab")
        self.process = subprocess.Popen(
            ["chroot", str(self.root), "/usr/sbin/asterisk", "-f", "-n", "-C", f"{self.inner_dir}/etc/asterisk.conf"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Asterisk {self.name} exited with {self.process.returncode}: {self._tail()}")
            if self.ari_ready():
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"Asterisk {self.name}: no ARI within {START_TIMEOUT} s: {self._tail()}")

    def ari_ready(self) -> bool:
        auth = b64encode(f"{self.ari_user}:{self.ari_password}".encode()).decode()
        connection = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=1)
        try:
            connection.request("GET", "/ari/asterisk/info", headers={"Authorization": f"Basic {auth}"})
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    def stop(self, *, kill: bool = False) -> None:
        """End Asterisk: at once with ``kill``, else as it would on a shutdown (and killed if it lingers)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _tail(self) -> str:
        lines: list[str] = []
        for path in (self.dir / "console.log", self.log_path):
            if path.exists():
                lines += path.read_text(errors="replace").splitlines()[-15:]
        return "\n".join(lines)
