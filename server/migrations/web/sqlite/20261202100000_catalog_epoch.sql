-- Which catalog data and resync generation each row came from: with the version, the row's
-- stamp; an event replaces a row only with a newer stamp (epoch, generation, version, deleted).
alter table product add column epoch integer not null default 0;
alter table product add column generation integer not null default 0;

-- The catalog data this read model follows (0 before the first event that names one). An event
-- of a higher epoch means the catalog's database was made anew: its products are other
-- products, so the likes recorded here are cleared and an authoritative resync is asked for.
create table known_epoch (
    epoch integer not null
);
insert into known_epoch (epoch) values (0);
