"""The model's answer as data: a pydantic model built per ticket, which the model fills through structured
output (``response_format`` ``json_schema``, strict) and the project renders (``answer_render.py``). Pure.

The schema leaves the model nothing to invent where the context decides: a similar ticket is a ``ticket_id``
from an enum of the context's ids, an article an ``article_id`` from the context's ids, a system an IP
address the ticket named, a next step's ``relies_on`` only those ids. Headings, order, subjects, titles,
links, scores and the length cap are the project's; the model writes only short free text (why an item
matches, the fix in the technician's words, the steps), which ``answer_checks.py`` still checks.

A section whose context is empty has no field at all (an enum cannot be empty, and a model cannot fill what
is not there): the renderer writes that section's one line itself.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from enhancement_pipeline.models import InventoryContext, KnowledgeContext, SimilarTicketsContext

ANSWER_SCHEMA_NAME = "ticket_note"
KB_PREFIX = "KB:"
"""How a next step names an article among its ``relies_on`` ids (a ticket id is written bare)."""

MAX_ITEMS = 3
"""Items a section may hold; the context seldom has more, and a note of 500 words cannot use more."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NextStep(_Strict):
    """One recommended step (the per-ticket model narrows ``relies_on``)."""

    step: str = Field(description="One short imperative line, e.g. 'Clear the cached credentials in Credential "
                                  "Manager and restart Outlook.' No ids, scores, links or addresses in it.")
    relies_on: list[str] = Field(description="The ticket ids and KB:article ids this step is based on; empty "
                                             "when it is general advice.")


def _enum(name: str, values: list[str]) -> Any:
    """A str enum of ``values``: pydantic writes it as ``{"enum": [...]}`` even for one value (a one-value
    ``Literal`` becomes ``const``, which not every structured-output server accepts)."""
    return StrEnum(name, [(f"v{i}", v) for i, v in enumerate(values)])


def answer_model(similar: SimilarTicketsContext, knowledge: KnowledgeContext,
                 inventory: InventoryContext) -> type[BaseModel]:
    """The pydantic model of the answer for one ticket's context (its JSON schema goes to the model).

    Fields, in order: ``similar_tickets`` (``ticket_id``, ``why_it_matches``, ``fix``), ``knowledge_articles``
    (``article_id``, ``why_it_applies``), ``systems`` (``ip_address``, ``relevance``) and ``next_steps``
    (``step``, ``relies_on``); a section's field is absent when the context has nothing for it. Ids are the
    context's own strings; enum values keep their order so the schema is stable for one context.
    """
    ticket_ids = list(dict.fromkeys(t.ticket_id for t in similar.items))
    article_ids = list(dict.fromkeys(a.article_id for a in knowledge.items))
    ips = list(dict.fromkeys([*(s.ip_address for s in inventory.items), *inventory.unknown_ips]))
    fields: dict[str, Any] = {}
    if ticket_ids:
        item = create_model(
            "SimilarTicketItem", __base__=_Strict,
            ticket_id=(_enum("TicketId", ticket_ids), Field(description="A ticket_id from context.similar_tickets.")),
            why_it_matches=(str, Field(description="One line: what this ticket shares with the new one.")),
            fix=(str, Field(description="How it was fixed, in the technician's words from its resolution, one or "
                                        "two sentences; empty if the resolution does not say.")))
        fields["similar_tickets"] = (list[item], Field(  # type: ignore[valid-type]
            description=f"The similar tickets that help with this one, best first, at most {MAX_ITEMS}; empty when "
                        "none does."))
    if article_ids:
        item = create_model(
            "ArticleItem", __base__=_Strict,
            article_id=(_enum("ArticleId", article_ids),
                        Field(description="An article_id from context.knowledge_articles.")),
            why_it_applies=(str, Field(description="One line: what in the article applies to this ticket.")))
        fields["knowledge_articles"] = (list[item], Field(  # type: ignore[valid-type]
            description=f"The articles that apply, best first, at most {MAX_ITEMS}; empty when none does."))
    if ips:
        item = create_model(
            "SystemItem", __base__=_Strict,
            ip_address=(_enum("IpAddress", ips),
                        Field(description="An IP address from context.systems or context.unknown_ips.")),
            relevance=(str, Field(description="One line: why this system matters for the ticket (the inventory's "
                                              "facts are added by the pipeline).")))
        fields["systems"] = (list[item], Field(  # type: ignore[valid-type]
            description="Each IP address of the ticket worth the technician's attention."))
    relies = [*ticket_ids, *(KB_PREFIX + a for a in article_ids)]
    step = create_model(
        "NextStep", __base__=_Strict,
        step=(str, NextStep.model_fields["step"]),
        relies_on=(list[_enum("CitedId", relies)] if relies else list[str], NextStep.model_fields["relies_on"]))
    fields["next_steps"] = (list[step], Field(  # type: ignore[valid-type]
        description="2 to 5 recommended next steps, most useful first."))
    return create_model("TicketNote", __base__=_Strict, **fields)


def empty_answer(model: type[BaseModel]) -> BaseModel:
    """An answer with every section empty (what a refusal or an unusable answer leaves)."""
    return model.model_validate({name: [] for name in model.model_fields})
