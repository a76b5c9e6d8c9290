-- The catalog's products: it is their source of truth.
create table product (
    -- Assigned here, never reused.
    id bigserial primary key,
    -- Trimmed, 1–200 characters, no control characters (checked before insert).
    title text not null,
    -- Absolute http(s) URL, at most 2,000 characters (checked before insert).
    image text not null,
    -- Visitors liking the product now, kept from the web service's like events.
    likes bigint not null default 0,
    -- Grows by one with every change to the row, so consumers can drop stale or repeated events.
    version bigint not null default 1
);

-- Transactional outbox: each event is written in the same transaction as the change it
-- describes, then published by the relay in id order with publisher confirms and deleted.
create table outbox (
    -- Publication order.
    id bigserial primary key,
    -- The envelope's id, sent as the message id so consumers can drop duplicates.
    event_id text not null,
    -- Routing key on the catalog's exchange, e.g. product.created.
    routing_key text not null,
    -- The whole JSON envelope, exactly as published.
    payload text not null,
    -- When the change committed, in ms since the Unix epoch.
    created_at_ms bigint not null
);

-- Events this service has applied, recorded in the transaction that applied them, so a
-- redelivered or duplicated event takes effect once.
create table processed_event (
    -- The envelope's id.
    event_id text primary key,
    -- When it was applied, in ms since the Unix epoch.
    processed_at_ms bigint not null
);
