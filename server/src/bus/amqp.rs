//! The RabbitMQ bus, through lapin. Publishes are persistent, mandatory and confirmed; consumers
//! ack manually. Every broker call has a timeout, and a watchdog rebuilds a connection that
//! stopped working (with its topology, confirm mode and prefetch) instead of trusting it to
//! recover by itself.

use super::{
    BusError, Delivery, OutgoingMessage, QueueKind, QueueSpec, Settle as DeliverySettle,
    DEAD_LETTER_REASON, ORIGINAL_ROUTING_KEY,
};
use crate::config::DeadLetterQueues;
use crate::parts::{Part, PartState};
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
    BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::tcp::OwnedTLSConfig;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// How often an idle consumer checks that its connection is still alive.
const WATCHDOG_INTERVAL: Duration = Duration::from_secs(2);
/// Deliveries of one message before a durable (quorum) queue dead-letters it. Handlers retry
/// failures in place, so only crashes and lost connections count towards it.
const DELIVERY_LIMIT: i32 = 20;
/// Longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A RabbitMQ bus. Cheap to clone; clones share the publishing connection.
#[derive(Clone)]
pub struct AmqpBus {
    inner: Arc<Inner>,
}

struct Inner {
    /// The broker's addresses (`AMQP_URL`, comma-separated): nodes of one cluster.
    urls: Vec<String>,
    /// The address that answered last: every new connection tries it first, then the others in
    /// order, so connections follow a node that answers and leave one that died.
    preferred: std::sync::atomic::AtomicUsize,
    /// For `amqps://` URLs: extra trusted certificates and a client certificate.
    tls: OwnedTLSConfig,
    timeout: Duration,
    publisher: Mutex<Option<PublishLink>>,
    /// The kind dead-letter queues are declared with (`DEAD_LETTER_QUEUES`).
    dead_letter_queues: DeadLetterQueues,
    /// Connections rebuilt after a failure, for logs and metrics.
    reconnects: AtomicU64,
    /// Publishing and consuming links made so far, for their serial numbers.
    links: AtomicU64,
}

/// The connection and confirm-mode channel used for publishing.
struct PublishLink {
    connection: Connection,
    channel: Channel,
    /// Exchanges declared on this connection so far.
    declared: HashSet<String>,
    /// Which link this is, counting from 1 over the bus's life.
    serial: u64,
}

impl PublishLink {
    fn is_alive(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }
}

/// Runs a broker call with the bus timeout.
async fn within<T>(
    limit: Duration,
    call: impl Future<Output = lapin::Result<T>>,
) -> Result<T, BusError> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(BusError::Timeout(limit)),
    }
}

fn persistent(message_id: Option<String>) -> BasicProperties {
    let properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into());
    match message_id {
        Some(id) => properties.with_message_id(id.into()),
        None => properties,
    }
}

/// Opens a connection named `name` (what `rabbitmqctl list_connections client_properties` and
/// the management UI show) with one confirm-mode channel.
async fn connect(
    inner: &Inner,
    name: &str,
    limit: Duration,
) -> Result<(Connection, Channel), BusError> {
    let first = inner.preferred.load(Ordering::Relaxed);
    let count = inner.urls.len();
    let mut failure = None;
    for index in (first..first + count).map(|n| n % count) {
        match connect_to(inner, &inner.urls[index], name, limit).await {
            Ok(link) => {
                inner.preferred.store(index, Ordering::Relaxed);
                return Ok(link);
            }
            Err(err) => {
                if count > 1 {
                    tracing::info!(address = %describe(&inner.urls[index]), error = %crate::error::chain(&err), "broker address did not answer; trying the next");
                }
                // A TLS failure is what the caller must see (it stops a start), whatever the
                // addresses after it answered.
                if failure
                    .as_ref()
                    .is_none_or(|kept: &BusError| crate::tls::failure(kept).is_none())
                {
                    failure = Some(err);
                }
            }
        }
    }
    Err(failure.expect("at least one address"))
}

/// `connect` to one address.
async fn connect_to(
    inner: &Inner,
    url: &str,
    name: &str,
    limit: Duration,
) -> Result<(Connection, Channel), BusError> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let runtime = lapin::runtime::default_runtime()?;
    let connection = within(
        limit,
        Connection::connect_with_config(url, properties, inner.tls.clone(), runtime),
    )
    .await?;
    let channel = within(limit, connection.create_channel()).await?;
    within(
        limit,
        channel.confirm_select(ConfirmSelectOptions::default()),
    )
    .await?;
    Ok((connection, channel))
}

/// Declares dead-letter queue `name`, a quorum queue unless `DEAD_LETTER_QUEUES=classic` (so its
/// letters survive the loss of a node like the queues they come from), and returns the channel
/// to go on with. A broker that holds it with the other kind (a classic queue made by a version
/// before the cluster support, say) refuses the declaration, which closes the channel: that
/// queue is then used as it is, on a new channel, and the log says how to change it.
async fn declare_dead_letter_queue(
    inner: &Inner,
    connection: &Connection,
    channel: Channel,
    name: &str,
) -> Result<Channel, BusError> {
    let limit = inner.timeout;
    let mut arguments = FieldTable::default();
    if inner.dead_letter_queues == DeadLetterQueues::Quorum {
        arguments.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
    }
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    match within(
        limit,
        channel.queue_declare(name.into(), options, arguments),
    )
    .await
    {
        Ok(_) => Ok(channel),
        Err(err) if is_precondition_failed(&err) => {
            tracing::warn!(
                queue = name,
                "this dead-letter queue exists with another kind than DEAD_LETTER_QUEUES asks \
                 for: used as it is; to change it, move its letters elsewhere and delete it"
            );
            let channel = within(limit, connection.create_channel()).await?;
            within(
                limit,
                channel.confirm_select(ConfirmSelectOptions::default()),
            )
            .await?;
            let passive = QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            };
            within(
                limit,
                channel.queue_declare(name.into(), passive, FieldTable::default()),
            )
            .await?;
            Ok(channel)
        }
        Err(err) => Err(err),
    }
}

/// Whether the broker refused a declaration for arguments that differ from the queue's.
fn is_precondition_failed(err: &BusError) -> bool {
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    let BusError::Amqp(err) = err else {
        return false;
    };
    matches!(err.kind(), lapin::ErrorKind::ProtocolError(amqp)
        if matches!(amqp.kind(), AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED)))
}

/// "host:port/vhost" of a broker URL, without credentials or options.
fn describe(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    rest.split('?').next().unwrap_or(rest).to_owned()
}

/// Binds `queue` to `exchange` for routing key (or pattern) `key`.
async fn bind(
    channel: &Channel,
    queue: &str,
    exchange: &str,
    key: &str,
    limit: Duration,
) -> Result<(), BusError> {
    within(
        limit,
        channel.queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
}

async fn declare_exchange(
    channel: &Channel,
    exchange: &str,
    limit: Duration,
) -> Result<(), BusError> {
    let options = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    within(
        limit,
        channel.exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            options,
            FieldTable::default(),
        ),
    )
    .await
}

/// Closes a connection in the background; a broken one may never answer.
fn close_in_background(connection: Connection) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            connection.close(200, "closing".into()),
        )
        .await;
    });
}

impl AmqpBus {
    /// Declares dead-letter queues of `kind` (quorum by default). Call before first use.
    pub fn with_dead_letter_queues(mut self, kind: DeadLetterQueues) -> Self {
        Arc::get_mut(&mut self.inner)
            .expect("set before the bus is shared")
            .dead_letter_queues = kind;
        self
    }

    /// A bus for the broker at `url`. Connects lazily, on first use.
    pub fn new(url: &str, timeout: Duration) -> Self {
        Self::with_tls(url, timeout, OwnedTLSConfig::default())
    }

    /// A bus for the broker at `url` (one address, or several separated by commas) whose
    /// `amqps://` connections use `tls`.
    pub fn with_tls(url: &str, timeout: Duration, tls: OwnedTLSConfig) -> Self {
        let urls: Vec<String> = url
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(str::to_owned)
            .collect();
        Self {
            inner: Arc::new(Inner {
                urls: if urls.is_empty() {
                    vec![url.to_owned()]
                } else {
                    urls
                },
                preferred: std::sync::atomic::AtomicUsize::new(0),
                tls,
                timeout,
                publisher: Mutex::new(None),
                dead_letter_queues: DeadLetterQueues::Quorum,
                reconnects: AtomicU64::new(0),
                links: AtomicU64::new(0),
            }),
        }
    }

    /// "RabbitMQ at host:port/vhost[, host2:port/vhost…]", without credentials.
    pub fn description(&self) -> String {
        let addresses: Vec<String> = self.inner.urls.iter().map(|url| describe(url)).collect();
        format!("RabbitMQ at {}", addresses.join(", "))
    }

    /// How many times a connection was rebuilt after a failure.
    pub fn reconnects(&self) -> u64 {
        self.inner.reconnects.load(Ordering::Relaxed)
    }

    /// Declares `exchange` on the publishing link, once per link.
    pub async fn declare_exchange(&self, exchange: &str) -> Result<(), BusError> {
        let limit = self.inner.timeout;
        let mut slot = self.inner.publisher.lock().await;
        let link = self.ensure_publisher(&mut slot).await?;
        if !link.declared.contains(exchange) {
            declare_exchange(&link.channel, exchange, limit).await?;
            link.declared.insert(exchange.to_owned());
        }
        Ok(())
    }

    /// Messages ready in `queue` (not those handed to a consumer and not yet acked), asked on
    /// a channel of its own: a passive declare of a queue that is gone closes its channel.
    pub async fn waiting(&self, queue: &str) -> Result<u64, BusError> {
        let limit = self.inner.timeout;
        let channel = {
            let mut slot = self.inner.publisher.lock().await;
            let link = self.ensure_publisher(&mut slot).await?;
            within(limit, link.connection.create_channel()).await?
        };
        let declared = within(
            limit,
            channel.queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            ),
        )
        .await;
        let _ = channel.close(200, "done".into()).await;
        Ok(u64::from(declared?.message_count()))
    }

    /// Moves the messages in `queue`'s dead-letter queue `dead_letters` when asked back to
    /// `queue` (through the dead-letter exchange, confirmed, without the reason), one at a time, acking
    /// each from the dead-letter queue only once its copy is confirmed; returns how many.
    pub async fn replay_dead_letters(
        &self,
        queue: &str,
        dead_letters: &str,
    ) -> Result<u64, BusError> {
        let limit = self.inner.timeout;
        let name = format!("live-gallery replay of {dead_letters}");
        let (connection, channel) = connect(&self.inner, &name, limit).await?;
        let replayed = async {
            // Only the letters there now: one refused again while the replay runs waits for
            // the next replay instead of going round for ever.
            let waiting = within(
                limit,
                channel.queue_declare(
                    dead_letters.into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                ),
            )
            .await?
            .message_count();
            let mut count = 0;
            while count < u64::from(waiting) {
                let Some(message) = within(
                    limit,
                    channel.basic_get(dead_letters.into(), BasicGetOptions::default()),
                )
                .await?
                else {
                    break;
                };
                let delivery = message.delivery;
                let mut headers = delivery.properties.headers().clone().unwrap_or_default();
                let mut kept = FieldTable::default();
                for (key, value) in headers.inner() {
                    if key.as_str() != DEAD_LETTER_REASON {
                        kept.insert(key.clone(), value.clone());
                    }
                }
                headers = kept;
                let message_id = delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|id| id.as_str().to_owned());
                let properties = persistent(message_id).with_headers(headers);
                let options = BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                };
                let confirm = within(
                    limit,
                    channel.basic_publish(
                        dead_letters.into(),
                        queue.into(),
                        options,
                        &delivery.data,
                        properties,
                    ),
                )
                .await?;
                match within(limit, confirm).await? {
                    Confirmation::Ack(None) => {}
                    Confirmation::Ack(Some(_)) => {
                        return Err(BusError::Unroutable(queue.to_owned()))
                    }
                    _ => return Err(BusError::Nacked),
                }
                within(limit, delivery.acker.ack(BasicAckOptions::default())).await?;
                count += 1;
            }
            Ok(count)
        }
        .await;
        close_in_background(connection);
        replayed
    }

    pub async fn is_ready(&self) -> bool {
        let mut publisher = self.inner.publisher.lock().await;
        self.ensure_publisher(&mut publisher).await.is_ok()
    }

    async fn ensure_publisher<'a>(
        &self,
        slot: &'a mut Option<PublishLink>,
    ) -> Result<&'a mut PublishLink, BusError> {
        if slot.as_ref().is_some_and(|link| !link.is_alive()) {
            if let Some(link) = slot.take() {
                tracing::warn!("publishing connection lost; reconnecting");
                self.inner.reconnects.fetch_add(1, Ordering::Relaxed);
                close_in_background(link.connection);
            }
        }
        if slot.is_none() {
            let (connection, channel) =
                connect(&self.inner, "live-gallery publisher", self.inner.timeout).await?;
            let serial = self.inner.links.fetch_add(1, Ordering::Relaxed) + 1;
            *slot = Some(PublishLink {
                connection,
                channel,
                declared: HashSet::new(),
                serial,
            });
        }
        Ok(slot.as_mut().expect("publish link was just set"))
    }

    /// Sends `messages` under the publishing lock, then waits for their confirms without it, so
    /// several rounds (relays of one process, or rounds of one relay) can be in flight at once.
    pub async fn publish(
        &self,
        exchange: &str,
        messages: &[OutgoingMessage],
    ) -> Result<(), BusError> {
        let limit = self.inner.timeout;
        let (confirms, serial) = {
            let mut slot = self.inner.publisher.lock().await;
            let link = self.ensure_publisher(&mut slot).await?;
            let serial = link.serial;
            let sent = async {
                if !link.declared.contains(exchange) {
                    declare_exchange(&link.channel, exchange, limit).await?;
                    link.declared.insert(exchange.to_owned());
                }
                let mut confirms = Vec::with_capacity(messages.len());
                for message in messages {
                    let options = BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    };
                    let confirm = within(
                        limit,
                        link.channel.basic_publish(
                            exchange.into(),
                            message.routing_key.as_str().into(),
                            options,
                            &message.payload,
                            persistent(Some(message.message_id.clone())),
                        ),
                    )
                    .await?;
                    confirms.push((confirm, &message.routing_key));
                }
                Ok(confirms)
            }
            .await;
            match sent {
                Ok(confirms) => (confirms, serial),
                Err(err) => {
                    self.drop_publisher(&mut slot, serial, &err);
                    return Err(err);
                }
            }
        };
        let result = async {
            for (confirm, routing_key) in confirms {
                match within(limit, confirm).await? {
                    Confirmation::Ack(None) => {}
                    Confirmation::Ack(Some(_returned)) => {
                        return Err(BusError::Unroutable(routing_key.clone()))
                    }
                    Confirmation::Nack(_) | Confirmation::NotRequested => {
                        return Err(BusError::Nacked)
                    }
                }
            }
            Ok(())
        }
        .await;
        if let Err(err) = &result {
            self.drop_publisher(&mut *self.inner.publisher.lock().await, serial, err);
        }
        result
    }

    /// After a timeout, a connection error or a nack on link `serial`, starts afresh next time:
    /// the link may be half-broken. A nack counts too: a channel opened while a quorum queue
    /// had no leader (a node just died) can go on refusing every message routed to that queue
    /// after a new leader is elected, where a new channel is accepted. A link made since by
    /// another round stays.
    fn drop_publisher(&self, slot: &mut Option<PublishLink>, serial: u64, err: &BusError) {
        if !matches!(
            err,
            BusError::Timeout(_) | BusError::Amqp(_) | BusError::Nacked
        ) {
            return;
        }
        if slot.as_ref().is_some_and(|link| link.serial == serial) {
            if let Some(link) = slot.take() {
                self.inner.reconnects.fetch_add(1, Ordering::Relaxed);
                close_in_background(link.connection);
            }
        }
    }

    /// Declares the queue and starts consuming. If the broker cannot be reached now, the
    /// subscription keeps trying in the background of `next`, as it does after any outage.
    pub async fn subscribe(&self, spec: &QueueSpec) -> Result<AmqpSubscription, BusError> {
        let mut subscription = AmqpSubscription {
            bus: self.clone(),
            spec: spec.clone(),
            link: None,
            backoff: Duration::from_millis(100),
            reopened: tokio::sync::watch::channel(0).0,
            part: None,
            failure: None,
        };
        match subscription.open().await {
            Ok(link) => subscription.link = Some(link),
            Err(err) => {
                tracing::warn!(queue = %spec.queue, error = %err, "cannot subscribe yet; will keep trying");
                subscription.failure = Some(err);
            }
        }
        Ok(subscription)
    }
}

/// Deliveries from one RabbitMQ queue, on a connection of its own.
pub struct AmqpSubscription {
    bus: AmqpBus,
    spec: QueueSpec,
    link: Option<ConsumeLink>,
    backoff: Duration,
    /// Counts the times the queue was declared after `subscribe` returned: after a lost
    /// connection, or because the broker could not be reached then.
    reopened: tokio::sync::watch::Sender<u64>,
    /// Told whether the subscription consumes, waits for the broker or is refused.
    part: Option<Part>,
    /// Why the last attempt to subscribe failed, until one succeeds.
    failure: Option<BusError>,
}

struct ConsumeLink {
    connection: Connection,
    channel: Channel,
    consumer: lapin::Consumer,
    /// Which link this is over the bus's life: delivery tags count per link.
    serial: u64,
}

impl AmqpSubscription {
    async fn open(&self) -> Result<ConsumeLink, BusError> {
        let limit = self.bus.inner.timeout;
        let spec = &self.spec;
        let name = format!("live-gallery consumer of {}", spec.queue);
        let (connection, mut channel) = connect(&self.bus.inner, &name, limit).await?;
        // The dead-letter exchange and queue share a name; the queue takes what is sent to the
        // exchange under its name.
        if let Some(dead_letters) = spec.dead_letter_queue() {
            declare_exchange(&channel, &dead_letters, limit).await?;
            channel =
                declare_dead_letter_queue(&self.bus.inner, &connection, channel, &dead_letters)
                    .await?;
            bind(&channel, &dead_letters, &dead_letters, &dead_letters, limit).await?;
        }
        if spec.kind == QueueKind::DeadLetter {
            channel = declare_dead_letter_queue(&self.bus.inner, &connection, channel, &spec.queue)
                .await?;
        }
        within(
            limit,
            channel.basic_qos(spec.prefetch, BasicQosOptions::default()),
        )
        .await?;
        let mut arguments = FieldTable::default();
        let options = match spec.kind {
            QueueKind::Durable => {
                // Quorum queues replicate across a cluster; a message redelivered too often goes
                // to the dead-letter queue instead of looping forever.
                arguments.insert(
                    "x-queue-type".into(),
                    AMQPValue::LongString("quorum".into()),
                );
                arguments.insert(
                    "x-delivery-limit".into(),
                    AMQPValue::LongInt(DELIVERY_LIMIT),
                );
                if let Some(dead_letters) = spec.dead_letter_queue() {
                    arguments.insert(
                        "x-dead-letter-exchange".into(),
                        AMQPValue::LongString(dead_letters.as_str().into()),
                    );
                    arguments.insert(
                        "x-dead-letter-routing-key".into(),
                        AMQPValue::LongString(dead_letters.into()),
                    );
                }
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                }
            }
            // Declared above, as a quorum queue (or as it is); this declare only checks it.
            QueueKind::DeadLetter => QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            QueueKind::Live => QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
        };
        within(
            limit,
            channel.queue_declare(spec.queue.as_str().into(), options, arguments),
        )
        .await?;
        // Replayed dead letters come back through the dead-letter exchange, under this name.
        if let (QueueKind::Durable, Some(dead_letters)) = (spec.kind, spec.dead_letter_queue()) {
            bind(&channel, &spec.queue, &dead_letters, &spec.queue, limit).await?;
        }
        if spec.declares_exchange && !spec.bindings.is_empty() {
            declare_exchange(&channel, &spec.exchange, limit).await?;
        }
        for pattern in &spec.bindings {
            bind(&channel, &spec.queue, &spec.exchange, pattern, limit).await?;
        }
        let consumer = within(
            limit,
            channel.basic_consume(
                spec.queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await?;
        Ok(ConsumeLink {
            connection,
            channel,
            consumer,
            serial: self.bus.inner.links.fetch_add(1, Ordering::Relaxed) + 1,
        })
    }

    /// See `Subscription::reopened`.
    pub fn reopened(&self) -> tokio::sync::watch::Receiver<u64> {
        self.reopened.subscribe()
    }

    /// See `Subscription::report_to`.
    pub fn report_to(&mut self, part: Part) {
        self.part = Some(part);
        self.report();
    }

    fn report(&self) {
        let Some(part) = &self.part else { return };
        part.set(match (&self.link, &self.failure) {
            (Some(_), _) => PartState::Running,
            (None, Some(err)) if err.is_refusal() => PartState::Refused(crate::error::chain(err)),
            (None, _) => PartState::WaitingForBroker,
        });
    }

    fn drop_link(&mut self, why: &str) {
        if let Some(link) = self.link.take() {
            tracing::warn!(queue = %self.spec.queue, why, "consumer connection lost; reconnecting");
            self.bus.inner.reconnects.fetch_add(1, Ordering::Relaxed);
            close_in_background(link.connection);
            self.report();
        }
    }

    pub async fn next(&mut self) -> Option<Delivery> {
        loop {
            let Some(link) = self.link.as_mut() else {
                match self.open().await {
                    Ok(link) => {
                        tracing::info!(queue = %self.spec.queue, "consumer connected");
                        self.link = Some(link);
                        self.failure = None;
                        self.report();
                        self.backoff = Duration::from_millis(100);
                        self.reopened.send_modify(|count| *count += 1);
                    }
                    Err(err) => {
                        tracing::warn!(queue = %self.spec.queue, error = %err, "cannot subscribe; retrying");
                        self.failure = Some(err);
                        self.report();
                        tokio::time::sleep(self.backoff).await;
                        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                    }
                }
                continue;
            };
            tokio::select! {
                item = link.consumer.next() => match item {
                    Some(Ok(delivery)) => return Some(self.wrap(delivery)),
                    Some(Err(err)) => self.drop_link(&err.to_string()),
                    None => self.drop_link("the consumer was cancelled"),
                },
                _ = tokio::time::sleep(WATCHDOG_INTERVAL) => {
                    if !link.connection.status().connected() || !link.channel.status().connected() {
                        self.drop_link("watchdog found the connection down");
                    }
                }
            }
        }
    }

    /// A delivery the consumer already has in hand, if any.
    pub fn try_next(&mut self) -> Option<Delivery> {
        use futures_util::FutureExt;
        let link = self.link.as_mut()?;
        match link.consumer.next().now_or_never()? {
            Some(Ok(delivery)) => Some(self.wrap(delivery)),
            Some(Err(err)) => {
                self.drop_link(&err.to_string());
                None
            }
            None => {
                self.drop_link("the consumer was cancelled");
                None
            }
        }
    }

    fn wrap(&self, delivery: lapin::message::Delivery) -> Delivery {
        let link = self
            .link
            .as_ref()
            .expect("a delivery comes from a live link");
        let headers = delivery
            .properties
            .headers()
            .as_ref()
            .map(|table| {
                table
                    .inner()
                    .iter()
                    .filter_map(|(key, value)| match value {
                        AMQPValue::LongString(text) => Some((key.to_string(), text.to_string())),
                        AMQPValue::ShortString(text) => Some((key.to_string(), text.to_string())),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Delivery {
            routing_key: delivery.routing_key.to_string(),
            message_id: delivery
                .properties
                .message_id()
                .as_ref()
                .map(|id| id.to_string()),
            redelivered: delivery.redelivered,
            headers,
            payload: delivery.data,
            settle: DeliverySettle::Amqp(Settle {
                link: link.serial,
                delivery_tag: delivery.delivery_tag,
                acker: Some(delivery.acker),
                channel: link.channel.clone(),
                dead_letter_queue: self.spec.dead_letter_queue(),
                timeout: self.bus.inner.timeout,
            }),
        }
    }
}

impl Drop for AmqpSubscription {
    fn drop(&mut self) {
        if let Some(link) = self.link.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                close_in_background(link.connection);
            }
        }
    }
}

/// How a RabbitMQ delivery is settled; unsettled on drop means requeued.
pub struct Settle {
    /// The consuming link (connection and its one channel) the delivery came on.
    link: u64,
    /// Grows with every delivery on the link; a `multiple` ack of one settles all below it.
    delivery_tag: u64,
    acker: Option<lapin::Acker>,
    channel: Channel,
    dead_letter_queue: Option<String>,
    timeout: Duration,
}

impl Settle {
    pub async fn ack(mut self) -> Result<(), BusError> {
        let acker = self.acker.take().expect("settled once");
        within(self.timeout, acker.ack(BasicAckOptions::default())).await?;
        Ok(())
    }

    /// Acks all of `settles` with one `multiple` ack per link (a rebuilt connection brings a
    /// new channel, whose tags start again).
    pub async fn ack_all(mut settles: Vec<Settle>) -> Result<(), BusError> {
        settles.sort_by_key(|settle| (settle.link, settle.delivery_tag));
        let mut result = Ok(());
        let mut rest = settles.into_iter().peekable();
        while let Some(mut settle) = rest.next() {
            let last_on_channel = rest.peek().is_none_or(|next| next.link != settle.link);
            if !last_on_channel {
                // Covered by the multiple ack of the channel's highest tag below.
                settle.acker = None;
                continue;
            }
            let acker = settle.acker.take().expect("settled once");
            let options = BasicAckOptions { multiple: true };
            if let Err(err) = within(settle.timeout, acker.ack(options)).await {
                result = Err(err);
            }
        }
        result
    }

    pub async fn requeue(mut self) -> Result<(), BusError> {
        let acker = self.acker.take().expect("settled once");
        let options = BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        };
        within(self.timeout, acker.nack(options)).await?;
        Ok(())
    }

    /// Publishes a copy to the dead-letter queue (confirmed), then acks the original. If the
    /// copy cannot be stored the original is requeued instead: refused is never lost.
    pub async fn dead_letter(
        self,
        routing_key: &str,
        payload: Vec<u8>,
        message_id: Option<String>,
        reason: &str,
    ) -> Result<(), BusError> {
        let Some(queue) = self.dead_letter_queue.clone() else {
            tracing::warn!(
                reason,
                "message refused on a queue without a dead-letter queue; dropped"
            );
            return self.ack().await;
        };
        let mut headers = FieldTable::default();
        headers.insert(
            DEAD_LETTER_REASON.into(),
            AMQPValue::LongString(reason.into()),
        );
        headers.insert(
            ORIGINAL_ROUTING_KEY.into(),
            AMQPValue::LongString(routing_key.into()),
        );
        let properties = persistent(message_id).with_headers(headers);
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let stored = async {
            let confirm = within(
                self.timeout,
                self.channel.basic_publish(
                    queue.as_str().into(),
                    queue.as_str().into(),
                    options,
                    &payload,
                    properties,
                ),
            )
            .await?;
            match within(self.timeout, confirm).await? {
                Confirmation::Ack(None) => Ok(()),
                Confirmation::Ack(Some(_)) => Err(BusError::Unroutable(queue.clone())),
                _ => Err(BusError::Nacked),
            }
        }
        .await;
        match stored {
            Ok(()) => self.ack().await,
            Err(err) => {
                self.requeue().await?;
                Err(err)
            }
        }
    }
}

impl Drop for Settle {
    fn drop(&mut self) {
        if let Some(acker) = self.acker.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                tokio::spawn(async move {
                    let options = BasicNackOptions {
                        requeue: true,
                        ..BasicNackOptions::default()
                    };
                    let _ = acker.nack(options).await;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_addresses_are_kept_in_order_and_described_without_credentials() {
        let bus = AmqpBus::new(
            "amqp://u:s3cret@rabbit-1:5672/vh, amqps://u:s3cret@rabbit-2:5671/vh?heartbeat=10,",
            Duration::from_secs(1),
        );
        assert_eq!(bus.inner.urls.len(), 2);
        let text = bus.description();
        assert_eq!(text, "RabbitMQ at rabbit-1:5672/vh, rabbit-2:5671/vh");
        assert!(!text.contains("s3cret"));
    }
}
