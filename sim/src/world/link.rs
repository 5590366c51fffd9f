//! The coordinator link over madsim's simulated network: the same [`ProcessorLink`] and
//! [`CoordinatorLink`] the daemon implements over NATS, here over datagrams that the
//! simulation delays, drops and partitions.

use super::{coordinator_addr, processor_addr, TAG};
use madsim::net::Endpoint;
use processor_core::ids::PeerKey;
use processor_core::link::{CoordinatorLink, LinkError, ProcessorLink};

pub(super) struct SimProcessorLink {
    pub endpoint: Endpoint,
}

pub(super) struct SimCoordinatorLink {
    pub endpoint: Endpoint,
    /// Processor `i` listens at `processor_addr(i)`.
    pub processors: Vec<PeerKey>,
}

/// The next datagram carrying bytes (anything else on the wire is ignored).
async fn next_bytes(endpoint: &Endpoint) -> Result<Vec<u8>, LinkError> {
    loop {
        let (payload, _) = endpoint.recv_from_raw(TAG).await.map_err(|e| LinkError::Transient(e.to_string()))?;
        if let Ok(bytes) = payload.downcast::<Vec<u8>>() {
            return Ok(*bytes);
        }
    }
}

impl ProcessorLink for SimProcessorLink {
    async fn send(&mut self, bytes: Vec<u8>) -> Result<(), LinkError> {
        self.endpoint
            .send_to_raw(coordinator_addr(), TAG, Box::new(bytes))
            .await
            .map_err(|e| LinkError::Transient(e.to_string()))
    }
    async fn recv(&mut self) -> Result<Vec<u8>, LinkError> {
        next_bytes(&self.endpoint).await
    }
    async fn handled(&mut self) {}
    // Datagrams are not de-duplicated: the coordinator's resends arrive.
    async fn defer(&mut self) {}
}

impl CoordinatorLink for SimCoordinatorLink {
    async fn send_to(&mut self, to: PeerKey, bytes: Vec<u8>) -> Result<(), LinkError> {
        let index = self
            .processors
            .iter()
            .position(|k| *k == to)
            .ok_or_else(|| LinkError::Transient(format!("unknown processor {to}")))?;
        self.endpoint
            .send_to_raw(processor_addr(index), TAG, Box::new(bytes))
            .await
            .map_err(|e| LinkError::Transient(e.to_string()))
    }
    async fn recv(&mut self) -> Result<Vec<u8>, LinkError> {
        next_bytes(&self.endpoint).await
    }
    async fn handled(&mut self) {}
}
