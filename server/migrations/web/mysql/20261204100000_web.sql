-- The web service's schema on MySQL/MariaDB: what the PostgreSQL migrations build, in one step.
-- Every table is InnoDB in utf8mb4 (any title round-trips, emoji included) with a binary
-- collation, so visitor ids and keys compare byte for byte. Integers and flags are all bigint,
-- as sqlx's `Any` driver reads no narrower integer; keys and what is looked up are varchar,
-- bodies text.

-- The web service's read model of the catalog's products, fed only by catalog events.
create table product (
    -- The catalog's id.
    id bigint primary key,
    -- As validated by the catalog.
    title text not null,
    -- As validated by the catalog.
    image text not null,
    -- The catalog's latest absolute count.
    likes bigint not null default 0,
    -- The catalog's version of the row this copy reflects; older events are ignored.
    version bigint not null,
    -- 1 once the catalog deleted the product; such rows are never shown. A deleted product
    -- stays as a tombstone that remembers its last version, so an older event arriving after
    -- the deletion cannot bring it back.
    deleted bigint not null default 0,
    -- The web service's own count of visitors liking the product, kept with every like and
    -- unlike in the same transaction, so a like's answer needs no count over every liker.
    -- (`likes` is the catalog's count, as the catalog's events carry it.)
    visitor_likes bigint not null default 0,
    -- Which catalog data and resync generation the row came from: with the version, the row's
    -- stamp; an event replaces a row only with a newer stamp (epoch, generation, version, deleted).
    epoch bigint not null default 0,
    generation bigint not null default 0
) engine = InnoDB default charset utf8mb4 collate utf8mb4_bin;

-- Transactional outbox for the web service's own events (likes), published by its relay.
create table outbox (
    -- Publication order.
    id bigint auto_increment primary key,
    -- The envelope's id (a UUID), sent as the message id so consumers can drop duplicates.
    event_id varchar(64) not null,
    -- Routing key on the web service's exchange, e.g. like.added.
    routing_key varchar(255) not null,
    -- The whole JSON envelope, exactly as published.
    payload longtext not null,
    -- When the change committed, in ms since the Unix epoch.
    created_at_ms bigint not null
) engine = InnoDB default charset utf8mb4 collate utf8mb4_bin;

-- Each visitor's like of each product: the web service's record of who likes what.
create table visitor_like (
    -- The id in the visitor's signed cookie (a UUID).
    visitor_id varchar(64) not null,
    -- The catalog's product id.
    product_id bigint not null,
    -- 1 while the visitor likes the product, 0 after they took the like back.
    liked bigint not null,
    -- Grows with every change of this like; sent with the event so the catalog applies them in order.
    seq bigint not null,
    primary key (visitor_id, product_id),
    -- Counting a product's likes reads only its rows.
    index visitor_like_by_product (product_id, liked)
) engine = InnoDB default charset utf8mb4 collate utf8mb4_bin;

-- Values the web service keeps for itself, such as the key that signs visitor cookies (shared
-- by every web instance on this database).
create table web_setting (
    name varchar(64) primary key,
    value text not null
) engine = InnoDB default charset utf8mb4 collate utf8mb4_bin;

-- The catalog data this read model follows (0 before the first event that names one). An event
-- of a higher epoch means the catalog's database was made anew: its products are other
-- products, so the likes recorded here are cleared and an authoritative resync is asked for.
create table known_epoch (
    epoch bigint not null
) engine = InnoDB default charset utf8mb4 collate utf8mb4_bin;
insert into known_epoch (epoch) values (0);

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

-- Administrator sessions: a browser that signed in holds a random id in its cookie; only the
-- id's SHA-256 is kept here, so a copy of this table signs nobody in. Sign-out deletes the row;
-- an expired row is refused and deleted at the next sign-in.
create table admin_session (
    -- Hex SHA-256 of the session id: 64 characters.
    id_hash varchar(64) primary key,
    -- When the session ends, in ms since the Unix epoch.
    expires_at_ms bigint not null
) engine = InnoDB default charset utf8mb4 collate utf8mb4_bin;
