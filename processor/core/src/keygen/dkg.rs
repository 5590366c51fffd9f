//! The FROST DKG (Pedersen with proofs of knowledge, as frost-core implements it) for one
//! ciphersuite, with deterministic randomness from a persisted seed so every step can be
//! recomputed after a restart instead of persisting secret polynomials.

use super::KeyGenError;
use crate::crypto::SecretSeed;
use crate::ids::Participant;
use crate::messages::BlameReason;
use frost_core::keys::dkg::{part1, part2, part3, round1, round2};
use frost_core::keys::{KeyPackage, PublicKeyPackage};
use frost_core::{Ciphersuite, Identifier};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::collections::BTreeMap;

/// Which of a session's DKGs a randomness stream belongs to, so the two never share one.
#[derive(Clone, Copy)]
pub(crate) enum DkgStream {
    Batch = 0,
    Chain = 1,
}

/// The FROST identifier of a participant: its index as a scalar.
pub fn identifier<C: Ciphersuite>(participant: Participant) -> Identifier<C> {
    Identifier::try_from(participant.get()).expect("participants are non-zero")
}

/// Maps a frost error to blame of a participant, or to a refusal when nobody is at fault.
fn blame_or_refuse<C: Ciphersuite>(error: frost_core::Error<C>, participants: &[Participant]) -> KeyGenError {
    let reason = match &error {
        frost_core::Error::InvalidProofOfKnowledge { .. } => BlameReason::InvalidProofOfKnowledge,
        frost_core::Error::InvalidSecretShare { .. } => BlameReason::InvalidShare,
        _ => return KeyGenError::Refused(format!("DKG step failed: {error}")),
    };
    let culprit = error
        .culprits()
        .into_iter()
        .next()
        .and_then(|id| participants.iter().copied().find(|p| identifier::<C>(*p) == id));
    match culprit {
        Some(accused) => KeyGenError::Blame { accused, reason },
        None => KeyGenError::Refused(format!("DKG step failed without a culprit: {error}")),
    }
}

/// Everything about one DKG that is fixed at its start.
pub(crate) struct DkgParams<'a> {
    pub seed: &'a SecretSeed,
    pub stream: DkgStream,
    pub me: Participant,
    pub threshold: u16,
    pub participants: &'a [Participant],
}

/// Round 2's secret and the share for each other participant.
pub type Round2<C> = (round2::SecretPackage<C>, BTreeMap<Identifier<C>, round2::Package<C>>);

impl DkgParams<'_> {
    fn n(&self) -> u16 {
        u16::try_from(self.participants.len()).expect("participant count is bounded")
    }

    /// Round 1; recomputed identically from the seed whenever needed.
    pub fn round1<C: Ciphersuite>(&self) -> Result<(round1::SecretPackage<C>, round1::Package<C>), KeyGenError> {
        let mut rng = ChaCha20Rng::from_seed(*self.seed.expose());
        rng.set_stream(self.stream as u64);
        part1::<C, _>(identifier(self.me), self.n(), self.threshold, &mut rng)
            .map_err(|error| KeyGenError::Refused(format!("DKG parameters rejected: {error}")))
    }

    /// Round 2: verifies every other participant's commitments and makes their shares.
    pub fn round2<C: Ciphersuite>(
        &self,
        commitments: &BTreeMap<Identifier<C>, round1::Package<C>>,
    ) -> Result<Round2<C>, KeyGenError> {
        let (secret, _) = self.round1::<C>()?;
        part2(secret, commitments).map_err(|error| blame_or_refuse(error, self.participants))
    }

    /// Round 3: verifies the shares received and derives this participant's key share.
    pub fn finish<C: Ciphersuite>(
        &self,
        commitments: &BTreeMap<Identifier<C>, round1::Package<C>>,
        shares: &BTreeMap<Identifier<C>, round2::Package<C>>,
    ) -> Result<(KeyPackage<C>, PublicKeyPackage<C>), KeyGenError> {
        let (secret, _) = self.round2::<C>(commitments)?;
        part3(&secret, commitments, shares).map_err(|error| blame_or_refuse(error, self.participants))
    }
}

/// Parses one participant's round-1 package, blaming them if it is malformed.
pub(crate) fn parse_commitment<C: Ciphersuite>(
    from: Participant,
    bytes: &[u8],
) -> Result<round1::Package<C>, KeyGenError> {
    round1::Package::<C>::deserialize(bytes)
        .map_err(|_| KeyGenError::Blame { accused: from, reason: BlameReason::Malformed })
}

/// Parses one participant's round-2 share, blaming them if it is malformed.
pub(crate) fn parse_share<C: Ciphersuite>(from: Participant, bytes: &[u8]) -> Result<round2::Package<C>, KeyGenError> {
    round2::Package::<C>::deserialize(bytes)
        .map_err(|_| KeyGenError::Blame { accused: from, reason: BlameReason::Malformed })
}

pub(crate) fn serialize<T, E: core::fmt::Display>(result: Result<T, E>, what: &str) -> T {
    // Serializing a package we just produced only fails on a library bug: a programmer error.
    match result {
        Ok(value) => value,
        Err(error) => panic!("serializing our own {what} failed: {error}"),
    }
}
