-- Rows the committing process publishes itself, right after its commit, wait this long (ms since
-- the Unix epoch) before a relay takes them: the relay is then only the safety net for a publish
-- that failed or a process that died. Rows left to the relay carry 0.
alter table outbox add column relay_after_ms bigint not null default 0;
