//! The coordinator's end of one link: outbound sequence ids and retransmission, inbound
//! in-order delivery with duplicate detection. Mirrors what the processor persists in its DB.

use processor_core::ids::SeqId;
use processor_core::messages::ProcessorMessage;
use std::collections::BTreeMap;

/// Frames further ahead than this are dropped; the sender resends them.
const REORDER_WINDOW: u64 = 1024;

/// An unacknowledged message is re-sent this long after it was last sent.
pub(crate) const RESEND_AFTER_MS: u64 = 500;

/// Only the oldest this many unacknowledged messages of a link are re-sent: the processor holds
/// what arrives out of order, and re-sending every unacknowledged message each interval
/// collapses under load (the re-sends crowd out the acknowledgements that would end them).
pub(crate) const RESEND_WINDOW: usize = 16;

#[derive(Default)]
pub(crate) struct Link {
    last_sent: u64,
    /// Unacknowledged messages and when each was last sent.
    unacked: BTreeMap<SeqId, (Vec<u8>, u64)>,
    handled: u64,
    reorder: BTreeMap<SeqId, ProcessorMessage>,
}

impl Link {
    pub fn next_seq(&mut self) -> SeqId {
        self.last_sent += 1;
        SeqId(self.last_sent)
    }

    /// The highest sequence id sent so far.
    pub fn last_sent(&self) -> u64 {
        self.last_sent
    }

    pub fn record_sent(&mut self, seq: SeqId, bytes: Vec<u8>, now_ms: u64) {
        self.unacked.insert(seq, (bytes, now_ms));
    }

    pub fn acknowledged(&mut self, up_to: SeqId) {
        self.unacked.retain(|seq, _| *seq > up_to);
    }

    /// Those of the oldest [`RESEND_WINDOW`] unacknowledged messages due for re-sending at
    /// `now_ms`, marked as sent now.
    pub fn due(&mut self, now_ms: u64) -> Vec<Vec<u8>> {
        self.unacked
            .values_mut()
            .take(RESEND_WINDOW)
            .filter(|(_, sent)| now_ms.saturating_sub(*sent) >= RESEND_AFTER_MS)
            .map(|(bytes, sent)| {
                *sent = now_ms;
                bytes.clone()
            })
            .collect()
    }

    /// Returns the messages now deliverable in order, and the id to acknowledge (if any).
    pub fn receive(&mut self, seq: SeqId, message: ProcessorMessage) -> (Vec<ProcessorMessage>, Option<SeqId>) {
        if seq.0 <= self.handled {
            return (vec![], Some(SeqId(self.handled)));
        }
        if seq.0 > self.handled + 1 {
            if seq.0 - self.handled <= REORDER_WINDOW {
                self.reorder.insert(seq, message);
            }
            return (vec![], None);
        }
        let mut ready = vec![message];
        self.handled = seq.0;
        while let Some(next) = self.reorder.remove(&SeqId(self.handled + 1)) {
            ready.push(next);
            self.handled += 1;
        }
        (ready, Some(SeqId(self.handled)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_oldest_unacknowledged_messages_are_resent() {
        let mut link = Link::default();
        for _ in 0..100 {
            let seq = link.next_seq();
            link.record_sent(seq, seq.0.to_le_bytes().to_vec(), 0);
        }
        let resent = |bytes: Vec<Vec<u8>>| -> Vec<u64> {
            bytes.iter().map(|b| u64::from_le_bytes(b.as_slice().try_into().unwrap())).collect()
        };
        assert_eq!(resent(link.due(RESEND_AFTER_MS)), (1..=16).collect::<Vec<_>>());
        // Just re-sent, the head is not due again; the rest stay outside the window.
        assert!(link.due(RESEND_AFTER_MS + 1).is_empty());
        // An acknowledgement moves the window: the next messages, long unacknowledged, go out.
        link.acknowledged(SeqId(10));
        assert_eq!(resent(link.due(RESEND_AFTER_MS + 2)), (17..=26).collect::<Vec<_>>());
    }
}
