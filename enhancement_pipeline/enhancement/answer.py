"""The model's answer as data: a pydantic model built per ticket, which the model fills through structured
output (``response_format`` ``json_schema``, strict) and the project renders (``answer_render.py``). Pure.

The schema leaves the model nothing to invent where the context decides: a similar ticket is a ``ticket_id``
from an enum of the context's ids, an article an ``article_id`` from the context's ids, a system an IP
address the ticket named, a next step's ``relies_on`` only those ids. Headings, order, subjects, titles,
links, scores and the length cap are the project's; the model writes only short free text (why an item
matches, the fix in the technician's words, the steps), which ``answer_checks.py`` still checks.

A section whose context is empty has no field at all (an enum cannot be empty, and a model cannot fill what
is not there): the renderer writes that section's one line itself.

The schema sent is strict (``strict_schema``); validation is lenient where models are known to drift
without being wrong (an endpoint without ``json_schema`` enforces nothing): an id written as a number, as
``#6101`` or an article id without its ``KB:``; keys the schema does not have (ignored); a section left out
(empty); an id outside the context's (the item goes at rendering, counted, and the rest stays).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from enhancement_pipeline.models import InventoryContext, KnowledgeContext, SimilarTicketsContext

ANSWER_SCHEMA_NAME = "ticket_note"
KB_PREFIX = "KB:"
"""How a next step names an article among its ``relies_on`` ids (a ticket id is written bare)."""

MAX_ITEMS = 3
"""Items a section may hold; the context seldom has more, and a note of 500 words cannot use more."""


class _Strict(BaseModel):
    # Extra keys are ignored when validating; the schema sent still forbids them (``strict_schema``).
    model_config = ConfigDict(extra="ignore")


def strict_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema as OpenAI's strict mode wants it: every object with ``additionalProperties:
    false`` and every property required (fields with defaults included), no ``default`` keywords, and no
    ``title`` keywords (pydantic's titles repeat the field names: tokens billed for nothing). Why our own: the
    openai SDK's converter (``to_strict_json_schema``) is private API."""
    def walk(node: Any, in_properties: bool = False) -> Any:
        if isinstance(node, dict):
            if in_properties:  # keys here are field names, one of which could be "title"
                return {k: walk(v) for k, v in node.items()}
            node = {k: walk(v, k == "properties") for k, v in node.items() if k not in ("default", "title")}
            if node.get("type") == "object" or "properties" in node:
                node["additionalProperties"] = False
                node["required"] = list((node.get("properties") or {}).keys())
            return node
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node
    return walk(model.model_json_schema())


class NextStep(_Strict):
    """One recommended step (the per-ticket model narrows ``relies_on``)."""

    step: str = Field(description="One short imperative line, e.g. 'Clear the cached credentials in Credential "
                                  "Manager and restart Outlook.' No ids, scores, links or addresses in it.")
    relies_on: list[str] = Field(description="The ticket ids and KB:article ids this step is based on; empty "
                                             "when it is general advice.")


def _enum(name: str, values: list[str]) -> Any:
    """A string the schema restricts to ``values`` (``{"type": "string", "enum": [...]}``, even for one value:
    a one-value ``Literal`` would become ``const``, which not every structured-output server accepts).

    Validation takes any string: an endpoint that enforces no schema (json_object, Markdown-era servers) can
    send an id outside the set, and one such item must cost that item, not the whole answer; the renderer
    drops it and counts it (``answer_render``)."""
    return Annotated[str, Field(json_schema_extra={"enum": list(values)})]


def answer_model(similar: SimilarTicketsContext, knowledge: KnowledgeContext,
                 inventory: InventoryContext, *, reply: bool = False) -> type[BaseModel]:
    """The pydantic model of the answer for one ticket's context (its JSON schema goes to the model).

    Fields, in order: ``similar_tickets`` (``ticket_id``, ``why_it_matches``, ``fix``), ``knowledge_articles``
    (``article_id``, ``why_it_applies``), ``systems`` (``ip_address``, ``relevance``) and ``next_steps``
    (``step``, ``relies_on``); a section's field is absent when the context has nothing for it. Ids are the
    context's own strings; enum values keep their order so the schema is stable for one context. With ``reply``,
    also ``reply_to_requester`` (the draft ``clarification.reply`` checks).
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
            default=[], description=f"The similar tickets that help with this one, best first, at most "
                                    f"{MAX_ITEMS}; empty when none does."))
    if article_ids:
        item = create_model(
            "ArticleItem", __base__=_Strict,
            article_id=(_enum("ArticleId", article_ids),
                        Field(description="An article_id from context.knowledge_articles.")),
            why_it_applies=(str, Field(description="One line: what in the article applies to this ticket.")))
        fields["knowledge_articles"] = (list[item], Field(  # type: ignore[valid-type]
            default=[], description=f"The articles that apply, best first, at most {MAX_ITEMS}; empty when none does."))
    if ips:
        item = create_model(
            "SystemItem", __base__=_Strict,
            ip_address=(_enum("IpAddress", ips),
                        Field(description="An IP address from context.systems or context.unknown_ips.")),
            relevance=(str, Field(description="One line: why this system matters for the ticket (the inventory's "
                                              "facts are added by the pipeline).")))
        fields["systems"] = (list[item], Field(  # type: ignore[valid-type]
            default=[], description="Each IP address of the ticket worth the technician's attention."))
    relies = [*ticket_ids, *(KB_PREFIX + a for a in article_ids)]
    step = create_model(
        "NextStep", __base__=_Strict,
        step=(str, NextStep.model_fields["step"]),
        relies_on=(list[_enum("CitedId", relies)] if relies else list[str], NextStep.model_fields["relies_on"]))
    fields["next_steps"] = (list[step], Field(  # type: ignore[valid-type]
        default=[], description="2 to 5 recommended next steps, most useful first."))
    if reply:
        fields["reply_to_requester"] = (str, Field(default="", description="A reply the technician can send the "
                                                   "requester (see the rules); empty if none fits."))
    normal = _Normaliser(set(ticket_ids), set(article_ids))
    return create_model("TicketNote", __base__=_Strict, __validators__={"_ids": normal.validator()}, **fields)


def _as_list(value: Any) -> list:
    """``relies_on`` as a list: a lone id (``"6101"``, ``6101``) is a list of one, nothing is empty."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


class _Normaliser:
    """Ids as models write them, put back in the context's form before the enums judge them."""

    def __init__(self, ticket_ids: set[str], article_ids: set[str]) -> None:
        self.tickets, self.articles = ticket_ids, article_ids

    def ticket(self, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int | str):
            return v
        return str(v).strip().lstrip("#").strip()

    def article(self, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            v = str(v)
        if not isinstance(v, str):
            return v
        text = v.strip().strip("[]").strip()
        return text[len(KB_PREFIX):].strip() if text.upper().startswith(KB_PREFIX) else text

    def cited(self, v: Any) -> Any:
        ticket = self.ticket(v)
        if ticket in self.tickets:
            return ticket
        article = self.article(v)
        if isinstance(article, str) and article in self.articles:
            return KB_PREFIX + article
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    def validator(self):
        def normalise(cls, data: Any) -> Any:
            if not isinstance(data, dict):
                return data
            data = dict(data)
            for key, id_key, fix in (("similar_tickets", "ticket_id", self.ticket),
                                     ("knowledge_articles", "article_id", self.article)):
                if isinstance(data.get(key), list):
                    data[key] = [{**i, id_key: fix(i.get(id_key))} if isinstance(i, dict) else i for i in data[key]]
            if isinstance(data.get("next_steps"), list):
                data["next_steps"] = [
                    {**i, "relies_on": [self.cited(r) for r in _as_list(i.get("relies_on"))]} if isinstance(i, dict)
                    else i for i in data["next_steps"]]
            return data
        return model_validator(mode="before")(normalise)


def empty_answer(model: type[BaseModel]) -> BaseModel:
    """An answer with every section empty (what a refusal or an unusable answer leaves)."""
    return model.model_validate({name: [] for name in model.model_fields if name != "reply_to_requester"})
