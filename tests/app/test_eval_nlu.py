"""`make eval-nlu`: any operator CSV; a malformed one gets its line number."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from core.config import PROJECT_ROOT

RASA_PYTHON = PROJECT_ROOT / ".venv-rasa" / "bin" / "python"


def eval_nlu(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(RASA_PYTHON), "scripts/eval_nlu.py", *args], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ("text,category\n楼下太吵,noise\n电梯坏了,lift\n", 3, "unknown category 'lift'"),
        ("text,category\n楼下太吵,noise\n,noise\n", 3, "empty text"),
        ("text,category\n楼下太吵,noise\n停车,乱,parking\n", 3, "expected 2 cells, got 3"),
        ("words,label\n楼下太吵,noise\n", 1, "header must name the columns text and category"),
        ("", 1, "empty file"),
    ],
)
def test_malformed_csv_is_reported_with_line(tmp_path: Path, content: str, line: int, message: str) -> None:
    path = tmp_path / "mine.csv"
    path.write_text(content, encoding="utf-8")
    result = eval_nlu("--data", str(path))
    assert result.returncode == 2
    assert f"{path}:{line}:" in result.stderr and message in result.stderr, result.stderr
    assert result.stdout == ""


def test_operator_csv_gives_table_and_json_last_line(tmp_path: Path) -> None:
    path = tmp_path / "ours.csv"
    path.write_text(
        "text,category\n"
        "\"楼下有人着火了,快来人\",emergency\n"
        "小区门口的路灯坏了一个多月了,facilities\n"
        "你好,none\n"
        "我的养老金怎么还没发,none\n",
        encoding="utf-8",
    )
    result = eval_nlu("--data", str(path), "--baseline")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    report = json.loads(lines[-1])["sets"]["ours"]  # one entry per set, named by the file
    assert report["n"] == 4
    assert set(report) >= {"n", "accuracy", "macro_f1", "emergency_recall", "per_category", "latency_ms",
                           "baseline", "false_emergencies", "none_answered_as_none"}
    assert set(report["per_category"]) == {"emergency", "facilities", "none"}
    assert set(report["per_category"]["none"]) == {"precision", "recall", "f1", "support"}
    assert report["per_category"]["none"]["support"] == 2
    assert report["emergency_recall"] == 1.0
    assert report["false_emergencies"] == 0
    assert report["latency_ms"]["p95"] >= report["latency_ms"]["p50"] > 0
    assert report["baseline"]["n"] == 4
    assert any(line.startswith("emergency") for line in lines[:-1])  # the human table
