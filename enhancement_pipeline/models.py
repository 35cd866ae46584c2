"""Pydantic models that cross domains.

They are the shapes passed between the Dagster ops of ``enhance_ticket`` (pickled by the IO manager) and
between pure domain functions; all validation of outside data happens when these are built.
"""

from __future__ import annotations

from datetime import datetime
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from enhancement_pipeline.triage.classify import Neighbour


class Ticket(BaseModel):
    """A ServiceDesk Plus request as the pipeline sees it (from ``GET /api/v3/requests/{id}``).

    ``description`` is plain text (SDP sends HTML; see ``servicedesk.payloads.html_to_text``), without control
    characters, and at most ``servicedesk.payloads.MAX_DESCRIPTION_CHARS`` long (``description_cut`` says it
    was cut; ``description_chars`` is the length SDP sent). Times are timezone-aware UTC datetimes converted
    from SDP's epoch-millisecond strings.
    """

    model_config = ConfigDict(frozen=True)

    tenant_id: str
    ticket_id: str = Field(description="SDP request id (a string: cloud ids are 18 digits).")
    display_id: str | None = None
    subject: str
    description: str = ""
    description_chars: int | None = Field(default=None, description="Characters of the description as SDP sent "
                                          "it (HTML and all); None when not counted.")
    description_cut: bool = Field(default=False, description="Whether description is the start of a longer one, "
                                  "cut to MAX_DESCRIPTION_CHARS.")
    status: str | None = None
    requester: str | None = None
    technician: str | None = None
    priority: str | None = Field(default=None, description="SDP's priority name as set on the request.")
    category: str | None = None
    subcategory: str | None = None
    item: str | None = None
    support_group: str | None = Field(default=None, description="SDP's group (the support group) the request is in.")
    site: str | None = None
    requester_id: str | None = Field(default=None, description="SDP's user id of the requester.")
    requester_email: str | None = Field(default=None, description="The requester's e-mail address as SDP sends it "
                                        "(``requester.email_id``), for the routing rules' VIP list.")
    created_at: datetime | None = None
    resolved_at: datetime | None = None
    resolution: str | None = None

    @property
    def text(self) -> str:
        """Subject and description, the text every context lookup searches."""
        return f"{self.subject}\n{self.description}".strip()


class SimilarTicket(BaseModel):
    """A resolved ticket from ``ticket_history`` ranked against the new ticket (``history.search``).

    ``score`` in 0..1 is the stronger of two signals: the share of the new ticket's weighted terms it holds,
    and (with the embeddings extra) the cosine similarity of the two tickets' embeddings.
    """

    ticket_id: str
    subject: str
    resolution: str
    resolved_at: datetime | None = None
    score: float


class KbArticle(BaseModel):
    """A knowledge-base article returned by the KB search API."""

    article_id: str
    title: str
    url: str | None = None
    summary: str = ""
    score: float = 0.0
    # The project's own judgement (knowledge.relevance): cosine of the ticket to the title and summary.
    relevance: float | None = None


class SystemInfo(BaseModel):
    """What ``system_inventory`` knows about one IP address found in the ticket.

    ``matched`` is the inventory row's address or network (a host IP can match its subnet's record).
    """

    ip_address: str
    matched: str
    hostname: str | None = None
    role: str | None = None
    client: str | None = None
    location: str | None = None


T = TypeVar("T")


class ContextSection(BaseModel, Generic[T]):
    """The result of one context lookup: its items, or the error that made it degrade to nothing."""

    items: list[T] = Field(default_factory=list)
    error: str | None = None
    elapsed_ms: float = 0.0


class SimilarTicketsContext(ContextSection[SimilarTicket]):
    """The ``similar_tickets`` output of ``gather_context``; ``neighbours``: from the same search, the first
    ten resolved tickets however weak (no relevance floor) with their labels, for the triage vote."""

    neighbours: list[Neighbour] = Field(default_factory=list)


class KnowledgeContext(ContextSection[KbArticle]):
    """The ``knowledge_articles`` output of ``gather_context``."""


class InventoryContext(ContextSection[SystemInfo]):
    """The ``inventory_lookup`` output of ``gather_context``; ``unknown_ips``: in the ticket, not in the inventory."""

    ips_found: list[str] = Field(default_factory=list)
    unknown_ips: list[str] = Field(default_factory=list)


class Note(BaseModel):
    """The enhancement note for one ticket.

    ``markdown``/``html`` are the note as posted to SDP (sanitized HTML), with personal data restored;
    ``redacted_markdown`` is the same note with placeholders, the only form written to Dagster's event log.
    ``removed`` counts what the output checks took out, by reason; ``reshaped`` what arranging the sections
    changed; ``redactions`` the distinct values replaced by placeholders, by kind. ``shadow``: keep the note
    in the run's metadata and post nothing. Costs are estimates in US dollars.
    """

    tenant_id: str
    ticket_id: str
    markdown: str
    html: str
    redacted_markdown: str
    mode: Literal["llm", "deterministic"]
    ticket_created_at: datetime | None = Field(default=None, description="When SDP says the ticket was created "
                                               "(UTC): the start of the ticket's wait for its note.")
    model: str | None = None
    prompt_version: str
    fallback_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    llm_attempts: int = 0
    cost_usd: float = 0.0
    word_count: int = 0
    removed: dict[str, int] = Field(default_factory=dict)
    reshaped: dict[str, int] = Field(default_factory=dict)
    redactions: dict[str, int] = Field(default_factory=dict)
    answer_path: str | None = Field(default=None, description="How the model answered: json_schema, json_object "
                                    "or markdown (``enhancement.llm``); None for a deterministic note.")
    llm_steps: list[str] = Field(default_factory=list, description="What each rung of the LLM ladder did.")
    vague_reason: str | None = Field(default=None, description="Why the ticket is too vague to act on "
                                     "(``clarification.vagueness``); None when it is not.")
    questions: list[str] = Field(default_factory=list, description="What the note asks the technician to ask the "
                                 "requester of a vague ticket.")
    reply_draft: str | None = Field(default=None, description="The suggested reply to the requester as the note "
                                    "shows it (``clarification.reply``); None without one.")
    shadow: bool = False

    @property
    def removed_total(self) -> int:
        return sum(self.removed.values())
