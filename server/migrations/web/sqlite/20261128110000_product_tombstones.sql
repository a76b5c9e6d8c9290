-- A deleted product stays as a tombstone that remembers its last version, so an older event
-- arriving after the deletion cannot bring it back.
-- 1 once the catalog deleted the product; such rows are never shown.
alter table product add column deleted integer not null default 0;
