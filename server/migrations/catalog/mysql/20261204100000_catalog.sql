-- The catalog's schema on MySQL/MariaDB: what the PostgreSQL migrations build, in one step.
-- Every table is InnoDB in utf8mb4 (any title round-trips, emoji included) with a binary
-- collation, so keys compare byte for byte. Integers and flags are all bigint, as sqlx's `Any`
-- driver reads no narrower integer; keys and what is looked up are varchar, bodies text.

-- The catalog's products: it is their source of truth.
create table product (
    -- Assigned here, never reused (InnoDB keeps the counter across restarts).
    id bigint auto_increment primary key,
    -- Trimmed, 1–200 characters, no control characters (checked before insert).
    title text not null,
    -- Absolute http(s) URL, at most 2,000 characters (checked before insert).
    image text not null,
    -- Visitors liking the product now, kept from the web service's like events.
    likes bigint not null default 0,
    -- Grows by one with every change to the row, so consumers can drop stale or repeated events.
    version bigint not null default 1
) engine = InnoDB default charset utf8mb4 collate utf8mb4_bin;

-- Transactional outbox: each event is written in the same transaction as the change it
-- describes, then published by the relay in id order with publisher confirms and deleted.
create table outbox (
    -- Publication order.
    id bigint auto_increment primary key,
    -- The envelope's id (a UUID), sent as the message id so consumers can drop duplicates.
    event_id varchar(64) not null,
    -- Routing key on the catalog's exchange, e.g. product.created.
    routing_key varchar(255) not null,
    -- The whole JSON envelope, exactly as published.
    payload longtext not null,
    -- When the change committed, in ms since the Unix epoch.
    created_at_ms bigint not null
) engine = InnoDB default charset utf8mb4 collate utf8mb4_bin;

-- Who likes each product, as the catalog learnt from like events; a product's count is the
-- number of rows with liked = 1. Like events are applied under the per-visitor sequence guard,
-- which already makes a repeated or stale event change nothing.
create table product_like (
    product_id bigint not null,
    -- The visitor's id (a UUID).
    visitor_id varchar(64) not null,
    -- 1 while the visitor likes the product.
    liked bigint not null,
    -- The highest like sequence applied; older events for this pair are ignored.
    seq bigint not null,
    primary key (product_id, visitor_id)
) engine = InnoDB default charset utf8mb4 collate utf8mb4_bin;

-- The identity of this catalog's data and its resync generation, carried in every event the
-- catalog publishes so that read models can tell its data from another catalog's (a recreated
-- database) and let an authoritative resync beat whatever came before it. One row.
create table catalog_epoch (
    -- When this database was created, in ms since the Unix epoch: a recreated catalog's is higher.
    epoch bigint not null,
    -- 0, then at each authoritative resync the later of the previous one plus one and the time
    -- in ms, so it keeps growing even after the database is restored from a backup.
    generation bigint not null
) engine = InnoDB default charset utf8mb4 collate utf8mb4_bin;
insert into catalog_epoch (epoch, generation)
    values (cast(unix_timestamp(now(3)) * 1000 as signed), 0);

-- Dead letters of the in-process bus (the embedded default), kept here so that they outlive a
-- restart as they would in RabbitMQ's durable dead-letter queues. Unused with RabbitMQ.
create table dead_letter (
    -- Arrival order.
    id bigint auto_increment primary key,
    -- The dead-letter queue, e.g. `live-gallery.catalog.likes.dead-letter`.
    queue varchar(255) not null,
    -- The routing key the letter was published with.
    routing_key varchar(255) not null,
    -- The envelope's id, when it had one.
    message_id varchar(255),
    -- The message body, exactly as published.
    payload longblob not null,
    -- Its headers (the reason among them), as a JSON object.
    headers longtext not null,
    -- When it was refused, in ms since the Unix epoch.
    created_at_ms bigint not null
) engine = InnoDB default charset utf8mb4 collate utf8mb4_bin;
