"""Triage: what a dispatcher decides about a new ticket, suggested in its note (issue 14).

Pure domain logic:
- ``key_details``: what the ticket names (error codes, hosts, addresses, ids, versions);
- ``taxonomy``: the tenant's SDP categories, priorities, groups, ... (read by ``taxonomy_reader``);
- ``classify``: category, priority and group from the similar resolved tickets' labels (a weighted vote);
- ``calibration``: each tenant's vote-share -> probability curves, fitted on its own history;
- ``rules``: the tenant's routing and escalation rules, which win over the vote;
- ``duplicates``: possible duplicates and major incidents among the tenant's open tickets;
- ``suggestions``: what the run passes to the note, and the note's triage line.

Storage: ``taxonomy_store``, ``calibration_store``, ``recent_store``. Dagster wiring: ``ops`` (the per-ticket
``suggest_triage`` op) and ``assets`` (``<tenant>/sdp_taxonomy``, ``<tenant>/triage_calibration`` and their
daily schedules).
"""
