-- Who likes each product, as the catalog learnt from like events; a product's count is the
-- number of rows with liked = 1.
create table product_like (
    product_id bigint not null,
    visitor_id text not null,
    -- 1 while the visitor likes the product.
    liked bigint not null,
    -- The highest like sequence applied; older events for this pair are ignored.
    seq bigint not null,
    primary key (product_id, visitor_id)
);
