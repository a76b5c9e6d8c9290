-- Like counts are the web service's: the catalog keeps each product's newest count, as the web
-- database announces it with its version, and no longer a row per visitor.
drop table product_like;
-- The version of `likes` the web database announced; a count with a lower one is older.
alter table product add column likes_version bigint not null default 0;
