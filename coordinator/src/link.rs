//! The coordinator's end of one link: outbound sequence ids and retransmission, inbound
//! in-order delivery with duplicate detection. Mirrors what the processor persists in its DB.

use processor::ids::SeqId;
use processor::messages::ProcessorMessage;
use std::collections::BTreeMap;

/// Frames further ahead than this are dropped; the sender resends them.
const REORDER_WINDOW: u64 = 1024;

#[derive(Default)]
pub(crate) struct Link {
    last_sent: u64,
    unacked: BTreeMap<SeqId, Vec<u8>>,
    handled: u64,
    reorder: BTreeMap<SeqId, ProcessorMessage>,
}

impl Link {
    pub fn next_seq(&mut self) -> SeqId {
        self.last_sent += 1;
        SeqId(self.last_sent)
    }

    pub fn record_sent(&mut self, seq: SeqId, bytes: Vec<u8>) {
        self.unacked.insert(seq, bytes);
    }

    pub fn acknowledged(&mut self, up_to: SeqId) {
        self.unacked.retain(|seq, _| *seq > up_to);
    }

    pub fn unacked(&self) -> impl Iterator<Item = &Vec<u8>> {
        self.unacked.values()
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
