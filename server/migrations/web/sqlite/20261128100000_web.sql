-- The web service's read model of the catalog's products, fed only by catalog events.
create table product (
    -- The catalog's id.
    id integer primary key,
    -- As validated by the catalog.
    title text not null,
    -- As validated by the catalog.
    image text not null,
    -- The catalog's latest absolute count.
    likes integer not null default 0,
    -- The catalog's version of the row this copy reflects; older events are ignored.
    version integer not null
);

-- Transactional outbox for the web service's own events (likes), published by its relay.
create table outbox (
    -- Publication order.
    id integer primary key autoincrement,
    -- The envelope's id, sent as the message id so consumers can drop duplicates.
    event_id text not null,
    -- Routing key on the web service's exchange, e.g. like.added.
    routing_key text not null,
    -- The whole JSON envelope, exactly as published.
    payload text not null,
    -- When the change committed, in ms since the Unix epoch.
    created_at_ms integer not null
);

-- Catalog events already applied to the read model, so a redelivery takes effect once.
create table processed_event (
    -- The envelope's id.
    event_id text primary key,
    -- When it was applied, in ms since the Unix epoch.
    processed_at_ms integer not null
);
