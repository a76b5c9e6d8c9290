-- Each visitor's like of each product: the web service's record of who likes what.
create table visitor_like (
    -- The id in the visitor's signed cookie.
    visitor_id text not null,
    -- The catalog's product id.
    product_id integer not null,
    -- 1 while the visitor likes the product, 0 after they took the like back.
    liked integer not null,
    -- Grows with every change of this like; sent with the event so the catalog applies them in order.
    seq integer not null,
    primary key (visitor_id, product_id)
);

-- Counting a product's likes reads only its rows.
create index visitor_like_by_product on visitor_like (product_id, liked);

-- Values the web service keeps for itself, such as the key that signs visitor cookies (shared
-- by every web instance on this database).
create table web_setting (
    name text primary key,
    value text not null
);
