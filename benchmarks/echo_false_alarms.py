"""How often the prompt-injection cue detector fires on ordinary help-desk text (false alarms).

What it measures: the share of benign texts for which ``enhancement.injection.addresses_a_model`` is true.
Each such text is marked to the model as addressing it, and its cue paragraphs (``suspicious_spans``) become
forbidden text: the note's echo check removes every sentence or list item that shares 6 consecutive words
with them (``grounding.ECHO_WORDS``), so a false alarm in a resolution can cost a correct fix its place in
the note. Beside the rate: the median words of the forbidden spans per flagged text ("span words"), which
cue pattern of ``injection._CUES`` fired how often, and up to 5 flagged texts per source (the cue in »…«
with about 60 characters either side). The counterpart is the detection rate on the attack texts of
``enhancement_pipeline_tests/attacks.py`` (``ATTACKS``).

On what (every text as the pipeline would get it; at most ``--limit`` texts per source, every k-th in file
order, so runs are deterministic):

- the KB articles shipped in the package (``local.datasets.kb_documents()``: Microsoft support CC BY 4.0,
  GNOME Help CC BY-SA 3.0, tldr-pages CC BY 4.0), title + summary and, separately, the body. The Microsoft
  body is its symptoms, cause and resolution: the texts ``demo_split()`` makes its tickets' descriptions
  and resolutions of, so the demo tickets are not measured a second time;
- help-desk data of ``../shared/data`` (not redistributable: read from there at run time, never copied):
  Endava tickets (``tickets-endava``, title + body of each ``Document``), the Mendeley help-desk
  conversations (``helpdesk-tickets-mendeley/issues_conversations.jsonl.gz``, every comment of the 360
  issues: reporter, assignee and others, public and private) and AskUbuntu questions
  (``askubuntu/text_tokenized.txt.gz``, title + body, when it is there: the shared folder has only the
  annotations). A missing dataset is reported, with where to get it, and skipped.

How to run (about 10 s, one process)::

    .venv/bin/python benchmarks/echo_false_alarms.py
    .venv/bin/python benchmarks/echo_false_alarms.py --limit 5000 --examples 10

The last line is ``echo_false_alarms benign_flagged=<n>/<N> (<pct>%) attacks_flagged=<a>/<A>`` (all benign
sources together).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from enhancement_pipeline.enhancement.injection import _CUES, addresses_a_model, suspicious_spans, words

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
ENDAVA = SHARED / "tickets-endava" / "all_tickets_processed_improved_v3.csv.gz"
MENDELEY = SHARED / "helpdesk-tickets-mendeley" / "issues_conversations.jsonl.gz"
ASKUBUNTU = SHARED / "askubuntu" / "text_tokenized.txt.gz"
CONTEXT = 60


def say(message: str) -> None:
    print(f"[echo_false_alarms] {message}", flush=True)


def _alternatives() -> list[tuple[str, re.Pattern]]:
    """The top-level alternatives of the cue pattern, each with a short label, to tell which one fired."""
    source = _CUES.pattern.split(")", 1)[1] if _CUES.pattern.startswith("(?") else _CUES.pattern
    parts, depth, in_class, escaped, start = [], 0, False, False, 0
    for i, ch in enumerate(source):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(source[start:i])
            start = i + 1
    parts.append(source[start:])
    found = []
    for part in parts:
        label = " ".join(part.split())
        found.append((label if len(label) <= 70 else label[:67] + "...", re.compile(part, _CUES.flags)))
    return found


ALTERNATIVES = _alternatives()


def cue_label(text: str, match: re.Match) -> str:
    for label, pattern in ALTERNATIVES:
        if pattern.match(text, match.start()):
            return label
    return "(pattern not identified)"


def snippet(text: str, match: re.Match) -> str:
    start, end = max(0, match.start() - CONTEXT), match.end() + CONTEXT
    window = f"{text[start:match.start()]}»{match.group(0)}«{text[match.end():end]}"
    return f"{'...' if start else ''}{' '.join(window.split())}{'...' if end < len(text) else ''}"


@dataclass
class Tally:
    name: str
    texts: int = 0
    flagged: int = 0
    span_words: list[int] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)
    cues: Counter = field(default_factory=Counter)


def measure(name: str, texts: Sequence[str], limit: int, n_examples: int) -> Tally:
    """Every k-th of ``texts``, k the smallest step that measures at most ``limit`` of them."""
    tally = Tally(name)
    for text in texts[::max(1, -(-len(texts) // limit))]:
        tally.texts += 1
        if not addresses_a_model(text):
            continue
        tally.flagged += 1
        tally.span_words.append(sum(len(words(s)) for s in suspicious_spans([text])))
        matches = list(_CUES.finditer(text))
        tally.cues.update({cue_label(text, m) for m in matches})
        if len(tally.examples) < n_examples:
            tally.examples.append(snippet(text, matches[0]))
    return tally


def kb_sources() -> Iterator[tuple[str, list[str]]]:
    from enhancement_pipeline.local.datasets import kb_documents

    docs = kb_documents()
    for source in ("microsoft", "gnome", "tldr"):
        chosen = [d for d in docs if d.source == source]
        yield f"kb {source} title+summary", [f"{d.title}\n{d.summary}" for d in chosen]
        yield f"kb {source} body", [d.body for d in chosen if d.body.strip()]


def endava() -> list[str] | None:
    if not ENDAVA.exists():
        say(f"endava: {ENDAVA} not found, skipped (the Endava tickets: see shared/data/tickets-endava/README.md, "
            "a Kaggle 'IT Service Ticket Classification Dataset' copy)")
        return None
    with gzip.open(ENDAVA, "rt", encoding="utf-8", newline="") as fh:
        return [row["Document"] for row in csv.DictReader(fh) if row.get("Document")]


def mendeley() -> list[str] | None:
    if not MENDELEY.exists():
        say(f"mendeley: {MENDELEY} not found, skipped (the Mendeley 'Help Desk Tickets' conversations: see "
            "shared/data/helpdesk-tickets-mendeley/README.md, built by shared/data/scripts/build_helpdesk_issues.py)")
        return None
    texts = []
    with gzip.open(MENDELEY, "rt", encoding="utf-8") as fh:
        for line in fh:
            texts.extend(c["text"] for c in json.loads(line)["comments"] if (c.get("text") or "").strip())
    return texts


def askubuntu() -> list[str] | None:
    if not ASKUBUNTU.exists():
        say(f"askubuntu: question text {ASKUBUNTU} not found, skipped (shared/data/askubuntu holds only the "
            "annotations; get text_tokenized.txt.gz from github.com/taolei87/askubuntu and put it there, "
            "see shared/data/askubuntu/README.md)")
        return None
    texts = []
    with gzip.open(ASKUBUNTU, "rt", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            fields = line.rstrip("\n").split("\t")
            if len(fields) >= 2:
                texts.append("\n".join(fields[1:3]))
    return texts


def report(tally: Tally) -> None:
    rate = 100 * tally.flagged / tally.texts if tally.texts else 0.0
    spans = f"{statistics.median(tally.span_words):.0f}" if tally.span_words else "-"
    print(f"{tally.name:<28} {tally.texts:>7} {tally.flagged:>7} {rate:>7.2f}% {spans:>10}")
    for example in tally.examples:
        print(f"    {example}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=20_000, help="texts per source at most (every k-th)")
    parser.add_argument("--examples", type=int, default=5, help="flagged texts shown per source")
    args = parser.parse_args()
    started = time.perf_counter()

    sources: list[tuple[str, list[str]]] = list(kb_sources())
    for name, load in (("endava tickets", endava), ("mendeley comments", mendeley),
                       ("askubuntu questions", askubuntu)):
        texts = load()
        if texts is not None:
            sources.append((name, texts))

    print(f"{'source':<28} {'texts':>7} {'flagged':>7} {'rate':>8} {'span words':>10}")
    benign, cues = [], Counter()
    for name, texts in sources:
        tally = measure(name, texts, args.limit, args.examples)
        report(tally)
        benign.append(tally)
        cues.update(tally.cues)

    sys.path.insert(0, str(ROOT))  # the attack corpus is in the test package at the project root
    from enhancement_pipeline_tests.attacks import ATTACKS

    attacks = measure("attacks (ATTACKS)", [a.text for a in ATTACKS], args.limit, 0)
    report(attacks)
    missed = [a.name for a in ATTACKS if not addresses_a_model(a.text)]
    if missed:
        print(f"    attacks not flagged: {'; '.join(missed)}")

    if cues:
        print("cue patterns behind the benign flags (texts in which each fired):")
        for label, count in cues.most_common():
            print(f"  {count:>6}  {label}")
    n = sum(t.flagged for t in benign)
    total = sum(t.texts for t in benign)
    pct = 100 * n / total if total else 0.0
    say(f"{len(benign)} benign sources in {time.perf_counter() - started:.1f} s")
    print(f"echo_false_alarms benign_flagged={n}/{total} ({pct:.2f}%) "
          f"attacks_flagged={attacks.flagged}/{attacks.texts}")


if __name__ == "__main__":
    main()
