-- The identity of this catalog's data and its resync generation, carried in every event the
-- catalog publishes so that read models can tell its data from another catalog's (a recreated
-- database) and let an authoritative resync beat whatever came before it. One row.
create table catalog_epoch (
    -- When this database was created, in ms since the Unix epoch: a recreated catalog's is higher.
    epoch integer not null,
    -- 0, then at each authoritative resync the later of the previous one plus one and the time
    -- in ms, so it keeps growing even after the database is restored from a backup.
    generation integer not null
);
insert into catalog_epoch (epoch, generation)
    values (cast((julianday('now') - 2440587.5) * 86400000.0 as integer), 0);
