//! The coordinator link over NATS JetStream.
//!
//! One stream holds both directions: the coordinator's inbox subject `<prefix>.coordinator`
//! and one inbox subject per processor, `<prefix>.processor.<peer key>`. Each end reads its
//! inbox through a durable pull consumer with explicit acks, so a daemon or the broker
//! restarting loses nothing (messages not acked are redelivered; the core recognises
//! redelivered frames by sequence id). Every publish carries a `Nats-Msg-Id` (a hash of the
//! sealed bytes), so the broker drops a resend it already holds. The broker is not trusted:
//! anyone able to publish can reach an inbox, and the core refuses (and counts) every frame not
//! signed by the configured peer.
//!
//! De-duplication means the coordinator's resends of a frame do not arrive again while the
//! window lasts, so the stored copy must not be acked before its effects are committed: a frame
//! the core holds only in memory (ahead of order, or waiting for the chain) is negatively
//! acked and comes back after [`REDELIVER_AFTER`].

use super::{CoordinatorLink, LinkError, ProcessorLink};
use async_nats::jetstream::{self, consumer::pull, context::Publish, stream::StorageType, AckKind};
use futures::StreamExt;
use processor_core::ids::PeerKey;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Where the link lives on the broker.
#[derive(Clone, Debug)]
pub struct NatsConfig {
    /// e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// Stream name; its subjects are `<stream lowercased>.>`.
    pub stream: String,
}

/// How long the broker keeps a message (unacknowledged ones are redelivered until then).
const RETENTION: Duration = Duration::from_secs(24 * 60 * 60);
/// Publishes of the same bytes within this window are stored once.
const DEDUP_WINDOW: Duration = Duration::from_secs(120);
/// A delivered message not acked within this is delivered again: a daemon killed after a
/// delivery (or whose pull request outlived it) gets the message back this soon. A handler
/// slower than this only causes a redelivery, recognised as a duplicate.
const ACK_WAIT: Duration = Duration::from_secs(3);
/// A message the processor could not act on yet comes back after this.
const REDELIVER_AFTER: Duration = Duration::from_millis(500);

/// The broker must carry the largest frame the core may send or accept: NATS's default
/// `max_payload` (1 MiB) is smaller, so a deployment sets it (see the README's deployment
/// section); a broker that cannot is a start-up error rather than a stream blocked by the first
/// large message.
pub const REQUIRED_MAX_PAYLOAD: usize = processor_core::messages::MAX_MESSAGE_BYTES;

fn check_max_payload(max_payload: usize) -> Result<(), LinkError> {
    if max_payload < REQUIRED_MAX_PAYLOAD {
        return Err(LinkError::Misconfigured(format!(
            "the broker's max_payload is {max_payload} bytes, the processor's messages may be {REQUIRED_MAX_PAYLOAD}: \
             set `max_payload: 8MB` in nats-server's configuration"
        )));
    }
    Ok(())
}

struct Endpoint {
    context: jetstream::Context,
    consumer: pull::Stream,
    /// The message last handed out, acked once handled.
    unacked: Option<jetstream::Message>,
}

fn prefix(config: &NatsConfig) -> String {
    config.stream.to_lowercase()
}

fn processor_subject(config: &NatsConfig, key: &PeerKey) -> String {
    format!("{}.processor.{key}", prefix(config))
}

fn coordinator_subject(config: &NatsConfig) -> String {
    format!("{}.coordinator", prefix(config))
}

fn transient(what: &str, error: impl std::fmt::Display) -> LinkError {
    LinkError::Transient(format!("{what}: {error}"))
}

impl Endpoint {
    /// Connects (retrying until the broker answers), makes sure the stream exists and opens the
    /// durable consumer `durable` on `inbox`.
    async fn open(config: &NatsConfig, inbox: String, durable: String) -> Result<Endpoint, LinkError> {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .connect(config.url.as_str())
            .await
            .map_err(|e| transient("connecting to the broker", e))?;
        // With retries on the initial connect the client returns before the broker answered:
        // a round trip makes sure its INFO (and so its max_payload) is in.
        client.flush().await.map_err(|e| transient("reaching the broker", e))?;
        check_max_payload(client.server_info().max_payload)?;
        let context = jetstream::new(client);
        let subjects = format!("{}.>", prefix(config));
        // Several ends may create the stream and their consumers at once: a lost race is
        // retried (the winner's stream is then found).
        let mut attempt = 0;
        let consumer = loop {
            match Endpoint::consumer(&context, config, &subjects, &inbox, &durable).await {
                Ok(consumer) => break consumer,
                Err(error) if attempt < 10 => {
                    tracing::debug!(%error, "setting up the stream, again");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => return Err(error),
            }
        };
        Ok(Endpoint { context, consumer, unacked: None })
    }

    async fn consumer(
        context: &jetstream::Context,
        config: &NatsConfig,
        subjects: &str,
        inbox: &str,
        durable: &str,
    ) -> Result<pull::Stream, LinkError> {
        let stream = context
            .get_or_create_stream(jetstream::stream::Config {
                name: config.stream.clone(),
                subjects: vec![subjects.to_string()],
                storage: StorageType::File,
                max_age: RETENTION,
                duplicate_window: DEDUP_WINDOW,
                ..Default::default()
            })
            .await
            .map_err(|e| transient("creating the stream", e))?;
        let consumer: jetstream::consumer::Consumer<pull::Config> = stream
            .get_or_create_consumer(
                durable,
                pull::Config {
                    durable_name: Some(durable.to_string()),
                    filter_subject: inbox.to_string(),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: ACK_WAIT,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| transient("creating the consumer", e))?;
        consumer.messages().await.map_err(|e| transient("reading the consumer", e))
    }

    async fn publish(&self, subject: String, bytes: Vec<u8>) -> Result<(), LinkError> {
        let id = hex::encode(Sha256::digest(&bytes));
        let publish = Publish::build().payload(bytes.into()).message_id(id);
        let ack = self.context.send_publish(subject, publish).await.map_err(|e| transient("publishing", e))?;
        ack.await.map_err(|e| transient("publish not acknowledged", e))?;
        Ok(())
    }

    async fn recv(&mut self) -> Result<Vec<u8>, LinkError> {
        // A message handed out and never reported handled (its handler failed) is redelivered.
        if let Some(message) = self.unacked.take() {
            let _ = message.ack_with(AckKind::Nak(None)).await;
        }
        loop {
            match self.consumer.next().await {
                Some(Ok(message)) => {
                    let bytes = message.payload.to_vec();
                    self.unacked = Some(message);
                    return Ok(bytes);
                }
                // Heartbeats missed while the broker restarts: the stream recovers by itself.
                Some(Err(error)) => {
                    tracing::warn!(%error, "broker consumer error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                None => return Err(LinkError::Closed),
            }
        }
    }

    /// Asks the broker to deliver the message again after a pause (its resends by the
    /// coordinator are de-duplicated, so this copy is the one that must arrive).
    async fn defer(&mut self) {
        if let Some(message) = self.unacked.take() {
            if let Err(error) = message.ack_with(AckKind::Nak(Some(REDELIVER_AFTER))).await {
                // Not fatal: unacked, it is delivered again after the ack wait.
                tracing::debug!(%error, "nak failed");
            }
        }
    }

    async fn handled(&mut self) {
        if let Some(message) = self.unacked.take() {
            if let Err(error) = message.ack().await {
                // Not fatal: the message is delivered again and recognised as handled.
                tracing::debug!(%error, "ack failed");
            }
        }
    }
}

/// A processor's end over NATS.
pub struct NatsProcessorLink {
    endpoint: Endpoint,
    coordinator: String,
}

impl NatsProcessorLink {
    pub async fn connect(config: &NatsConfig, me: &PeerKey) -> Result<NatsProcessorLink, LinkError> {
        let durable = format!("processor-{me}");
        let endpoint = Endpoint::open(config, processor_subject(config, me), durable).await?;
        Ok(NatsProcessorLink { endpoint, coordinator: coordinator_subject(config) })
    }
}

impl ProcessorLink for NatsProcessorLink {
    async fn send(&mut self, bytes: Vec<u8>) -> Result<(), LinkError> {
        self.endpoint.publish(self.coordinator.clone(), bytes).await
    }
    async fn recv(&mut self) -> Result<Vec<u8>, LinkError> {
        self.endpoint.recv().await
    }
    async fn handled(&mut self) {
        self.endpoint.handled().await
    }
    async fn defer(&mut self) {
        self.endpoint.defer().await
    }
}

/// The coordinator's end over NATS.
pub struct NatsCoordinatorLink {
    endpoint: Endpoint,
    config: NatsConfig,
}

impl NatsCoordinatorLink {
    pub async fn connect(config: &NatsConfig) -> Result<NatsCoordinatorLink, LinkError> {
        let endpoint = Endpoint::open(config, coordinator_subject(config), "coordinator".into()).await?;
        Ok(NatsCoordinatorLink { endpoint, config: config.clone() })
    }
}

impl CoordinatorLink for NatsCoordinatorLink {
    async fn send_to(&mut self, to: PeerKey, bytes: Vec<u8>) -> Result<(), LinkError> {
        self.endpoint.publish(processor_subject(&self.config, &to), bytes).await
    }
    async fn recv(&mut self) -> Result<Vec<u8>, LinkError> {
        self.endpoint.recv().await
    }
    async fn handled(&mut self) {
        self.endpoint.handled().await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_broker_that_cannot_carry_the_largest_frame_is_refused() {
        let error = super::check_max_payload(1024 * 1024).unwrap_err();
        assert!(error.to_string().contains("max_payload: 8MB"), "{error}");
        super::check_max_payload(8 * 1024 * 1024).unwrap();
    }
}
