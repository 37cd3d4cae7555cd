"""Evaluate the trained Rasa NLU model on a labelled CSV (`make eval-nlu`).

    make eval-nlu [DATA=path.csv] [BASELINE=1]

The CSV has columns text,category; category is a category code from
data/categories.yml, `emergency`, or `none` (not a neighbourhood complaint:
greetings, duty questions, out-of-scope requests). Without DATA the project's
held-out test set (data/test/nlu_test.csv) is used.

Prints a per-category precision/recall/F1 table and, as its last stdout line,
one JSON object: {"n", "accuracy", "macro_f1", "emergency_recall",
"per_category": {code: {"precision", "recall", "f1", "support"}},
"latency_ms": {"p50", "p95"}} — plus "baseline" with the same figures for a
character n-gram TF-IDF + logistic regression trained on the same data, when
--baseline is given. Runs in the rasa environment.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

DEFAULT_DATA = ROOT / "data" / "test" / "nlu_test.csv"
# Every set `make eval-nlu` reports: the held-out test sets (never tuned on) and the dev sets
# (the only ones used for tuning). None of them is ever trained on.
DEFAULT_SETS = [
    DEFAULT_DATA,
    ROOT / "data" / "test" / "nlu_long.csv",
    ROOT / "data" / "test" / "out_of_scope.csv",
    ROOT / "data" / "dev" / "nlu_dev.csv",
    ROOT / "data" / "dev" / "nlu_long_dev.csv",
    ROOT / "data" / "dev" / "out_of_scope_dev.csv",
    ROOT / "data" / "dev" / "emergency_dev.csv",
    ROOT / "data" / "dev" / "emergency_long_dev.csv",
    ROOT / "data" / "dev" / "nlu_dev2.csv",
    ROOT / "data" / "dev" / "emergency_dev2.csv",
    ROOT / "data" / "dev" / "nlu_long_dev2.csv",
    ROOT / "data" / "dev" / "emergency_long_dev2.csv",
]
MODEL = ROOT / "models" / "gridbot.tar.gz"
NON_COMPLAINT = "none"


class CsvError(Exception):
    pass


def valid_labels() -> set[str]:
    doc = yaml.safe_load((ROOT / "data" / "categories.yml").read_text(encoding="utf-8"))
    return {c["code"] for c in doc["categories"]} | {"emergency", NON_COMPLAINT}


def read_csv(path: Path) -> list[tuple[str, str]]:
    """Rows of (text, category); raise CsvError naming the file and line of every problem."""
    labels = valid_labels()
    problems: list[str] = []
    rows: list[tuple[str, str]] = []
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise CsvError(f"{path}: cannot open: {exc.strerror}") from exc
    with handle:
        try:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise CsvError(f"{path}:1: empty file; expected a header line text,category")
            names = [h.strip().lower() for h in header]
            if "text" not in names or "category" not in names:
                raise CsvError(f"{path}:1: header must name the columns text and category, got {header}")
            ti, ci = names.index("text"), names.index("category")
            for row in reader:
                line = reader.line_num
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    problems.append(f"{path}:{line}: expected {len(header)} cells, got {len(row)} "
                                    f"(quote texts that contain commas)")
                    continue
                text, label = row[ti].strip(), row[ci].strip()
                if not text:
                    problems.append(f"{path}:{line}: empty text")
                elif label not in labels:
                    problems.append(f"{path}:{line}: unknown category {label!r} "
                                    f"(use a code from data/categories.yml, emergency or none)")
                else:
                    rows.append((text, label))
        except csv.Error as exc:
            raise CsvError(f"{path}:{reader.line_num}: not valid CSV: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise CsvError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    if problems:
        raise CsvError("\n".join(problems))
    if not rows:
        raise CsvError(f"{path}: no labelled rows")
    return rows


def category_of_intent(intent: str | None) -> str:
    """complaint_parking → parking; emergency → emergency; anything else → none."""
    if not intent:
        return NON_COMPLAINT
    if intent.startswith("complaint_"):
        return intent[len("complaint_"):]
    if intent == "emergency":
        return "emergency"
    return NON_COMPLAINT


def category_of_parse(result: dict[str, Any]) -> str:
    """The model's best guess; a fallback still counts as its top-ranked intent
    (the bot then offers the top categories as buttons, and an emergency ranked
    first is treated as an emergency whatever its confidence)."""
    ranking = result.get("intent_ranking") or []
    for entry in ranking:
        if entry.get("name") != "nlu_fallback":
            return category_of_intent(entry.get("name"))
    return category_of_intent((result.get("intent") or {}).get("name"))


def metrics(truth: list[str], predicted: list[str], latencies_ms: list[float] | None) -> dict[str, Any]:
    from sklearn.metrics import precision_recall_fscore_support

    labels = sorted(set(truth))
    p, r, f, s = precision_recall_fscore_support(truth, predicted, labels=labels, zero_division=0)
    per = {lab: {"precision": round(float(p[i]), 4), "recall": round(float(r[i]), 4),
                 "f1": round(float(f[i]), 4), "support": int(s[i])} for i, lab in enumerate(labels)}
    n = len(truth)
    out: dict[str, Any] = {
        "n": n,
        "accuracy": round(sum(t == q for t, q in zip(truth, predicted, strict=True)) / n, 4),
        "macro_f1": round(float(sum(f) / len(labels)), 4),
        "emergency_recall": per["emergency"]["recall"] if "emergency" in per else None,
        "per_category": per,
    }
    if latencies_ms is not None:
        ordered = sorted(latencies_ms)
        out["latency_ms"] = {"p50": round(statistics.median(ordered), 2),
                             "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2)}
    return out


def print_table(title: str, result: dict[str, Any], other: dict[str, Any] | None = None) -> None:
    print(f"\n{title}")
    head = f"{'category':<22}{'prec':>7}{'rec':>7}{'f1':>7}{'n':>5}"
    if other:
        head += f"   {'base f1':>8}"
    print(head)
    for label, m in result["per_category"].items():
        line = f"{label:<22}{m['precision']:>7.3f}{m['recall']:>7.3f}{m['f1']:>7.3f}{m['support']:>5}"
        if other:
            line += f"   {other['per_category'][label]['f1']:>8.3f}"
        print(line)
    print(f"{'accuracy':<22}{result['accuracy']:>21.3f}")
    print(f"{'macro F1':<22}{result['macro_f1']:>21.3f}")
    print(f"{'emergency recall':<22}{result['emergency_recall'] if result['emergency_recall'] is not None else '-':>21}")
    if "latency_ms" in result:
        print(f"{'latency p50/p95 ms':<22}{result['latency_ms']['p50']:>12} / {result['latency_ms']['p95']}")


def load_agent(model: Path) -> Any:
    from rasa.core.agent import Agent

    return Agent.load(str(model))


def evaluate_rasa(rows: list[tuple[str, str]], agent: Any) -> dict[str, Any]:
    loop = asyncio.new_event_loop()
    predicted, latencies = [], []
    loop.run_until_complete(agent.parse_message("预热"))  # first parse builds graphs
    for text, _ in rows:
        start = time.perf_counter()
        result = loop.run_until_complete(agent.parse_message(text))
        latencies.append((time.perf_counter() - start) * 1000)
        predicted.append(category_of_parse(result))
    loop.close()
    return {**metrics([lab for _, lab in rows], predicted, latencies), "predictions": predicted}


def training_examples() -> tuple[list[str], list[str]]:
    from rasa.shared.nlu.training_data.loading import load_data

    data = load_data(str(ROOT / "data" / "nlu"))
    texts, labels = [], []
    for example in data.intent_examples:
        texts.append(example.get("text"))
        labels.append(category_of_intent(example.get("intent")))
    return texts, labels


def train_baseline() -> tuple[Any, float]:
    """The frozen baseline (issue: it may be made stronger, never weaker), and its training time."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from nlu.normalizer import normalise_text

    texts, labels = training_examples()
    model = make_pipeline(
        TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=1),
        LogisticRegression(max_iter=2000, C=10.0),
    )
    from threadpoolctl import threadpool_limits

    start = time.perf_counter()
    with threadpool_limits(limits=1):  # as the pipeline's classifier trains
        model.fit([normalise_text(t) for t in texts], labels)
    return model, round(time.perf_counter() - start, 2)


def evaluate_baseline(rows: list[tuple[str, str]], model: Any) -> dict[str, Any]:
    from nlu.normalizer import normalise_text

    predicted, latencies = [], []
    for text, _ in rows:
        t0 = time.perf_counter()
        predicted.append(str(model.predict([normalise_text(text)])[0]))
        latencies.append((time.perf_counter() - t0) * 1000)
    return {**metrics([lab for _, lab in rows], predicted, latencies), "predictions": predicted}


def summary(result: dict[str, Any], rows: list[tuple[str, str]], predicted: list[str]) -> dict[str, Any]:
    """The figures of one set: macro-F1 etc., false emergencies, and the share answered as
    not-a-complaint (the one figure that means something on a one-class set such as out_of_scope)."""
    out = {k: v for k, v in result.items() if k != "per_category"}
    out["false_emergencies"] = sum(1 for (_, lab), p in zip(rows, predicted, strict=True)
                                   if p == "emergency" and lab != "emergency")
    none = [p for (_, lab), p in zip(rows, predicted, strict=True) if lab == NON_COMPLAINT]
    out["none_answered_as_none"] = round(sum(p == NON_COMPLAINT for p in none) / len(none), 4) if none else None
    out["per_category"] = result["per_category"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, action="append",
                        help="a labelled CSV (repeatable); default: every set in DEFAULT_SETS")
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--baseline", action="store_true")
    parser.add_argument("--errors", type=Path, help="write misclassified rows of the dev set(s) to this CSV")
    args = parser.parse_args(argv)
    paths = args.data or [p for p in DEFAULT_SETS if p.exists()]
    try:
        sets = {path: read_csv(path) for path in paths}
    except CsvError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not args.model.exists():
        print(f"{args.model}: no trained model; run `make model`", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.disable(logging.WARNING)
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(logging.WARNING)  # Rasa's structlog would print every parse at DEBUG
    agent = load_agent(args.model)
    baseline_model = train_baseline() if args.baseline else None
    report: dict[str, Any] = {"sets": {}}
    train_file = ROOT / "models" / ".train_seconds"
    if train_file.exists():
        report["train_seconds"] = int(train_file.read_text().strip())
    if baseline_model is not None:
        report["baseline_train_seconds"] = baseline_model[1]
    errors: list[list[str]] = []
    for path, rows in sets.items():
        rasa = evaluate_rasa(rows, agent)
        predictions = rasa.pop("predictions")
        name = path.stem
        entry = summary(rasa, rows, predictions)
        baseline = None
        if baseline_model is not None:
            baseline = evaluate_baseline(rows, baseline_model[0])
            base_predictions = baseline.pop("predictions")
            entry["baseline"] = summary(baseline, rows, base_predictions)
        print_table(f"Rasa pipeline on {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} "
                    f"({len(rows)} messages)", rasa, baseline)
        print(f"{'false emergencies':<22}{entry['false_emergencies']:>21}")
        if entry["none_answered_as_none"] is not None:
            print(f"{'none answered as none':<22}{entry['none_answered_as_none']:>21}")
        if baseline is not None:
            print(f"{'baseline macro F1':<22}{baseline['macro_f1']:>21.3f}")
        report["sets"][name] = entry
        if "dev" in path.parts:
            errors += [[text, label, guess, name] for (text, label), guess in zip(rows, predictions, strict=True)
                       if label != guess]
    if args.errors:
        with args.errors.open("w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["text", "category", "predicted", "set"])
            w.writerows(errors)
    print(json.dumps(report, ensure_ascii=False, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
