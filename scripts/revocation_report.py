"""How well the plain-language revocation classifier does on the labelled corpus.

    python scripts/revocation_report.py [--corpus FILE ...] [--json] [--errors]

Reads the labelled corpus files (``text,language,label,note``; labels ``revoke``, ``unclear``,
``none``; default: every ``tests/data/revocation_*.csv``) and prints, for all of them together:
the confusion matrix (rows: the label, columns: the classifier's answer), then
precision and recall per outcome, overall and per language. ``--errors`` lists every row the
classifier got wrong, with its explanation; ``--json`` prints the figures as one JSON object
instead (the tests read it).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from policy.revocation import Outcome, classify_revocation  # noqa: E402

OUTCOMES = [o.value for o in Outcome]


def _scores(pairs: list[tuple[str, str]]) -> dict[str, dict[str, float | int]]:
    scores: dict[str, dict[str, float | int]] = {}
    for outcome in OUTCOMES:
        labelled = sum(1 for label, _ in pairs if label == outcome)
        answered = sum(1 for _, got in pairs if got == outcome)
        right = sum(1 for label, got in pairs if label == got == outcome)
        scores[outcome] = {
            "labelled": labelled,
            "answered": answered,
            "precision": right / answered if answered else 1.0,
            "recall": right / labelled if labelled else 1.0,
        }
    return scores


def evaluate(corpora: list[Path]) -> dict[str, object]:
    rows: list[dict[str, str]] = []
    for corpus in corpora:
        with corpus.open(encoding="utf-8", newline="") as handle:
            rows.extend(csv.DictReader(handle))
    results = []
    for row in rows:
        verdict = classify_revocation(row["text"])
        results.append((row, verdict))
    pairs = [(row["label"], verdict.outcome.value) for row, verdict in results]
    confusion = Counter(pairs)
    languages = sorted({row["language"] for row in rows})
    return {
        "corpus": [str(c.relative_to(ROOT) if c.is_relative_to(ROOT) else c) for c in corpora],
        "rows": len(rows),
        "rows_per_language": {lang: sum(r["language"] == lang for r in rows) for lang in languages},
        "confusion": {
            label: {got: confusion[(label, got)] for got in OUTCOMES} for label in OUTCOMES
        },
        "overall": _scores(pairs),
        "per_language": {
            lang: _scores(
                [(row["label"], v.outcome.value) for row, v in results if row["language"] == lang]
            )
            for lang in languages
        },
        "errors": [
            {
                "text": row["text"],
                "language": row["language"],
                "label": row["label"],
                "got": verdict.outcome.value,
                "explanation": verdict.explanation,
            }
            for row, verdict in results
            if verdict.outcome.value != row["label"]
        ],
    }


def _print(report: dict[str, object], errors: bool) -> None:
    print(f"corpus {', '.join(report['corpus'])}")  # type: ignore[arg-type]
    print(f"{report['rows']} rows {report['rows_per_language']}")
    print("\nconfusion (rows: label, columns: answer)")
    print(f"{'':>10}" + "".join(f"{o:>10}" for o in OUTCOMES))
    confusion = report["confusion"]
    assert isinstance(confusion, dict)
    for label in OUTCOMES:
        print(f"{label:>10}" + "".join(f"{confusion[label][o]:>10}" for o in OUTCOMES))
    print(f"\n{'scope':>8} {'outcome':>8} {'labelled':>9} {'precision':>10} {'recall':>8}")
    scopes = {"all": report["overall"], **report["per_language"]}  # type: ignore[dict-item]
    for scope, scores in scopes.items():
        for outcome in OUTCOMES:
            s = scores[outcome]
            print(
                f"{scope:>8} {outcome:>8} {s['labelled']:>9} "
                f"{s['precision']:>10.3f} {s['recall']:>8.3f}"
            )
    if errors:
        print("\nerrors")
        for error in report["errors"]:  # type: ignore[attr-defined]
            print(f"  [{error['language']}] {error['label']} -> {error['explanation']}")
            print(f"       {error['text']!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, action="append", help="a corpus file (repeatable)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--errors", action="store_true", help="list the misclassified rows")
    args = parser.parse_args()
    corpora = [c.resolve() for c in args.corpus or sorted(ROOT.glob("tests/data/revocation_*.csv"))]
    report = evaluate(corpora)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        _print(report, args.errors)


if __name__ == "__main__":
    main()
