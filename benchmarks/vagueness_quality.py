"""How well ``clarification.vagueness.assess`` tells a ticket too vague to act on, on hand-labelled real tickets.

Data: 100 real help-desk tickets (the first reporter message of Mendeley "Help Desk Tickets" issues, a software
vendor's help desk for banks, masked: ``ph_technical`` and the like stand for what the requester wrote), read from
``../shared/data/helpdesk-tickets-mendeley`` (licence unverified, so not shipped: when it is absent the script says
where to put it and exits 2), labelled by hand in ``benchmarks/data/vagueness_labels.csv`` (the rule is in its
header). The labels are split in two by their order in the file: the rule's thresholds were chosen on the first
half ("dev"), the second ("test") was not looked at while choosing. A second check: on the same issues, whether the
support team's first public answer asked the requester for something (a question mark, or "please provide /
share / send / confirm / clarify ..."), a label the data gives by itself (noisy: a reply can ask for unrelated
things).

    .venv/bin/python benchmarks/vagueness_quality.py

Last line: ``vagueness precision=<p> recall=<r> f1=<f> (test half, n=<n>)``.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "helpdesk-tickets-mendeley" / "issues_conversations.jsonl.gz"
LABELS = ROOT / "benchmarks" / "data" / "vagueness_labels.csv"
_ASKED = re.compile(r"\?|(?i:\b(?:please|kindly|could\s+you|can\s+you|would\s+you)\s+(?:\w+\s+){0,3}"
                    r"(?:provide|share|send|confirm|clarify|specify|attach|elaborate|explain)\b)")
_BOILERPLATE = re.compile(r"(?i)has been assigned|is assigned|been received")


def scores(pairs: list[tuple[bool, bool]]) -> tuple[float, float, float, int]:
    """(precision, recall, F1, n) of predictions against truth, ``pairs`` of (predicted, true)."""
    tp = sum(p and t for p, t in pairs)
    fp = sum(p and not t for p, t in pairs)
    fn = sum(t and not p for p, t in pairs)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1, len(pairs)


def main() -> None:
    if not DATA.exists():
        print(f"[vagueness] {DATA} is absent. The Mendeley tickets are not shipped (licence unverified); put the "
              "shared/ data folder beside the project checkout and run again.")
        sys.exit(2)
    from enhancement_pipeline.clarification.vagueness import assess

    issues = {str(json.loads(line)["issue_id"]): json.loads(line) for line in gzip.open(DATA, "rt")}
    with LABELS.open() as fh:
        rows = csv.DictReader(line for line in fh if not line.startswith("#"))
        labels = [(r["issue_id"], r["label"] == "vague") for r in rows]
    half = len(labels) // 2
    results = {}
    for name, part in (("dev", labels[:half]), ("test", labels[half:]), ("all", labels)):
        pairs = []
        for issue_id, vague in part:
            verdict = assess("", issues[issue_id]["problem"])
            pairs.append((verdict.vague, vague))
        results[name] = scores(pairs)
        p, r, f, n = results[name]
        print(f"hand labels, {name:>4} (n={n}, vague {sum(t for _, t in pairs)}): precision {p:.2f} recall {r:.2f} "
              f"F1 {f:.2f}")
    for issue_id, vague in labels:
        verdict = assess("", issues[issue_id]["problem"])
        if verdict.vague != vague:
            print(f"  {'missed' if vague else 'false alarm'} {issue_id}: {verdict.reason} | "
                  f"{' '.join(issues[issue_id]['problem'].split())[:110]}")
    asked = []
    for issue in issues.values():
        replies = [c["text"] for c in issue["comments"] if c["author_role"] == "assignee" and not c["is_private"]
                   and not (_BOILERPLATE.search(c["text"]) and len(c["text"]) < 200)]
        if replies:
            asked.append((assess("", issue["problem"]).vague, bool(_ASKED.search(replies[0]))))
    p, r, f, n = scores(asked)
    base = sum(t for _, t in asked) / len(asked)
    flagged = sum(v for v, _ in asked) / len(asked)
    print(f"support's first answer asked the requester for something: {base:.0%} of {n} issues; flagged vague "
          f"{flagged:.0%}; precision {p:.2f} recall {r:.2f} (noisy label; chance precision = {base:.2f})")
    p, r, f, n = results["test"]
    print(f"vagueness precision={p:.2f} recall={r:.2f} f1={f:.2f} (test half, n={n})")


if __name__ == "__main__":
    main()
