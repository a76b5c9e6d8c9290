-- The outbox is a queue: every row is deleted soon after it is inserted. Vacuum it after every
-- thousand dead rows rather than after a fifth of the table, so relays never wade through them.
alter table outbox set (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 1000);
