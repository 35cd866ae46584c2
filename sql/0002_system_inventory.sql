-- The data team's inventory: what is known about each IP address (or network) a ticket may mention.
CREATE TABLE IF NOT EXISTS system_inventory (
    tenant_id   text        NOT NULL,
    ip_address  inet        NOT NULL,   -- a host (10.0.0.5) or a network (10.0.0.0/24)
    hostname    text,
    role        text,
    client      text,
    location    text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, ip_address)
);

-- GiST with inet_ops serves the containment lookup (network >>= host) as well as equality.
CREATE INDEX IF NOT EXISTS system_inventory_ip_gist ON system_inventory USING gist (ip_address inet_ops);
