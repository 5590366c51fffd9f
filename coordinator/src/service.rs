//! The coordinator as a service on a real link (in-process channels or NATS): one task owns the
//! link, hands what arrives to the [`Coordinator`], ticks it, and sends what it returns. Whoever
//! started it (the devnet, a test) acts on the coordinator through [`ServiceHandle`]: ordering
//! key generation, sending Burns, reading what it observed.

use crate::{Coordinator, Outbound};
use processor_core::ids::Millis;
use processor_core::link::{CoordinatorLink, LinkError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::watch;
use tokio::time::Instant;

/// How often the coordinator re-sends unacknowledged messages and re-attempts stalled signing.
pub const SERVICE_TICK: Duration = Duration::from_millis(100);

#[derive(Clone)]
pub struct ServiceHandle {
    coordinator: Arc<Mutex<Coordinator>>,
    orders: UnboundedSender<Vec<Outbound>>,
}

impl ServiceHandle {
    /// Acts on the coordinator; the messages it returns are sent by the service.
    pub fn act(&self, act: impl FnOnce(&mut Coordinator) -> Vec<Outbound>) {
        let out = act(&mut self.lock());
        let _ = self.orders.send(out);
    }

    /// Reads the coordinator's state.
    pub fn read<T>(&self, read: impl FnOnce(&Coordinator) -> T) -> T {
        read(&self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, Coordinator> {
        self.coordinator.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The service's task; run it with [`Service::run`].
pub struct Service {
    coordinator: Arc<Mutex<Coordinator>>,
    orders: UnboundedReceiver<Vec<Outbound>>,
}

impl Service {
    pub fn new(coordinator: Coordinator) -> (Service, ServiceHandle) {
        let coordinator = Arc::new(Mutex::new(coordinator));
        let (sender, orders) = unbounded_channel();
        (Service { coordinator: coordinator.clone(), orders }, ServiceHandle { coordinator, orders: sender })
    }

    /// Serves until `shutdown` turns true or the link closes.
    pub async fn run<L: CoordinatorLink>(
        mut self,
        mut link: L,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), LinkError> {
        let started = Instant::now();
        let mut ticker = tokio::time::interval(SERVICE_TICK);
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let out = tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() { return Ok(()) }
                    continue;
                }
                Some(out) = self.orders.recv() => out,
                _ = ticker.tick() => {
                    let now = Millis(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
                    self.coordinator.lock().unwrap_or_else(PoisonError::into_inner).tick(now)
                }
                received = link.recv() => match received {
                    Ok(bytes) => {
                        let out = self.coordinator.lock().unwrap_or_else(PoisonError::into_inner).handle(&bytes);
                        link.handled().await;
                        out
                    }
                    Err(error @ (LinkError::Closed | LinkError::Misconfigured(_))) => return Err(error),
                    Err(LinkError::Transient(error)) => {
                        tracing::warn!(%error, "coordinator link");
                        tokio::time::sleep(SERVICE_TICK).await;
                        continue;
                    }
                },
            };
            for Outbound { to, bytes } in out {
                // Not fatal: the coordinator re-sends until acknowledged.
                if let Err(error) = link.send_to(to, bytes).await {
                    tracing::debug!(%error, %to, "send failed");
                }
            }
        }
    }
}
