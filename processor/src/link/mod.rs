//! Coordinator links that do IO: implementations of [`processor_core::link`]'s traits.
//! - [`embedded`]: in-process channels, for the devnet and tests;
//! - [`nats`]: NATS JetStream, the production broker (durable consumers, explicit acks,
//!   publish de-duplication by message id).

pub mod embedded;
pub mod nats;

pub use processor_core::link::{CoordinatorLink, LinkError, ProcessorLink};
