-- Dead letters of the in-process bus (the embedded default), kept here so that they outlive a
-- restart as they would in RabbitMQ's durable dead-letter queues. Unused with RabbitMQ.
create table dead_letter (
    -- Arrival order.
    id integer primary key autoincrement,
    -- The dead-letter queue, e.g. `live-gallery.catalog.likes.dead-letter`.
    queue text not null,
    -- The routing key the letter was published with.
    routing_key text not null,
    -- The envelope's id, when it had one.
    message_id text,
    -- The message body, exactly as published.
    payload blob not null,
    -- Its headers (the reason among them), as a JSON object.
    headers text not null,
    -- When it was refused, in ms since the Unix epoch.
    created_at_ms integer not null
);
