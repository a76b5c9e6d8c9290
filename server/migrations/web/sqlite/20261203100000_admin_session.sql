-- Administrator sessions: a browser that signed in holds a random id in its cookie; only the
-- id's SHA-256 is kept here, so a copy of this table signs nobody in. Sign-out deletes the row;
-- an expired row is refused and deleted at the next sign-in.
create table admin_session (
    -- Hex SHA-256 of the session id.
    id_hash text primary key,
    -- When the session ends, in ms since the Unix epoch.
    expires_at_ms bigint not null
);
