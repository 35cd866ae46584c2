"""``enhance_ticket``: one run per new ticket, launched by ``new_ticket_sensor``."""

import dagster as dg

from enhancement_pipeline.clarification.ops import ask_requester
from enhancement_pipeline.delivery.failures import MAX_RUNTIME_S, RUN_MAX_RETRIES
from enhancement_pipeline.enhancement.ops import gather_context, load_ticket, post_note, synthesize_note
from enhancement_pipeline.enhancement.prompts import PROMPT_VERSION
from enhancement_pipeline.triage.ops import apply_triage, suggest_triage

PROMPT_VERSION_TAG = "prompt_version"
"""Run tag on every run of the job, sensor-launched or by hand (job tags join every run's): the prompt
version that wrote the note, so runs can be filtered by it in the UI."""


# In-process executor: a process per step costs seconds per op on a small machine, and the lookups are short.
# dagster/max_retries and dagster/max_runtime: runs that recover (delivery/failures.py, dagster.yaml).
@dg.job(executor_def=dg.in_process_executor,
        tags={PROMPT_VERSION_TAG: PROMPT_VERSION, "dagster/max_retries": str(RUN_MAX_RETRIES),
              "dagster/max_runtime": str(MAX_RUNTIME_S)},
        description="Load a new ticket, gather similar tickets, KB articles and inventory, suggest its triage (and, in "
                    "a tenant's apply mode, write it into the request's empty fields), write and post a note, and "
                    "ask the requester of a vague ticket what is missing (where the tenant asks).")
def enhance_ticket() -> None:
    ticket = load_ticket()
    similar, knowledge, inventory = gather_context(ticket)
    triage = apply_triage(ticket, suggest_triage(ticket, similar))
    note = synthesize_note(ticket, similar, knowledge, inventory, triage)
    ask_requester(ticket, note, posted=post_note(note))
