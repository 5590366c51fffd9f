//! Every table the processor stores, with its key prefix: the one place that owns key layout.
//! Prefixes end in `/` and none is a prefix of another (a test checks).

use super::Table;
use crate::ids::{SeqId, SessionId};
use crate::keygen::{KeyShares, SessionState};

/// Highest inbound sequence id whose effects are committed.
pub const INBOUND_HANDLED: Table<(), SeqId> = Table::new("inbound_handled", b"link/in_handled/");
/// Sequence id the next outbound message will carry.
pub const OUTBOUND_NEXT: Table<(), SeqId> = Table::new("outbound_next", b"link/out_next/");
/// Sealed outbound messages not yet acknowledged, re-sent until they are.
pub const OUTBOX: Table<SeqId, Vec<u8>> = Table::new("outbox", b"link/outbox/");

/// Key-generation sessions and their progress.
pub const KEYGEN_SESSIONS: Table<SessionId, SessionState> = Table::new("keygen_sessions", b"keygen/session/");
/// Generated key shares, by session. Secret.
pub const KEY_SHARES: Table<SessionId, KeyShares> = Table::new("key_shares", b"keygen/shares/");
/// The session whose keys are active (confirmed by the coordinator), if any.
pub const ACTIVE_SESSION: Table<(), SessionId> = Table::new("active_session", b"keygen/active/");

/// All prefixes, for the layout test.
pub const ALL_PREFIXES: &[&[u8]] = &[
    INBOUND_HANDLED.prefix(),
    OUTBOUND_NEXT.prefix(),
    OUTBOX.prefix(),
    KEYGEN_SESSIONS.prefix(),
    KEY_SHARES.prefix(),
    ACTIVE_SESSION.prefix(),
];

#[cfg(test)]
mod tests {
    use super::ALL_PREFIXES;

    #[test]
    fn no_prefix_is_a_prefix_of_another() {
        for (i, a) in ALL_PREFIXES.iter().enumerate() {
            assert!(a.ends_with(b"/"));
            for (j, b) in ALL_PREFIXES.iter().enumerate() {
                if i != j {
                    assert!(!b.starts_with(a), "{:?} shadows {:?}", String::from_utf8_lossy(a), String::from_utf8_lossy(b));
                }
            }
        }
    }
}
