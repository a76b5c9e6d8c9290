-- Like events are applied under the per-visitor sequence guard of product_like, which already
-- makes a repeated or stale event change nothing: the record of applied events is not needed.
drop table processed_event;
