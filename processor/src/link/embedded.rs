//! In-process channels between one coordinator and its processors (the devnet's link).

use super::{CoordinatorLink, LinkError, ProcessorLink};
use processor_core::ids::PeerKey;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

type Inboxes = Arc<Mutex<BTreeMap<PeerKey, UnboundedSender<Vec<u8>>>>>;

pub struct EmbeddedProcessorLink {
    to_coordinator: UnboundedSender<Vec<u8>>,
    inbox: UnboundedReceiver<Vec<u8>>,
}

pub struct EmbeddedCoordinatorLink {
    processors: Inboxes,
    inbox: UnboundedReceiver<Vec<u8>>,
}

/// Hands out processor ends; a processor that restarts connects again (what was sent to its
/// old end while it was down is lost, as on any network: the coordinator resends).
#[derive(Clone)]
pub struct EmbeddedHub {
    to_coordinator: UnboundedSender<Vec<u8>>,
    processors: Inboxes,
}

/// The coordinator's end and the hub processors connect through.
pub fn hub() -> (EmbeddedCoordinatorLink, EmbeddedHub) {
    let (to_coordinator, inbox) = unbounded_channel();
    let processors = Inboxes::default();
    (EmbeddedCoordinatorLink { processors: processors.clone(), inbox }, EmbeddedHub { to_coordinator, processors })
}

impl EmbeddedHub {
    pub fn connect(&self, key: PeerKey) -> EmbeddedProcessorLink {
        let (sender, inbox) = unbounded_channel();
        self.processors.lock().unwrap_or_else(PoisonError::into_inner).insert(key, sender);
        EmbeddedProcessorLink { to_coordinator: self.to_coordinator.clone(), inbox }
    }
}

impl ProcessorLink for EmbeddedProcessorLink {
    async fn send(&mut self, bytes: Vec<u8>) -> Result<(), LinkError> {
        self.to_coordinator.send(bytes).map_err(|_| LinkError::Closed)
    }
    async fn recv(&mut self) -> Result<Vec<u8>, LinkError> {
        self.inbox.recv().await.ok_or(LinkError::Closed)
    }
    async fn handled(&mut self) {}
    // Every resend of the coordinator arrives: nothing to redeliver.
    async fn defer(&mut self) {}
}

impl CoordinatorLink for EmbeddedCoordinatorLink {
    async fn send_to(&mut self, to: PeerKey, bytes: Vec<u8>) -> Result<(), LinkError> {
        let processors = self.processors.lock().unwrap_or_else(PoisonError::into_inner);
        let sender =
            processors.get(&to).ok_or_else(|| LinkError::Transient(format!("processor {to} never connected")))?;
        // A processor that stopped (a daemon restarting) misses messages: the coordinator resends.
        sender.send(bytes).map_err(|_| LinkError::Transient(format!("processor {to} is not running")))
    }
    async fn recv(&mut self) -> Result<Vec<u8>, LinkError> {
        self.inbox.recv().await.ok_or(LinkError::Closed)
    }
    async fn handled(&mut self) {}
}
