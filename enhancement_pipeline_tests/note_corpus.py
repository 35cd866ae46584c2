# ruff: noqa: E501  (model answers are kept as the models write them, long lines included)
"""Realistic model answers for the note's checks (issue 13): what four model families write for this
project's prompts, good, drifting and bad, each labelled with what a correct note keeps and what it must not
show. Written by hand in the styles these families show for such prompts (GPT-4o-mini: terse and on
spec; Claude Haiku: level-2 headings, bold labels, nested bullets, a closing offer; Llama-3-8B-Instruct: bold
or numbered headings, "Ticket #id", scores in its own words, invented ids and hosts; Qwen2.5-7B-Instruct:
fenced JSON, ids without prefixes, articles by title or URL, "I hope this helps!").

``structured`` answers are JSON for the answer model (``enhancement.answer``); ``markdown`` ones answer the
Markdown prompt. ``keep``: phrases the posted note must hold (a correct item survived); ``bad``: phrases it
must not (a planted invention was removed). Used by ``test_note_fidelity.py`` and
``benchmarks/note_fidelity.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from enhancement_pipeline.models import (
    InventoryContext,
    KbArticle,
    KnowledgeContext,
    SimilarTicket,
    SimilarTicketsContext,
    SystemInfo,
    Ticket,
)


@dataclass(frozen=True)
class Context:
    ticket: Ticket
    similar: SimilarTicketsContext
    knowledge: KnowledgeContext
    inventory: InventoryContext


@dataclass(frozen=True)
class Case:
    family: str
    context: str
    path: str  # "structured" or "markdown"
    content: str
    keep: list[str] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.family}/{self.context}/{self.path}"


CONTEXTS = {
    "outlook": Context(
        Ticket(tenant_id="acme", ticket_id="7001", subject="Outlook keeps asking for my password",
               description="Since this morning Outlook prompts for my password again and again. The mail server "
                           "is 10.0.0.5. It started after the password change on Monday.",
               status="Open", priority="High", category="Email"),
        SimilarTicketsContext(items=[
            SimilarTicket(ticket_id="6101", subject="Outlook password prompt loop", score=0.71,
                          resolution="Cleared the cached credentials in Credential Manager and recreated the "
                                     "Outlook profile."),
            SimilarTicket(ticket_id="6102", subject="Password prompts after the mailbox move", score=0.55,
                          resolution="Removed the stale autodiscover entry and restarted Outlook.")]),
        KnowledgeContext(items=[KbArticle(article_id="ms-outlook-cred", title="Outlook prompts for a password",
                                          url="https://learn.microsoft.com/outlook/cred-prompts",
                                          summary="Cached credentials and modern authentication.")]),
        InventoryContext(items=[SystemInfo(ip_address="10.0.0.5", matched="10.0.0.5", hostname="EXCH01",
                                           role="mail server", client="Acme")], ips_found=["10.0.0.5"])),
    "vpn": Context(
        Ticket(tenant_id="acme", ticket_id="7002", subject="VPN error 809 from home",
               description="I cannot connect to the VPN from home since yesterday: error 809. The firewall is "
                           "192.168.10.1 and my router is 203.0.113.9.", status="Open", priority="Medium"),
        SimilarTicketsContext(items=[
            SimilarTicket(ticket_id="6201", subject="VPN error 809 with L2TP", score=0.82,
                          resolution="Set the AssumeUDPEncapsulationContextOnSendRule registry value to 2 and "
                                     "rebooted the laptop."),
            SimilarTicket(ticket_id="6202", subject="VPN drops every 10 minutes", score=0.48,
                          resolution="Updated FortiClient to 7.2 and disabled IPv6 on the adapter.")]),
        KnowledgeContext(items=[KbArticle(article_id="ms-vpn-809", title="Troubleshoot VPN error 809",
                                          url="https://learn.microsoft.com/vpn/error-809",
                                          summary="NAT traversal for L2TP/IPsec behind NAT.")]),
        InventoryContext(items=[SystemInfo(ip_address="192.168.10.1", matched="192.168.10.1",
                                           hostname="FW-EDGE01", role="firewall", client="Acme")],
                         ips_found=["192.168.10.1", "203.0.113.9"], unknown_ips=["203.0.113.9"])),
    "printer": Context(
        Ticket(tenant_id="acme", ticket_id="7003", subject="Printer on the 2nd floor shows offline",
               description="The printer at 10.1.2.50 shows offline for everyone on the 2nd floor since the "
                           "Windows update last night.", status="Open", priority="Low"),
        SimilarTicketsContext(items=[
            SimilarTicket(ticket_id="6301", subject="Printer offline after Windows update", score=0.77,
                          resolution="Removed and re-added the printer with a Standard TCP/IP port and restarted "
                                     "the Print Spooler service.")]),
        KnowledgeContext(),
        InventoryContext(items=[SystemInfo(ip_address="10.1.2.50", matched="10.1.2.50", hostname="PRN-2F-01",
                                           role="printer", client="Acme")], ips_found=["10.1.2.50"])),
}


def _j(answer: dict) -> str:
    return json.dumps(answer, indent=2)


STRUCTURED = [
    # GPT-4o-mini: on spec.
    Case("gpt-4o-mini", "outlook", "structured", _j({
        "similar_tickets": [
            {"ticket_id": "6101", "why_it_matches": "Same repeated password prompt in Outlook.",
             "fix": "Cleared the cached credentials in Credential Manager and recreated the Outlook profile."},
            {"ticket_id": "6102", "why_it_matches": "Prompts began after an account change.",
             "fix": "Removed the stale autodiscover entry and restarted Outlook."}],
        "knowledge_articles": [{"article_id": "ms-outlook-cred",
                                "why_it_applies": "Explains cached credentials after a password change."}],
        "systems": [{"ip_address": "10.0.0.5", "relevance": "The mail server the requester connects to."}],
        "next_steps": [
            {"step": "Remove the saved Outlook credentials in Credential Manager.", "relies_on": ["6101"]},
            {"step": "Recreate the Outlook profile if the prompt returns.", "relies_on": ["6101"]},
            {"step": "Check the autodiscover record for stale entries.", "relies_on": ["6102", "KB:ms-outlook-cred"]}]}),
        keep=["#6101", "#6102", "Same repeated password prompt", "KB:ms-outlook-cred", "EXCH01",
              "Remove the saved Outlook credentials", "Recreate the Outlook profile if", "Check the autodiscover"]),
    Case("gpt-4o-mini", "vpn", "structured", _j({
        "similar_tickets": [
            {"ticket_id": "6201", "why_it_matches": "Identical error 809 on an L2TP VPN.",
             "fix": "Set AssumeUDPEncapsulationContextOnSendRule to 2 and rebooted."}],
        "knowledge_articles": [{"article_id": "ms-vpn-809", "why_it_applies": "Covers NAT traversal for error 809."}],
        "systems": [{"ip_address": "192.168.10.1", "relevance": "The VPN endpoint."},
                    {"ip_address": "203.0.113.9", "relevance": "The requester's home router, not managed by us."}],
        "next_steps": [
            {"step": "Set the AssumeUDPEncapsulationContextOnSendRule registry value to 2 and reboot.",
             "relies_on": ["6201", "KB:ms-vpn-809"]},
            {"step": "Confirm UDP 500 and 4500 are allowed on the firewall.", "relies_on": ["KB:ms-vpn-809"]},
            {"step": "Escalate to the network team if it still fails, citing ticket 6999.", "relies_on": []}]}),
        keep=["#6201", "Identical error 809", "KB:ms-vpn-809", "FW-EDGE01", "home router",
              "registry value to 2 and reboot", "UDP 500 and 4500"],
        bad=["6999"]),
    # Claude Haiku: fuller prose, a code span with a placeholder, a closing offer as a last step.
    Case("claude-haiku", "outlook", "structured", _j({
        "similar_tickets": [
            {"ticket_id": "6101", "why_it_matches": "This ticket describes the same endless credential prompt "
                                                    "in Outlook shortly after a password change.",
             "fix": "The technician cleared the cached credentials in Credential Manager and then recreated "
                    "the Outlook profile, which stopped the prompts."}],
        "knowledge_articles": [{"article_id": "ms-outlook-cred",
                                "why_it_applies": "It walks through clearing cached credentials and checking "
                                                  "modern authentication."}],
        "systems": [{"ip_address": "10.0.0.5", "relevance": "This is the Exchange server named in the ticket."}],
        "next_steps": [
            {"step": "Open Credential Manager and delete every entry for Outlook and Office.", "relies_on": ["6101"]},
            {"step": "Run `Get-Mailbox -Identity <user> | fl *auth*` to confirm modern authentication.",
             "relies_on": ["ms-outlook-cred"]},
            {"step": "Let me know if you would like a script to automate the profile rebuild!", "relies_on": []}]}),
        keep=["#6101", "endless credential prompt", "cleared the cached credentials", "KB:ms-outlook-cred",
              "Exchange server named", "delete every entry for Outlook", "`Get-Mailbox -Identity <user> | fl *auth*`"],
        bad=["Let me know", "automate the profile rebuild"]),
    Case("claude-haiku", "printer", "structured", _j({
        "similar_tickets": [
            {"ticket_id": "6301", "why_it_matches": "The same printer went offline right after a Windows update.",
             "fix": "Removed and re-added the printer with a Standard TCP/IP port, then restarted the Print "
                    "Spooler service."}],
        "systems": [{"ip_address": "10.1.2.50", "relevance": "The affected printer, PRN-2F-01."}],
        "next_steps": [
            {"step": "Restart the Print Spooler service on one affected PC and test a print.", "relies_on": ["6301"]},
            {"step": "Re-add the printer with a Standard TCP/IP port if it stays offline.", "relies_on": ["6301"]},
            {"step": "Check whether the update also reached the print server SRV-PRINT02.", "relies_on": []}]}),
        keep=["#6301", "went offline right after a Windows update", "PRN-2F-01", "Restart the Print Spooler",
              "Re-add the printer with a Standard TCP/IP port"],
        bad=["SRV-PRINT02"]),
    # Llama-3-8B: numbers for ids, extra keys, its own score wording, an invented ticket and a made-up e-mail.
    Case("llama-3-8b", "vpn", "structured", _j({
        "similar_tickets": [
            {"ticket_id": 6201, "why_it_matches": "Same error 809 (similarity 0.95).", "confidence": "high",
             "fix": "Registry fix AssumeUDPEncapsulationContextOnSendRule = 2, reboot."},
            {"ticket_id": "#6202", "why_it_matches": "VPN disconnects, like INC0012345.",
             "fix": "Updated FortiClient to 7.2 and disabled IPv6."}],
        "knowledge_articles": [{"article_id": "KB:ms-vpn-809", "why_it_applies": "Error 809 troubleshooting."}],
        "systems": [{"ip_address": "192.168.10.1", "relevance": "Firewall for the VPN."}],
        "next_steps": [
            {"step": "Apply the registry fix and reboot.", "relies_on": [6201]},
            {"step": "Email vpn-support@acme-it.com with the logs.", "relies_on": []},
            {"step": "Update FortiClient if the disconnects continue.", "relies_on": ["#6202"]}],
        "summary": "VPN issue likely caused by NAT."}),
        keep=["#6201", "Same error 809", "Registry fix AssumeUDPEncapsulationContextOnSendRule", "#6202",
              "Updated FortiClient to 7.2", "KB:ms-vpn-809", "Firewall for the VPN", "Apply the registry fix",
              "Update FortiClient if"],
        bad=["0.95", "INC0012345", "vpn-support@acme-it.com", "likely caused by NAT"]),
    Case("llama-3-8b", "outlook", "structured", _j({
        "similar_tickets": [
            {"ticket_id": "6101", "why_it_matches": "Outlook password loop",
             "fix": "Clear credentials in Credential Manager, see #3388 for the script."},
            {"ticket_id": "6102", "why_it_matches": "Password prompts", "fix": ""}],
        "knowledge_articles": [],
        "next_steps": [
            {"step": "Clear the cached credentials.", "relies_on": ["6101"]},
            {"step": "Check the mail server at 10.0.0.99.", "relies_on": []},
            {"step": "Restart Outlook.", "relies_on": ["6102"]}]}),
        keep=["#6101", "Outlook password loop", "#6102", "Clear the cached credentials.", "Restart Outlook.",
              "KB:ms-outlook-cred", "EXCH01"],
        bad=["#3388", "10.0.0.99"]),
    # Qwen2.5-7B: fenced JSON with a sentence before it, article and ticket ids without prefixes, an invented URL.
    Case("qwen2.5-7b", "vpn", "structured", "Here is the note:\n```json\n" + _j({
        "similar_tickets": [
            {"ticket_id": "6201", "why_it_matches": "Error 809 on L2TP, same as this ticket.",
             "fix": "Set AssumeUDPEncapsulationContextOnSendRule to 2 and rebooted the laptop."}],
        "knowledge_articles": [{"article_id": "ms-vpn-809", "why_it_applies": "Official steps for error 809."}],
        "systems": [{"ip_address": "203.0.113.9", "relevance": "Home router outside the inventory."}],
        "next_steps": [
            {"step": "Apply the registry change from the similar ticket.", "relies_on": ["6201"]},
            {"step": "Follow the steps at https://vpnfix.example.net/809 to reset IPsec.", "relies_on": []},
            {"step": "Verify NAT traversal on the firewall.", "relies_on": ["ms-vpn-809"]},
            {"step": "I hope this helps!", "relies_on": []}]}) + "\n```",
        keep=["#6201", "Error 809 on L2TP", "KB:ms-vpn-809", "Official steps for error 809",
              "Home router outside the inventory", "Apply the registry change", "Verify NAT traversal"],
        bad=["vpnfix.example.net", "I hope this helps"]),
    Case("qwen2.5-7b", "printer", "structured", _j({
        "similar_tickets": [
            {"ticket_id": "6301", "why_it_matches": "Printer offline after the Windows update, relevance score: 0.9.",
             "fix": "Re-added the printer with a Standard TCP/IP port and restarted the spooler."}],
        "systems": [{"ip_address": "10.1.2.50", "relevance": "The offline printer."}],
        "next_steps": [
            {"step": "Restart the Print Spooler service.", "relies_on": ["6301"]},
            {"step": "Re-add the printer with a Standard TCP/IP port.", "relies_on": ["6301"]},
            {"step": "Check the printer's web page at printer2f.acme.local.", "relies_on": []}]}),
        keep=["#6301", "Printer offline after the Windows update", "Re-added the printer", "The offline printer",
              "Restart the Print Spooler service.", "Re-add the printer with a Standard TCP/IP port."],
        bad=["0.9", "printer2f.acme.local"]),
]

MARKDOWN = [
    Case("gpt-4o-mini", "outlook", "markdown", """### Similar resolved tickets
- [#6101] Outlook password prompt loop (match 0.71): cleared cached credentials in Credential Manager and recreated the profile.
- [#6102] Password prompts after the mailbox move (match 0.55): removed the stale autodiscover entry.

### Knowledge base articles
- [KB:ms-outlook-cred] Explains cached credentials after a password change.

### Systems involved
- 10.0.0.5 is EXCH01, the Acme mail server.

### Recommended next steps
1. Clear the cached credentials in Credential Manager ([#6101]).
2. Recreate the Outlook profile if prompts continue.
3. Check autodiscover for stale entries ([#6102]).""",
         keep=["#6101", "#6102", "KB:ms-outlook-cred", "EXCH01", "Clear the cached credentials in Credential",
               "Recreate the Outlook profile if", "Check autodiscover for stale entries"]),
    Case("claude-haiku", "vpn", "markdown", """## Similar Resolved Tickets

- **[#6201] VPN error 809 with L2TP** (match 0.82)
  - **Resolution:** Set AssumeUDPEncapsulationContextOnSendRule to 2 and rebooted.
- **[#6999] VPN error 809 on Windows 11** (match 0.77)
  - **Resolution:** Reinstalled the WAN Miniport drivers.

## Knowledge Base Articles

- [Troubleshoot VPN error 809](https://learn.microsoft.com/vpn/error-809): NAT traversal guidance.

## Systems Involved

- **192.168.10.1**: FW-EDGE01, firewall.
- **203.0.113.9**: not in the inventory (likely the home router).

## Recommended Next Steps

1. Apply the AssumeUDPEncapsulationContextOnSendRule registry change and reboot.
2. Confirm UDP 500/4500 pass the firewall.

I hope this helps! Let me know if you need anything else.""",
         keep=["#6201", "Set AssumeUDPEncapsulationContextOnSendRule to 2", "KB:ms-vpn-809", "FW-EDGE01",
               "203.0.113.9", "Apply the AssumeUDPEncapsulationContextOnSendRule", "Confirm UDP 500/4500"],
         bad=["#6999", "WAN Miniport", "I hope this helps"]),
    Case("llama-3-8b", "vpn", "markdown", """**Similar Tickets:**

* Ticket [#6201] - VPN error 809 with L2TP (similarity 0.95) - fixed by setting AssumeUDPEncapsulationContextOnSendRule to 2.
* See also TKT-123 for a similar case.

**Knowledge Base:**

* [KB:ms-vpn-809] Troubleshoot VPN error 809

**System Info:**

* 192.168.10.1 - FW-EDGE01 (firewall)
* The VPN concentrator is VPN-GW02.

**Next Steps:**

1. Set the registry value and reboot ([#6201]).
2. Contact netops@acme-corp.com if it persists.
3. Check the firewall rules for UDP 4500.""",
         keep=["#6201", "fixed by setting AssumeUDPEncapsulationContextOnSendRule", "KB:ms-vpn-809", "FW-EDGE01",
               "Set the registry value and reboot", "Check the firewall rules for UDP 4500"],
         bad=["0.95", "TKT-123", "VPN-GW02", "netops@acme-corp.com"]),
    Case("qwen2.5-7b", "outlook", "markdown", """1. Similar Resolved Tickets:
- [#6101] Outlook password prompt loop (match 0.71). Fix: clear Credential Manager and rebuild the profile.
- Ticket 917 had the same issue.

2. Knowledge Base Articles:
- **Outlook prompts for a password**: read this first.

### System Info
- 10.0.0.5: EXCH01 (mail server)

Next Steps
1. Clear Credential Manager entries for Outlook ([#6101]).
2. Rebuild the Outlook profile.
3. I hope this helps!""",
         keep=["#6101", "clear Credential Manager and rebuild", "KB:ms-outlook-cred", "read this first", "EXCH01",
               "Clear Credential Manager entries", "Rebuild the Outlook profile"],
         bad=["917", "I hope this helps"]),
]

CASES = STRUCTURED + MARKDOWN


@dataclass(frozen=True)
class Score:
    """How one note did on its case: correct items kept, planted ones removed, sections as the spec says."""

    kept: int
    keep: int
    removed: int
    bad: int
    sections_ok: bool
    lost: tuple[str, ...] = ()
    shown: tuple[str, ...] = ()


def score(case: Case, markdown: str, section_titles: tuple[str, ...]) -> Score:
    """``markdown`` (the posted note) judged against ``case``'s labels."""
    lost = tuple(p for p in case.keep if p not in markdown)
    shown = tuple(p for p in case.bad if p in markdown)
    headings = [line[4:] for line in markdown.splitlines() if line.startswith("### ")]
    return Score(kept=len(case.keep) - len(lost), keep=len(case.keep), removed=len(case.bad) - len(shown),
                 bad=len(case.bad), sections_ok=headings == list(section_titles), lost=lost, shown=shown)


def run_cases(cases: list[tuple[Case, Context]], verbose: bool = False, echo=lambda line: None) -> dict[str, dict]:
    """Each case's answer scripted into the LLM simulator, sent through the real openai SDK by
    ``LlmResource`` (json_schema for structured cases, the Markdown prompt for the others) and made a note
    by ``synthesize``. Per path: kept/keep, removed/bad, sections/notes, tokens and the cases that fell short
    (``failures``: (name, lost, shown, sections_ok))."""
    import os

    from enhancement_pipeline.enhancement.llm import LlmResource
    from enhancement_pipeline.enhancement.prompts import SECTION_TITLES
    from enhancement_pipeline.enhancement.synthesis import synthesize
    from enhancement_pipeline.local import llm_simulator
    from enhancement_pipeline.local.http_server import serve_in_thread

    state = llm_simulator.LlmSimState(api_key="fidelity")
    server = serve_in_thread(llm_simulator.create_app(state), name="llm-fidelity")
    os.environ["NOTE_FIDELITY_LLM_KEY"] = "fidelity"
    totals: dict[str, dict] = {}
    try:
        for case, ctx in cases:
            rung = "json_schema" if case.path == "structured" else "markdown"
            llm = LlmResource(base_url=f"{server.url}/v1", api_key_env="NOTE_FIDELITY_LLM_KEY", model="sim/model",
                              retry_waits_s=[0.01], structured_output=rung)
            with state.lock:
                state.faults[:] = [{"content": case.content}]
            note = synthesize(ctx.ticket, ctx.similar, ctx.knowledge, ctx.inventory, complete=llm.answer,
                              request_url=lambda rid: f"https://sdp.example/WorkOrder.do?woID={rid}")
            s = score(case, note.markdown, SECTION_TITLES)
            t = totals.setdefault(case.path, {"kept": 0, "keep": 0, "removed": 0, "bad": 0, "sections": 0,
                                              "notes": 0, "tokens": [], "failures": []})
            for key, value in (("kept", s.kept), ("keep", s.keep), ("removed", s.removed), ("bad", s.bad),
                               ("sections", s.sections_ok), ("notes", 1)):
                t[key] += value
            t["tokens"].append(note.prompt_tokens + note.completion_tokens)
            short = bool(s.lost or s.shown or not s.sections_ok)
            if short:
                t["failures"].append((case.name, s.lost, s.shown, s.sections_ok))
            echo(f"{case.name:44} path={note.answer_path or note.mode:11} kept {s.kept}/{s.keep} removed "
                 f"{s.removed}/{s.bad} sections {'ok' if s.sections_ok else 'WRONG'}{'  <--' if short else ''}")
            for p in s.lost:
                echo(f"    lost: {p!r}")
            for p in s.shown:
                echo(f"    shown: {p!r}")
            if verbose and short:
                echo(note.markdown)
    finally:
        server.stop()
        os.environ.pop("NOTE_FIDELITY_LLM_KEY", None)
    return totals
