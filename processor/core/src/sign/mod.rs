//! Signing attempts, shared by Batch signing and both chains' transaction signing.
//!
//! Every threshold signature the processor takes part in follows one shape: for a target (a
//! Batch, a plan's transaction) the coordinator runs numbered attempts; in an attempt each
//! signer sends a preprocess (its nonce commitments), receives the signing set's
//! preprocesses, sends its share, and receives the set's shares to aggregate. What this module
//! owns, so that no signer writes it again:
//! - [`Attempts`]: the in-memory state of live attempts (nonces, machines, packages), bounded,
//!   newest attempt per target only. Never persisted: after a restart an attempt is abandoned
//!   and the coordinator's next one gets fresh nonces.
//! - [`first_preprocess`]: the persisted marker that an attempt was preprocessed, so an
//!   attempt's nonces are committed to at most once, even across restarts.
//! - [`SigningSet`]: the checks every signing set passes (enough signers, each in the session,
//!   none twice, ourselves included) before any nonce is used.
//! - [`aggregate`]: FROST aggregation that names the culprit of an invalid share.

use crate::db::{tables, Db, DbError, Txn};
use crate::ids::Participant;
use crate::keygen::{self, KeyShare};
use crate::messages::{BlameReason, SignId, SignTarget};
use frost_core::round2::SignatureShare;
use frost_core::{Identifier, SigningPackage};
use std::collections::{BTreeMap, BTreeSet};

tables! {
    /// Signing attempts this processor sent a preprocess for (Batches and transactions).
    PREPROCESSED: Table<SignId, ()> = b"sign/preprocessed/";
}

/// Why a signing command was not acted on.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// A participant sent something invalid: it is reported, and nothing the step wrote stands.
    #[error("participant {accused} blamed: {reason:?}")]
    Blame {
        /// Who sent it.
        accused: Participant,
        /// What was wrong with it.
        reason: BlameReason,
    },
    /// The command is inconsistent with the state here: refused, nothing changes.
    #[error("command refused: {0}")]
    Refused(String),
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl SignError {
    /// A refusal with this reason.
    pub fn refused(why: impl Into<String>) -> SignError {
        SignError::Refused(why.into())
    }

    /// `participant` sent bytes that do not parse.
    pub fn malformed(participant: Participant) -> SignError {
        SignError::Blame { accused: participant, reason: BlameReason::Malformed }
    }
}

/// Records that attempt `id` is being preprocessed; `false` if it ever was before (then it must
/// not be preprocessed again: its nonces may have been sent).
pub fn first_preprocess<D: Db>(txn: &mut Txn<'_, D>, id: SignId) -> Result<bool, DbError> {
    if PREPROCESSED.get(txn, &id)?.is_some() {
        return Ok(false);
    }
    PREPROCESSED.set(txn, &id, &());
    Ok(true)
}

/// Whether attempt `id` was preprocessed here (for inspection).
pub fn was_preprocessed(reader: &impl crate::db::Read, id: SignId) -> Result<bool, DbError> {
    Ok(PREPROCESSED.get(reader, &id)?.is_some())
}

/// The in-memory state of live signing attempts: at most `limit`, only the newest attempt of
/// each target. Older entries are dropped first (their attempt can be re-attempted).
pub struct Attempts<T> {
    live: BTreeMap<SignId, T>,
    limit: usize,
}

impl<T> Attempts<T> {
    /// Holds at most `limit` attempts.
    pub const fn new(limit: usize) -> Attempts<T> {
        Attempts { live: BTreeMap::new(), limit }
    }

    /// Keeps `state` for attempt `id`, dropping older attempts of its target.
    pub fn insert(&mut self, id: SignId, state: T) {
        self.live.retain(|other, _| other.target != id.target || other.attempt > id.attempt);
        while self.live.len() >= self.limit {
            self.live.pop_first();
        }
        self.live.insert(id, state);
    }

    /// Takes attempt `id`'s state out: whatever happens next, it is never used again.
    pub fn take(&mut self, id: &SignId) -> Option<T> {
        self.live.remove(id)
    }

    /// Forgets every attempt at `target` (it is done).
    pub fn forget(&mut self, target: SignTarget) {
        self.live.retain(|id, _| id.target != target);
    }

    /// How many attempts are live.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether no attempt is live.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}

/// The session's shape as one signer sees it.
#[derive(Clone, Copy, Debug)]
pub struct SigningSet {
    /// Signers needed.
    pub threshold: u16,
    /// Participants in the session.
    pub participants: u16,
    /// This processor.
    pub me: Participant,
}

impl SigningSet {
    /// The signing set's shape for one of our key shares.
    pub fn of<C: frost_core::Ciphersuite>(share: &KeyShare<C>) -> Result<SigningSet, SignError> {
        let participants = u16::try_from(share.public.verifying_shares().len()).unwrap_or(u16::MAX);
        let me = participant_of(share.share.identifier(), participants)
            .ok_or_else(|| SignError::refused("our share is not in the group"))?;
        Ok(SigningSet { threshold: *share.share.min_signers(), participants, me })
    }

    /// The distinct members, each a participant of the session (indexes past `participants`
    /// are refused before anything is parsed; 0 does not decode).
    fn members<'a>(
        &self,
        members: impl IntoIterator<Item = &'a Participant>,
        what: &str,
    ) -> Result<BTreeSet<Participant>, SignError> {
        let mut seen = BTreeSet::new();
        for member in members {
            if member.get() > self.participants {
                return Err(SignError::refused(format!("participant {member} is not in the session")));
            }
            if !seen.insert(*member) {
                return Err(SignError::refused(format!("participant {member}'s {what} appears twice")));
            }
        }
        Ok(seen)
    }

    /// Checks a signing set's members, as the coordinator listed them with their preprocesses:
    /// at least `threshold`, each a participant of the session, none twice, and we among them.
    pub fn check<'a>(&self, members: impl IntoIterator<Item = &'a Participant>) -> Result<(), SignError> {
        let seen = self.members(members, "preprocess")?;
        if seen.len() < usize::from(self.threshold) {
            return Err(SignError::refused(format!("{} preprocesses, {} needed", seen.len(), self.threshold)));
        }
        if !seen.contains(&self.me) {
            return Err(SignError::refused("the signing set lacks us"));
        }
        Ok(())
    }

    /// Checks the members who sent shares: each a participant of the session, none twice (the
    /// aggregation itself checks they are the signing set).
    pub fn check_shares<'a>(&self, members: impl IntoIterator<Item = &'a Participant>) -> Result<(), SignError> {
        self.members(members, "share").map(|_| ())
    }
}

/// The keys of `session`, parsed once (`cache`); a command naming a session without keys here
/// is refused.
pub fn session_keys(
    cache: &mut keygen::KeyCache,
    reader: &impl crate::db::Read,
    session: crate::ids::SessionId,
) -> Result<std::sync::Arc<keygen::ThresholdKeyPair>, SignError> {
    cache.get(reader, session)?.ok_or_else(|| SignError::Refused(format!("no keys for session {session}")))
}

/// The participant a FROST identifier names among `n`.
pub fn participant_of<C: frost_core::Ciphersuite>(id: &Identifier<C>, n: u16) -> Option<Participant> {
    (1..=n).filter_map(Participant::new).find(|p| keygen::dkg_identifier::<C>(*p) == *id)
}

/// Aggregates a signing set's shares (which verifies the signature under `public`), blaming
/// the culprit of an invalid share; returns the signature and its 64-byte encoding.
pub fn aggregate<C: frost_core::Ciphersuite>(
    package: &SigningPackage<C>,
    shares: &BTreeMap<Identifier<C>, SignatureShare<C>>,
    public: &frost_core::keys::PublicKeyPackage<C>,
) -> Result<(frost_core::Signature<C>, [u8; 64]), SignError> {
    let n = u16::try_from(public.verifying_shares().len()).unwrap_or(u16::MAX);
    let signature = frost_core::aggregate(package, shares, public).map_err(|error| {
        match error.culprits().first().and_then(|id| participant_of(id, n)) {
            Some(accused) => SignError::Blame { accused, reason: BlameReason::InvalidSignatureShare },
            None => SignError::refused(format!("aggregation failed: {error}")),
        }
    })?;
    let bytes: [u8; 64] = signature
        .serialize()
        .map_err(|e| SignError::refused(format!("serializing the signature: {e}")))?
        .try_into()
        .map_err(|_| SignError::refused("a signature is 64 bytes"))?;
    Ok((signature, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Attempt, BatchId, SessionId};

    fn id(batch: u32, attempt: u32) -> SignId {
        SignId { session: SessionId(1), target: SignTarget::Batch(BatchId(batch)), attempt: Attempt(attempt) }
    }

    fn p(index: u16) -> Participant {
        Participant::new(index).unwrap()
    }

    #[test]
    fn attempts_keep_only_the_newest_attempt_per_target_within_the_limit() {
        let mut attempts = Attempts::new(3);
        attempts.insert(id(1, 0), "a");
        attempts.insert(id(1, 1), "b");
        assert!(attempts.take(&id(1, 0)).is_none(), "an older attempt of the target is dropped");
        attempts.insert(id(2, 0), "c");
        attempts.insert(id(3, 0), "d");
        attempts.insert(id(4, 0), "e");
        assert_eq!(attempts.len(), 3);
        assert!(attempts.take(&id(1, 1)).is_none(), "the oldest entry went first");
        assert_eq!(attempts.take(&id(4, 0)), Some("e"));
        assert_eq!(attempts.take(&id(4, 0)), None, "taken once");
        attempts.forget(SignTarget::Batch(BatchId(2)));
        assert!(attempts.take(&id(2, 0)).is_none());
    }

    #[test]
    fn an_attempt_is_preprocessed_once_ever() {
        let db = crate::db::MemDb::new();
        let mut txn = db.txn();
        assert!(first_preprocess(&mut txn, id(1, 0)).unwrap());
        assert!(!first_preprocess(&mut txn, id(1, 0)).unwrap());
        assert!(first_preprocess(&mut txn, id(1, 1)).unwrap());
        txn.commit().unwrap();
        assert!(was_preprocessed(&db, id(1, 0)).unwrap());
    }

    #[test]
    fn signing_sets_are_checked_before_any_nonce_is_used() {
        let set = SigningSet { threshold: 2, participants: 3, me: p(1) };
        assert!(set.check(&[p(1), p(2)]).is_ok());
        assert!(set.check(&[p(1), p(2), p(3)]).is_ok());
        assert!(set.check(&[p(1)]).is_err(), "below the threshold");
        assert!(set.check(&[p(2), p(3)]).is_err(), "without us");
        assert!(set.check(&[p(1), p(1), p(2)]).is_err(), "twice");
        assert!(set.check(&[p(1), p(4)]).is_err(), "past the session");
        assert!(set.check_shares(&[p(1), p(1)]).is_err());
        assert!(set.check_shares(&[p(4)]).is_err());
        // Index 0 cannot even be decoded.
        assert!(crate::messages::decode::<Participant>(&crate::messages::encode(&0u16)).is_err());
        assert_eq!(crate::messages::decode::<Participant>(&crate::messages::encode(&3u16)).unwrap(), p(3));
    }
}
