"""``enhance_ticket``: one run per new ticket, launched by ``new_ticket_sensor``."""

import dagster as dg

from enhancement_pipeline.enhancement.ops import (
    inventory_lookup,
    knowledge_articles,
    load_ticket,
    post_note,
    similar_tickets,
    synthesize_note,
)


# In-process executor: a process per step costs seconds per op on a small machine, and the lookups are short.
@dg.job(executor_def=dg.in_process_executor,
        description="Load a new ticket, gather similar tickets, KB articles and inventory, write and post a note.")
def enhance_ticket() -> None:
    ticket = load_ticket()
    post_note(synthesize_note(ticket, similar_tickets(ticket), knowledge_articles(ticket), inventory_lookup(ticket)))
