//! The coordinator link: how sealed frames travel between processors and the coordinator.
//!
//! Both ends see only bytes. Authenticity and exactly-once handling are the core's business
//! (signed envelopes, sequence ids, acknowledgements, resends), so a link may lose, duplicate
//! or reorder; it only has to deliver eventually.
//!
//! These are the traits only; the implementations that do IO live with their drivers: in-process
//! channels and NATS JetStream in the daemon crate, madsim datagrams in the simulation.

use crate::ids::PeerKey;
use std::future::Future;

/// Why a link could not send or receive.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The link is gone for good (the other end dropped, the broker refused us).
    #[error("the link is closed")]
    Closed,
    /// A transient failure; the caller retries (the core resends anyway).
    #[error("link error: {0}")]
    Transient(String),
    /// The link cannot work as configured (for example, a broker that cannot carry the
    /// largest message): retrying does not help, an operator must fix the configuration.
    #[error("link misconfigured: {0}")]
    Misconfigured(String),
}

/// A processor's end.
pub trait ProcessorLink: Send {
    /// Sends sealed bytes to the coordinator.
    fn send(&mut self, bytes: Vec<u8>) -> impl Future<Output = Result<(), LinkError>> + Send;
    /// The next inbound bytes. Cancel-safe: dropping the future loses nothing.
    fn recv(&mut self) -> impl Future<Output = Result<Vec<u8>, LinkError>> + Send;
    /// Tells the link the bytes last received are handled (their effects committed, or they
    /// were refused), so a broker may forget them.
    fn handled(&mut self) -> impl Future<Output = ()> + Send;
    /// Tells the link the bytes last received are not handled yet (held in memory only, see
    /// [`crate::core::InboundStatus::Held`]): deliver them again later. A link that
    /// de-duplicates the coordinator's resends must; others may ignore it.
    fn defer(&mut self) -> impl Future<Output = ()> + Send;
}

/// The coordinator's end: one link to every processor.
pub trait CoordinatorLink: Send {
    /// Sends sealed bytes to the processor whose network key is `to`.
    fn send_to(&mut self, to: PeerKey, bytes: Vec<u8>) -> impl Future<Output = Result<(), LinkError>> + Send;
    /// The next bytes from any processor (the envelope says who sent them). Cancel-safe.
    fn recv(&mut self) -> impl Future<Output = Result<Vec<u8>, LinkError>> + Send;
    /// Tells the link the bytes last received are handled, so a broker may forget them.
    fn handled(&mut self) -> impl Future<Output = ()> + Send;
}
