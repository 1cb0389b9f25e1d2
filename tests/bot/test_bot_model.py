"""The trained bot on what it never saw: held-out NLU examples and the conversation tests of every flow.

One ``rasa test`` run (the model loads once) evaluates ``bot/tests/nlu_test.yml`` and replays
``bot/tests/test_stories.yml``; the tests below read its reports.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

from router.settings import PROJECT_ROOT

BOT = PROJECT_ROOT / "bot"
HELD_OUT = BOT / "tests" / "nlu_test.yml"
STORIES = BOT / "tests" / "test_stories.yml"
INTENT_ACCURACY = 0.95
EACH_INTENT_ACCURACY = 0.90
FAQ_ACCURACY = 0.90
EXAMPLES_PER_INTENT = 15
ANNOTATION = re.compile(r"\[([^\]]+)\](?:\([^)]*\)|\{[^}]*\})")

pytestmark = pytest.mark.timeout(900)


def examples(path: Path) -> list[tuple[str, str]]:
    """(intent, plain text) of every example in an NLU file, entity annotations removed."""
    found = []
    for block in (yaml.safe_load(path.read_text("utf-8")) or {}).get("nlu", []):
        if "intent" not in block:
            continue
        for line in block["examples"].splitlines():
            text = line.strip().removeprefix("- ").strip()
            if text:
                found.append((block["intent"], ANNOTATION.sub(r"\1", text)))
    return found


def normalised(text: str) -> str:
    return re.sub(r"[\s,。!?、,.!?~～…]+", "", text).lower()


# Once per test process, not per module: when other modules' tests run between this module's, a module
# fixture would evaluate the model a second time (two minutes).
@pytest.fixture(scope="session")
def reports(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rasa-test")
    result = subprocess.run(
        [str(BOT / ".venv" / "bin" / "rasa"), "test", "--model", str(BOT / "models" / "current.tar.gz"),
         "--stories", str(STORIES), "--nlu", str(HELD_OUT), "--out", str(out)],
        cwd=BOT, env={**os.environ, "RASA_TELEMETRY_ENABLED": "false"}, capture_output=True, text=True,
        timeout=800)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return out


def test_the_held_out_set_is_big_enough_and_unseen() -> None:
    held_out = examples(HELD_OUT)
    per_intent = Counter(intent.split("/")[0] for intent, _ in held_out)
    domain = yaml.safe_load((BOT / "domain" / "core.yml").read_text("utf-8"))
    expected = {intent for intent in domain["intents"] if intent != "nlu_fallback"} | {"faq"}
    assert set(per_intent) == expected
    assert min(per_intent.values()) >= EXAMPLES_PER_INTENT, per_intent
    trained = {normalised(text) for path in (BOT / "data" / "nlu").glob("*.yml") for _, text in examples(path)}
    assert len(trained) > 1000
    seen = [text for _, text in held_out if normalised(text) in trained]
    assert seen == []


def intent_accuracy(reports: Path) -> tuple[float, list[tuple[str, str, str]]]:
    report = json.loads((reports / "intent_report.json").read_text())
    errors = json.loads((reports / "intent_errors.json").read_text())
    return report["accuracy"], [(e["text"], e["intent"], e["intent_prediction"]["name"]) for e in errors]


def test_intents_of_unseen_messages(reports: Path) -> None:
    accuracy, errors = intent_accuracy(reports)
    assert accuracy >= INTENT_ACCURACY, errors


def test_every_intent_of_unseen_messages(reports: Path) -> None:
    """No intent is sacrificed to the average: each gets at least 90 % of its held-out examples right."""
    report = json.loads((reports / "intent_report.json").read_text())
    weak = {name: round(row["recall"], 3) for name, row in report.items()
            if isinstance(row, dict) and "recall" in row and "avg" not in name and row["recall"] < EACH_INTENT_ACCURACY}
    assert weak == {}, weak


def test_faq_answers_of_unseen_questions(reports: Path) -> None:
    report = json.loads((reports / "response_selection_report.json").read_text())
    assert report["accuracy"] >= FAQ_ACCURACY, report


def test_every_conversation_flow(reports: Path) -> None:
    report = json.loads((reports / "story_report.json").read_text())
    failed = (reports / "failed_test_stories.yml").read_text("utf-8")
    stories = yaml.safe_load(STORIES.read_text("utf-8"))["stories"]
    assert report["conversation_accuracy"]["total"] == len(stories)
    assert report["conversation_accuracy"]["accuracy"] == 1.0, failed


SECOND_OPINION_CHECK = """
import sys, tarfile, tempfile
from pathlib import Path
import numpy as np, scipy.sparse, skops.io as sio
from components.second_opinion import MODEL_FILE, TRUSTED_TYPES, SecondOpinion
unpacked = Path(tempfile.mkdtemp())
with tarfile.open(sys.argv[1]) as model:
    model.extractall(unpacked)
stored = sorted(unpacked.glob(f"components/*second_opinion*/{MODEL_FILE}"))
assert len(stored) == 2, stored
for path in stored:
    svm = sio.load(path, trusted=TRUSTED_TYPES)
    features = scipy.sparse.random(200, svm[0].idf_.shape[0], density=0.003, format="csr", random_state=7)
    features.data = np.ceil(features.data * 4)
    opinion = SecondOpinion({}, None, None, svm)
    print(path.parent.name, float(np.abs(opinion._decision_values(features) - svm.decision_function(features)).max()))
"""


def test_the_second_opinion_computes_what_scikit_learn_would() -> None:
    """The SVMs' hand-computed decision values (no per-call checks) equal scikit-learn's own."""
    result = subprocess.run(
        [str(BOT / ".venv" / "bin" / "python"), "-c", SECOND_OPINION_CHECK, str(BOT / "models" / "current.tar.gz")],
        cwd=BOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    differences = dict(line.rsplit(" ", 1) for line in result.stdout.splitlines())
    components = {re.sub(r"\d+$", "", name.rsplit(".", 1)[-1]) for name in differences}
    assert components == {"IntentEnsemble", "FaqEnsemble"}, differences
    assert all(float(difference) < 1e-9 for difference in differences.values()), differences
