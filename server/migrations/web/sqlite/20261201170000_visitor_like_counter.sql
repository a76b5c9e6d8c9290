-- The web service's own count of visitors liking each product, kept with every like and unlike
-- in the same transaction, so a like's answer needs no count over every liker. (The `likes`
-- column beside it is the catalog's count, as the catalog's events carry it.)
alter table product add column visitor_likes integer not null default 0;
update product set visitor_likes =
    (select count(*) from visitor_like v where v.product_id = product.id and v.liked = 1);

-- Catalog events are applied under the read model's version guard, which already makes a
-- repeated or stale event change nothing: the record of applied events is not needed.
drop table processed_event;
