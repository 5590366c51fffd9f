//! Threshold key generation, driven by the coordinator and relayed through it.
//!
//! Each session runs two FROST DKGs side by side over the same messages: the batch key
//! (Ed25519) and the chain key (secp256k1 Taproot for Bitcoin, Ed25519 for Monero). The phases:
//!
//! ```text
//! Start ──> Committed ──(all commitments)──> SharesSent ──(all shares)──> Generated ──(Confirm)──> Active
//!               └──────────────(invalid package: Blame, or coordinator's Failed)──────────> Failed
//! ```
//!
//! Progress is persisted with each step. The DKG randomness is a per-session seed stored with
//! the session, so after a restart every step is recomputed to the same bytes it sent before
//! rather than persisting polynomials. A key is reported when generated and used only once the
//! coordinator confirms it with the same group keys; a session that blamed anyone, or that the
//! coordinator declared failed, never becomes active.

mod dkg;
pub mod keys;
pub mod monero;
pub mod stage;

pub use dkg::identifier as dkg_identifier;
pub use keys::{
    active_keys, generated_keys, ActiveKeysMemo, ChainKeyShare, KeyCache, KeyShare, KeyShares, ThresholdKeyPair,
};
pub use stage::{hand_over, live_keys, retire, KeyStage, LiveKey, MAX_LIVE_KEYS};

use crate::crypto::{pairwise, Identity, SecretSeed};
use crate::db::{tables, Db, DbError, Read, Txn};
use crate::ids::{BlockHeight, ExternalChain, Participant, PeerKey, SessionId};

use crate::messages::{decode, encode, BlameReason, GroupKeys, KeyGenCommand, KeyGenEvent, Opaque};
use bincode::{Decode, Encode};
use dkg::{parse_commitment, parse_share, DkgParams, DkgStream};
use frost_core::keys::dkg::{round1, round2};
use frost_core::{Ciphersuite, Identifier};
use keys::{Ed25519, Secp256k1Tr};
use rand_core::{CryptoRng, RngCore};
use std::collections::{BTreeMap, BTreeSet};

tables! {
    /// Key-generation sessions and their progress.
    KEYGEN_SESSIONS: Table<SessionId, SessionState> = b"keygen/session/";
    /// Generated key shares, by session. Secret.
    KEY_SHARES: Table<SessionId, KeyShares> = b"keygen/shares/";
    /// The session whose keys are active (confirmed by the coordinator), if any.
    ACTIVE_SESSION: Table<(), SessionId> = b"keygen/active/";
}

/// The session whose keys are active, if any.
pub fn active_session(reader: &impl Read) -> Result<Option<SessionId>, DbError> {
    ACTIVE_SESSION.get(reader, &())
}

/// How many signers the active session's keys sign with (t), if a session is active; `None`
/// for keys installed without a recorded session.
pub fn active_threshold(reader: &impl Read) -> Result<Option<u16>, DbError> {
    let Some(session) = ACTIVE_SESSION.get(reader, &())? else {
        return Ok(None);
    };
    threshold(reader, session)
}

/// How many signers `session`'s keys sign with (t); `None` for keys installed without a
/// recorded session.
pub fn threshold(reader: &impl Read, session: SessionId) -> Result<Option<u16>, DbError> {
    Ok(KEYGEN_SESSIONS.get(reader, &session)?.map(|state| state.threshold))
}

/// Every key-generation session this processor took part in, with its state.
pub fn sessions(reader: &impl Read) -> Result<Vec<(SessionId, SessionState)>, DbError> {
    KEYGEN_SESSIONS.entries(reader)
}

/// Largest validator set a session accepts (bounds every per-participant loop and message).
pub const MAX_PARTICIPANTS: usize = 256;

/// Why a key-generation command did not simply advance the session.
#[derive(Debug, thiserror::Error)]
pub enum KeyGenError {
    /// A participant sent something invalid: they are blamed and the session fails.
    #[error("participant {accused} blamed: {reason:?}")]
    Blame {
        /// The participant whose package was invalid.
        accused: Participant,
        /// What was wrong with it.
        reason: BlameReason,
    },
    /// The coordinator sent something inconsistent; the command changes nothing.
    #[error("command refused: {0}")]
    Refused(String),
    /// The database failed; fatal for the caller.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A session as persisted.
#[derive(Clone, Debug, Encode, Decode)]
pub struct SessionState {
    /// The external chain whose chain key the session generates (the processor's).
    pub chain: ExternalChain,
    /// t: how many participants it takes to sign with the session's keys.
    pub threshold: u16,
    /// This processor's 1-based index among the participants.
    pub my_index: Participant,
    /// Every participant's network key, in index order.
    pub participants: Vec<PeerKey>,
    seed: SecretSeed,
    /// How far the session got.
    pub phase: Phase,
}

/// Where a key-generation session stands (see the module docs' diagram).
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub enum Phase {
    /// Our commitments are sent; waiting for everyone else's.
    Committed,
    /// Our shares are sent; waiting for the shares addressed to us.
    SharesSent {
        /// Every other participant's round-1 commitments, kept to finish both DKGs when the
        /// shares arrive.
        commitments: Vec<(Participant, Opaque)>,
    },
    /// Keys generated and reported; not usable until confirmed.
    Generated {
        /// The group keys reported to the coordinator.
        keys: GroupKeys,
    },
    /// Confirmed by the coordinator: these keys are in use (their lifecycle stage is in
    /// [`stage`]).
    Active {
        /// The group keys the coordinator confirmed.
        keys: GroupKeys,
    },
    /// No key from this session may ever be used.
    Failed {
        /// The participant blamed, by this processor or by the coordinator.
        blamed: Participant,
    },
    /// The keys were replaced, held nothing more and were retired: their shares are deleted.
    Retired {
        /// The group keys the session had.
        keys: GroupKeys,
        /// The acknowledged block that handed over to the next keys.
        handed_over: BlockHeight,
        /// The acknowledged block at which they retired.
        retired: BlockHeight,
    },
}

/// This participant's round-1 message: both DKGs' commitments.
#[derive(Encode, Decode)]
struct Commitments {
    batch: Vec<u8>,
    chain: Vec<u8>,
}

/// One round-2 message addressed to one participant: both DKGs' shares.
#[derive(Encode, Decode)]
struct Shares {
    batch: Vec<u8>,
    chain: Vec<u8>,
}

/// The processor-wide facts a key-generation step needs.
pub struct KeyGenContext<'a> {
    /// The external chain this processor serves, whose chain key a new session generates.
    pub chain: ExternalChain,
    /// This processor's network identity, which shares are encrypted to and from.
    pub identity: &'a Identity,
    /// The next height to scan, once scanning began: a rotation's new key must be activated
    /// no lower.
    pub next_to_scan: Option<BlockHeight>,
}

/// What a round-2 share's encryption is bound to: a ciphertext for one (session, from, to) is
/// useless for any other.
pub fn share_context(session: SessionId, from: Participant, to: Participant) -> Vec<u8> {
    encode(&(b"dkg share".as_slice(), session, from, to))
}

/// Handles one key-generation command inside the caller's transaction and returns the messages
/// to send. On `Err` the caller must discard the transaction's writes, except that for
/// [`KeyGenError::Blame`] it calls [`record_blame`].
pub fn handle<D: Db>(
    txn: &mut Txn<'_, D>,
    context: &KeyGenContext<'_>,
    rng: &mut (impl RngCore + CryptoRng),
    command: KeyGenCommand,
) -> Result<Vec<KeyGenEvent>, KeyGenError> {
    match command {
        KeyGenCommand::Start { session, threshold, my_index, participants } => {
            start(txn, context, rng, session, threshold, my_index, participants)
        }
        KeyGenCommand::Commitments { session, commitments } => {
            let state = load(txn, session)?;
            if state.phase != Phase::Committed {
                return Err(KeyGenError::Refused(format!("session {session} is not awaiting commitments")));
            }
            let shares = match state.chain {
                ExternalChain::Bitcoin => make_shares::<Secp256k1Tr>(&state, &commitments)?,
                ExternalChain::Monero => make_shares::<Ed25519>(&state, &commitments)?,
            };
            let shares = encrypt_shares(&state, context.identity, session, shares)?;
            save(txn, session, SessionState { phase: Phase::SharesSent { commitments }, ..state });
            Ok(vec![KeyGenEvent::Shares { session, shares }])
        }
        KeyGenCommand::Shares { session, shares } => {
            let state = load(txn, session)?;
            let Phase::SharesSent { commitments } = &state.phase else {
                return Err(KeyGenError::Refused(format!("session {session} is not awaiting shares")));
            };
            let shares = decrypt_shares(&state, context.identity, session, &shares)?;
            let generated = match state.chain {
                ExternalChain::Bitcoin => finish::<Secp256k1Tr>(&state, commitments, &shares, session)?,
                ExternalChain::Monero => finish::<Ed25519>(&state, commitments, &shares, session)?,
            };
            let keys = generated.group_keys();
            KEY_SHARES.set(txn, &session, &generated.to_stored());
            save(txn, session, SessionState { phase: Phase::Generated { keys }, ..state });
            tracing::info!(%session, ?keys, "key generation finished; awaiting confirmation");
            Ok(vec![KeyGenEvent::Generated { session, keys }])
        }
        KeyGenCommand::Failed { session, blamed } => {
            let state = load(txn, session)?;
            match state.phase {
                Phase::Active { .. } | Phase::Retired { .. } => Err(KeyGenError::Refused(format!(
                    "session {session} was confirmed; a failure report cannot retract it"
                ))),
                Phase::Failed { .. } => Ok(vec![]),
                _ => {
                    tracing::warn!(%session, %blamed, "coordinator declared the key generation failed");
                    fail(txn, session, state, blamed);
                    Ok(vec![])
                }
            }
        }
        // Where scanning begins for the first keys is the scanner's business (the caller's).
        KeyGenCommand::Confirm { session, keys, activation } => {
            let state = load(txn, session)?;
            match state.phase {
                Phase::Generated { keys: ours } if ours == keys => {
                    stage::check_confirmation(txn, activation, context.next_to_scan).map_err(KeyGenError::Refused)?;
                    stage::confirmed(txn, session, activation)?;
                    save(txn, session, SessionState { phase: Phase::Active { keys }, ..state });
                    tracing::info!(%session, ?keys, "keys confirmed and active");
                    Ok(vec![KeyGenEvent::Activated { session, keys }])
                }
                Phase::Generated { .. } => Err(KeyGenError::Refused(format!(
                    "confirmation of session {session} names keys other than the ones generated here"
                ))),
                Phase::Active { keys: ours } if ours == keys => Ok(vec![]),
                ref phase => {
                    Err(KeyGenError::Refused(format!("session {session} cannot be confirmed in phase {phase:?}")))
                }
            }
        }
    }
}

/// Records that `accused` was blamed in `session` and returns the blame message.
pub fn record_blame<D: Db>(
    txn: &mut Txn<'_, D>,
    session: SessionId,
    accused: Participant,
    reason: BlameReason,
) -> Result<Vec<KeyGenEvent>, DbError> {
    let Some(state) = KEYGEN_SESSIONS.get(txn, &session)? else {
        return Ok(vec![]);
    };
    tracing::warn!(%session, %accused, ?reason, "blaming a participant; the session fails");
    fail(txn, session, state, accused);
    Ok(vec![KeyGenEvent::Blame { session, accused, reason }])
}

/// The session a command is about, for blame attribution by the caller.
pub fn session_of(command: &KeyGenCommand) -> SessionId {
    match command {
        KeyGenCommand::Start { session, .. }
        | KeyGenCommand::Commitments { session, .. }
        | KeyGenCommand::Shares { session, .. }
        | KeyGenCommand::Failed { session, .. }
        | KeyGenCommand::Confirm { session, .. } => *session,
    }
}

fn start<D: Db>(
    txn: &mut Txn<'_, D>,
    context: &KeyGenContext<'_>,
    rng: &mut (impl RngCore + CryptoRng),
    session: SessionId,
    threshold: u16,
    my_index: Participant,
    participants: Vec<PeerKey>,
) -> Result<Vec<KeyGenEvent>, KeyGenError> {
    if KEYGEN_SESSIONS.get(txn, &session)?.is_some() {
        return Err(KeyGenError::Refused(format!("session {session} was already started")));
    }
    let n = participants.len();
    if !(2..=MAX_PARTICIPANTS).contains(&n) {
        return Err(KeyGenError::Refused(format!("{n} participants is outside 2..={MAX_PARTICIPANTS}")));
    }
    if !(2..=n).contains(&usize::from(threshold)) {
        return Err(KeyGenError::Refused(format!("threshold {threshold} is outside 2..={n}")));
    }
    if participants.get(my_index.position()) != Some(&context.identity.peer_key()) {
        return Err(KeyGenError::Refused(format!("participant {my_index} is not this processor")));
    }
    if participants.iter().collect::<BTreeSet<_>>().len() != n {
        return Err(KeyGenError::Refused("a participant is listed twice".into()));
    }
    if !participants.iter().all(pairwise::usable) {
        return Err(KeyGenError::Refused("a participant's key cannot receive encrypted shares".into()));
    }

    let state = SessionState {
        chain: context.chain,
        threshold,
        my_index,
        participants,
        seed: SecretSeed::generate(rng),
        phase: Phase::Committed,
    };
    let commitments = match state.chain {
        ExternalChain::Bitcoin => commit::<Secp256k1Tr>(&state)?,
        ExternalChain::Monero => commit::<Ed25519>(&state)?,
    };
    save(txn, session, state);
    tracing::info!(%session, %my_index, n, threshold, "key generation started");
    Ok(vec![KeyGenEvent::Commitments { session, commitments }])
}

fn load<D: Db>(txn: &Txn<'_, D>, session: SessionId) -> Result<SessionState, KeyGenError> {
    KEYGEN_SESSIONS.get(txn, &session)?.ok_or_else(|| KeyGenError::Refused(format!("unknown session {session}")))
}

fn save<D: Db>(txn: &mut Txn<'_, D>, session: SessionId, state: SessionState) {
    KEYGEN_SESSIONS.set(txn, &session, &state);
}

fn fail<D: Db>(txn: &mut Txn<'_, D>, session: SessionId, state: SessionState, blamed: Participant) {
    // Whatever this session produced must never sign: drop the shares with the verdict.
    KEY_SHARES.delete(txn, &session);
    save(txn, session, SessionState { phase: Phase::Failed { blamed }, ..state });
}

impl SessionState {
    fn all_participants(&self) -> Vec<Participant> {
        (0..self.participants.len()).map(Participant::from_position).collect()
    }

    fn others(&self) -> BTreeSet<Participant> {
        self.all_participants().into_iter().filter(|p| *p != self.my_index).collect()
    }

    fn dkg<'a>(&'a self, stream: DkgStream, participants: &'a [Participant]) -> DkgParams<'a> {
        DkgParams { seed: &self.seed, stream, me: self.my_index, threshold: self.threshold, participants }
    }

    /// Checks a per-participant list names exactly every other participant, once.
    fn check_from_others(&self, entries: &[(Participant, Opaque)], what: &str) -> Result<(), KeyGenError> {
        let senders: BTreeSet<Participant> = entries.iter().map(|(p, _)| *p).collect();
        if senders.len() != entries.len() || senders != self.others() {
            return Err(KeyGenError::Refused(format!("{what} do not come from exactly every other participant")));
        }
        Ok(())
    }
}

/// Encrypts each share to its recipient, so the relaying coordinator never sees one.
fn encrypt_shares(
    state: &SessionState,
    identity: &Identity,
    session: SessionId,
    shares: Vec<(Participant, Opaque)>,
) -> Result<Vec<(Participant, Opaque)>, KeyGenError> {
    shares
        .into_iter()
        .map(|(to, plaintext)| {
            let plaintext = zeroize::Zeroizing::new(plaintext);
            let recipient = &state.participants[to.position()];
            pairwise::seal(identity, recipient, &share_context(session, state.my_index, to), &plaintext)
                .map(|ciphertext| (to, ciphertext))
                .ok_or_else(|| KeyGenError::Refused(format!("cannot encrypt to participant {to}")))
        })
        .collect()
}

/// Each sender's decrypted share.
type DecryptedShares = Vec<(Participant, zeroize::Zeroizing<Vec<u8>>)>;

/// Decrypts the shares addressed to us; one that does not open was not sent by its claimed
/// sender for this session, and the sender is blamed.
fn decrypt_shares(
    state: &SessionState,
    identity: &Identity,
    session: SessionId,
    shares: &[(Participant, Opaque)],
) -> Result<DecryptedShares, KeyGenError> {
    state.check_from_others(shares, "shares")?;
    shares
        .iter()
        .map(|(from, ciphertext)| {
            let sender = &state.participants[from.position()];
            pairwise::open(identity, sender, &share_context(session, *from, state.my_index), ciphertext)
                .map(|plaintext| (*from, plaintext))
                .ok_or(KeyGenError::Blame { accused: *from, reason: BlameReason::Malformed })
        })
        .collect()
}

fn commit<C: Ciphersuite>(state: &SessionState) -> Result<Opaque, KeyGenError> {
    let all = state.all_participants();
    let (_, batch) = state.dkg(DkgStream::Batch, &all).round1::<Ed25519>()?;
    let (_, chain) = state.dkg(DkgStream::Chain, &all).round1::<C>()?;
    Ok(encode(&Commitments {
        batch: dkg::serialize(batch.serialize(), "commitments"),
        chain: dkg::serialize(chain.serialize(), "commitments"),
    }))
}

type Round1Maps<C> =
    (BTreeMap<Identifier<Ed25519>, round1::Package<Ed25519>>, BTreeMap<Identifier<C>, round1::Package<C>>);

fn parse_commitments<C: Ciphersuite>(
    state: &SessionState,
    commitments: &[(Participant, Opaque)],
) -> Result<Round1Maps<C>, KeyGenError> {
    state.check_from_others(commitments, "commitments")?;
    let mut batch = BTreeMap::new();
    let mut chain = BTreeMap::new();
    for (from, bytes) in commitments {
        let parsed: Commitments =
            decode(bytes).map_err(|_| KeyGenError::Blame { accused: *from, reason: BlameReason::Malformed })?;
        batch.insert(dkg::identifier(*from), parse_commitment::<Ed25519>(*from, &parsed.batch)?);
        chain.insert(dkg::identifier(*from), parse_commitment::<C>(*from, &parsed.chain)?);
    }
    Ok((batch, chain))
}

fn make_shares<C: Ciphersuite>(
    state: &SessionState,
    commitments: &[(Participant, Opaque)],
) -> Result<Vec<(Participant, Opaque)>, KeyGenError> {
    let all = state.all_participants();
    let (batch_commitments, chain_commitments) = parse_commitments::<C>(state, commitments)?;
    let (_, batch_shares) = state.dkg(DkgStream::Batch, &all).round2::<Ed25519>(&batch_commitments)?;
    let (_, chain_shares) = state.dkg(DkgStream::Chain, &all).round2::<C>(&chain_commitments)?;
    Ok(state
        .others()
        .into_iter()
        .map(|to| {
            let shares = Shares {
                batch: dkg::serialize(batch_shares[&dkg::identifier(to)].serialize(), "share"),
                chain: dkg::serialize(chain_shares[&dkg::identifier(to)].serialize(), "share"),
            };
            (to, encode(&shares))
        })
        .collect())
}

type Round2Maps<C> =
    (BTreeMap<Identifier<Ed25519>, round2::Package<Ed25519>>, BTreeMap<Identifier<C>, round2::Package<C>>);

fn parse_shares<C: Ciphersuite>(
    shares: &[(Participant, zeroize::Zeroizing<Vec<u8>>)],
) -> Result<Round2Maps<C>, KeyGenError> {
    let mut batch = BTreeMap::new();
    let mut chain = BTreeMap::new();
    for (from, bytes) in shares {
        let parsed: Shares =
            decode(bytes).map_err(|_| KeyGenError::Blame { accused: *from, reason: BlameReason::Malformed })?;
        batch.insert(dkg::identifier(*from), parse_share::<Ed25519>(*from, &parsed.batch)?);
        chain.insert(dkg::identifier(*from), parse_share::<C>(*from, &parsed.chain)?);
    }
    Ok((batch, chain))
}

/// Turns this session's stored commitments and the received shares into key shares.
fn finish<C: Ciphersuite>(
    state: &SessionState,
    commitments: &[(Participant, Opaque)],
    shares: &[(Participant, zeroize::Zeroizing<Vec<u8>>)],
    session: SessionId,
) -> Result<ThresholdKeyPair, KeyGenError>
where
    KeyShare<C>: IntoChainKeyShare,
{
    let all = state.all_participants();
    let (batch_commitments, chain_commitments) = parse_commitments::<C>(state, commitments)?;
    let (batch_shares, chain_shares) = parse_shares::<C>(shares)?;
    let (share, public) = state.dkg(DkgStream::Batch, &all).finish::<Ed25519>(&batch_commitments, &batch_shares)?;
    let batch = KeyShare { share, public };
    let (share, public) = state.dkg(DkgStream::Chain, &all).finish::<C>(&chain_commitments, &chain_shares)?;
    let chain = KeyShare { share, public }.into_chain_key_share();
    Ok(ThresholdKeyPair { session, batch, chain })
}

/// Stores keys made elsewhere (a trusted dealer in benchmarks, an operator's import) as this
/// processor's generated and active keys for `keys.session` (scanning is started separately,
/// with `scanner::start_at`).
pub fn install_keys<D: Db>(txn: &mut Txn<'_, D>, keys: &ThresholdKeyPair) {
    KEY_SHARES.set(txn, &keys.session, &keys.to_stored());
    ACTIVE_SESSION.set(txn, &(), &keys.session);
    stage::installed(txn, keys.session);
}

/// Which [`ChainKeyShare`] variant a ciphersuite's key share is.
pub trait IntoChainKeyShare {
    /// Wraps the share in the variant of the chain its curve serves.
    fn into_chain_key_share(self) -> ChainKeyShare;
}
impl IntoChainKeyShare for KeyShare<Secp256k1Tr> {
    fn into_chain_key_share(self) -> ChainKeyShare {
        ChainKeyShare::Bitcoin(self)
    }
}
impl IntoChainKeyShare for KeyShare<Ed25519> {
    fn into_chain_key_share(self) -> ChainKeyShare {
        ChainKeyShare::Monero(self)
    }
}
