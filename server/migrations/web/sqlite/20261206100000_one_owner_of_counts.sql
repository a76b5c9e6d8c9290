-- The web database becomes the one owner of like counts: the catalog's copy of each count (the
-- read model's `likes`, fed by the catalog's events) goes, and the web service's own count of
-- visitors liking each product takes its name, with a version that grows with every change.
alter table product drop column likes;
alter table product rename column visitor_likes to likes;
-- The version of `likes`: at least the time of its last change in µs, so it only grows, even
-- after a restore from a backup. 0 until the first change or announcement.
alter table product add column likes_version integer not null default 0;

-- The per-visitor sequence served the catalog's ordering of per-like events, which are gone.
alter table visitor_like drop column seq;

-- Per-like events not yet published: their likes are in the counts above, which every web
-- instance announces when it starts, so they would only be dropped by the catalog.
delete from outbox where routing_key in ('like.added', 'like.removed');
