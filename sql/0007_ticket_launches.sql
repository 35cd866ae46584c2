-- Which trigger launched a ticket's first enhance_ticket run (delivery/claims.py): the new-ticket sensor and
-- the push receiver both announce new tickets, and whichever claims the ticket first launches its run; the
-- other leaves it alone. The delivery sweep's runs are later attempts and claim nothing.
CREATE TABLE IF NOT EXISTS ticket_launches (
    tenant_id   text        NOT NULL,
    ticket_id   text        NOT NULL,
    trigger     text        NOT NULL,   -- new_ticket_sensor / push
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, ticket_id)
);
