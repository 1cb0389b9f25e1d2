"""The progress `make run` prints while the bot trains (scripts/train_progress.py), on a recorded `rasa train` log."""

from __future__ import annotations

import importlib.util
import itertools
import re
import subprocess
import sys
import time
from pathlib import Path

from router.settings import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "scripts" / "train_progress.py"
RECORDED = Path(__file__).parents[1] / "fixtures" / "rasa-train.log"  # rasa train of this bot, trimmed
CONFIG = PROJECT_ROOT / "bot" / "config.yml"
spec = importlib.util.spec_from_file_location("train_progress", SCRIPT)
assert spec is not None and spec.loader is not None
train_progress = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train_progress)


def replay(every: float, seconds_per_record: float) -> list[str]:
    plan = train_progress.planned_components(CONFIG.read_text("utf-8"))
    progress = train_progress.Progress(plan, 0.0, every)
    printed, now = [], 0.0
    for record in train_progress.records(RECORDED.read_text("utf-8")):  # universal newlines: \r ends a record too
        now += seconds_per_record
        progress.feed(record)
        if (line := progress.line(now)) is not None:
            printed.append(line)
    return printed


def seconds(line: str) -> int:
    found = re.match(r"bot-train: +(\d+)s ", line)
    assert found, line
    return int(found.group(1))


def test_the_components_their_epochs_the_time_and_what_is_to_come_are_shown() -> None:
    printed = replay(every=5.0, seconds_per_record=3.0)
    text = "\n".join(printed)
    assert "validating the training data" in printed[0]
    assert "training JiebaTokenizer; still to come: RegexFeaturizer, LexicalSyntacticFeaturizer" in text
    assert re.search(r"training DIETClassifier: epoch \d+/30 \(\d+%\); still to come: IntentEnsemble", text)
    assert re.search(r"training ResponseSelector: epoch \d+/20", text)
    assert re.search(r"training TEDPolicy: epoch \d+/40 \(\d+%\)$", text, re.MULTILINE)  # nothing left to come
    assert "FallbackClassifier" not in text  # in the pipeline, never trained: it is not awaited
    assert printed[-1].endswith("model saved")


def test_no_more_than_one_line_every_few_seconds() -> None:
    printed = replay(every=5.0, seconds_per_record=0.5)
    times = [seconds(line) for line in printed]
    assert all(later - earlier >= 5 for earlier, later in itertools.pairwise(times)), printed
    assert len(printed) < 20


def test_it_follows_the_log_while_training_runs_and_stops_with_it(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text("")
    recorded = RECORDED.read_text("utf-8")
    writer = subprocess.Popen([sys.executable, "-c", (  # rasa train, writing its log over about two seconds
        "import sys, time\n"
        "with open(sys.argv[1], 'a', newline='') as log:\n"
        "    for line in sys.argv[2].splitlines(keepends=True):\n"
        "        log.write(line); log.flush(); time.sleep(0.05)\n"), str(log), recorded])
    started = time.monotonic()
    shown = subprocess.run([sys.executable, str(SCRIPT), str(log), str(CONFIG), "--pid", str(writer.pid),
                            "--every", "0.5"], capture_output=True, text=True, timeout=60, check=True)
    writer.wait()
    lines = shown.stdout.splitlines()
    assert len(lines) >= 3 and all(line.startswith("bot-train: ") for line in lines), shown.stdout
    assert lines[-1].endswith("model saved")
    assert time.monotonic() - started < 30
