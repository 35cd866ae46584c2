"""How faithfully the note keeps what a model got right and removes what it invented, per answer path.

What it measures: the labelled answers of ``enhancement_pipeline_tests/note_corpus.py`` (four model
families' styles, good, drifting and bad; see its docstring) are sent through the real openai SDK by the
LLM simulator (each answer scripted, word for word) and turned into notes by ``synthesize``: the structured
path (``response_format`` json_schema) and the Markdown fallback (an endpoint that takes no response
format). For each path: correct items kept, planted inventions removed, notes whose sections are the spec's
four in order, and tokens per note (the simulator's count, ~4 characters a token).

How to run (seconds)::

    .venv/bin/python benchmarks/note_fidelity.py

The last line is ``note_fidelity valid_kept=<a>/<b> bad_removed=<c>/<d> sections_ok=<e>/<f>`` for the
structured path, then the same for the Markdown fallback.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from enhancement_pipeline_tests import note_corpus  # noqa: E402


def main() -> int:
    cases = [(c, note_corpus.CONTEXTS[c.context]) for c in note_corpus.CASES]
    try:
        from enhancement_pipeline_tests import note_corpus_heldout
        cases += [(c, note_corpus_heldout.CONTEXTS[c.context]) for c in note_corpus_heldout.CASES]
    except ImportError:
        print("(no held-out corpus: enhancement_pipeline_tests/note_corpus_heldout.py is missing)")
    totals = note_corpus.run_cases(cases, verbose="-v" in sys.argv, echo=print)
    lines = []
    for path in ("structured", "markdown"):
        t = totals.get(path)
        if not t:
            continue
        print(f"{path}: {t['notes']} notes, valid kept {t['kept']}/{t['keep']}, bad removed {t['removed']}/{t['bad']}, "
              f"sections ok {t['sections']}/{t['notes']}, tokens per note median {statistics.median(t['tokens']):.0f}")
        lines.append(f"{path}: valid_kept={t['kept']}/{t['keep']} bad_removed={t['removed']}/{t['bad']} "
                     f"sections_ok={t['sections']}/{t['notes']}")
    print("note_fidelity " + " | ".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
