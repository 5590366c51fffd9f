//! Generated key shares: how they are stored, loaded, and turned into the group keys reported
//! to the coordinator.

use super::{ACTIVE_SESSION, KEY_SHARES};
use crate::crypto::SecretBytes;
use crate::db::{DbError, Read};
use crate::ids::{BatchPublicKey, ExternalChain, SessionId};
use crate::messages::{ChainPublicKey, GroupKeys};
use bincode::{Decode, Encode};
use frost_core::keys::{KeyPackage, PublicKeyPackage};
use frost_core::Ciphersuite;

/// FROST over Ed25519 with SHA-512: the batch key's ciphersuite, and Monero's chain key's.
pub type Ed25519 = frost_ed25519::Ed25519Sha512;
/// FROST over secp256k1 with BIP340 Taproot signatures: Bitcoin's chain key's ciphersuite.
pub type Secp256k1Tr = frost_secp256k1_tr::Secp256K1Sha256TR;

/// One participant's share of one group key, with the group's public data.
#[derive(Clone, Debug)]
pub struct KeyShare<C: Ciphersuite> {
    /// This participant's secret signing share, with its identifier, the threshold and the group
    /// key.
    pub share: KeyPackage<C>,
    /// The group key and every participant's verifying share.
    pub public: PublicKeyPackage<C>,
}

impl<C: Ciphersuite> KeyShare<C> {
    pub(crate) fn to_stored(&self) -> (SecretBytes, Vec<u8>) {
        let share = super::dkg::serialize(self.share.serialize(), "key package");
        let public = super::dkg::serialize(self.public.serialize(), "public key package");
        (SecretBytes::new(share), public)
    }

    fn from_stored(share: &SecretBytes, public: &[u8]) -> Result<Self, DbError> {
        let corrupt = |detail: String| DbError::Corrupt { table: "key_shares", detail };
        Ok(KeyShare {
            share: KeyPackage::deserialize(share.expose()).map_err(|e| corrupt(e.to_string()))?,
            public: PublicKeyPackage::deserialize(public).map_err(|e| corrupt(e.to_string()))?,
        })
    }

    /// The group key's canonical encoding.
    pub fn group_key_bytes(&self) -> Vec<u8> {
        super::dkg::serialize(self.public.verifying_key().serialize(), "group key")
    }
}

/// The chain key: its curve depends on the chain.
#[derive(Clone, Debug)]
pub enum ChainKeyShare {
    /// secp256k1, signed with the BIP341 key-path tweak (frost-secp256k1-tr).
    Bitcoin(KeyShare<Secp256k1Tr>),
    /// Ed25519; see [`super::monero`] for how monero-wallet's multisig signer uses it.
    Monero(KeyShare<Ed25519>),
}

/// Both keys a session produced for this processor.
#[derive(Clone, Debug)]
pub struct ThresholdKeyPair {
    /// The key-generation session that produced both keys.
    pub session: SessionId,
    /// The share of the Ed25519 key that signs Batches.
    pub batch: KeyShare<Ed25519>,
    /// The share of the key that holds the chain's funds.
    pub chain: ChainKeyShare,
}

impl ThresholdKeyPair {
    /// The group's public keys in the form reported to the coordinator (Bitcoin's as x-only).
    pub fn group_keys(&self) -> GroupKeys {
        let batch: [u8; 32] = self.batch.group_key_bytes().try_into().expect("Ed25519 keys are 32 bytes");
        let chain = match &self.chain {
            ChainKeyShare::Bitcoin(share) => {
                // SEC1 compressed: a parity byte, then x. The x-only key is x alone, the same for
                // the key and its even-Y negation that BIP340 uses.
                let sec1 = share.group_key_bytes();
                let internal_key = sec1[1..].try_into().expect("compressed secp256k1 keys are 33 bytes");
                ChainPublicKey::Bitcoin { internal_key }
            }
            ChainKeyShare::Monero(share) => ChainPublicKey::Monero {
                spend_key: share.group_key_bytes().try_into().expect("Ed25519 keys are 32 bytes"),
            },
        };
        GroupKeys { batch: BatchPublicKey(batch), chain }
    }

    pub(crate) fn to_stored(&self) -> KeyShares {
        let (batch_share, batch_public) = self.batch.to_stored();
        let (chain, (chain_share, chain_public)) = match &self.chain {
            ChainKeyShare::Bitcoin(share) => (ExternalChain::Bitcoin, share.to_stored()),
            ChainKeyShare::Monero(share) => (ExternalChain::Monero, share.to_stored()),
        };
        KeyShares { chain, batch_share, batch_public, chain_share, chain_public }
    }

    fn from_stored(session: SessionId, stored: &KeyShares) -> Result<Self, DbError> {
        let batch = KeyShare::from_stored(&stored.batch_share, &stored.batch_public)?;
        let chain = match stored.chain {
            ExternalChain::Bitcoin => {
                ChainKeyShare::Bitcoin(KeyShare::from_stored(&stored.chain_share, &stored.chain_public)?)
            }
            ExternalChain::Monero => {
                ChainKeyShare::Monero(KeyShare::from_stored(&stored.chain_share, &stored.chain_public)?)
            }
        };
        Ok(ThresholdKeyPair { session, batch, chain })
    }
}

/// The stored form of a [`ThresholdKeyPair`]. Secret shares are zeroized on drop.
#[derive(Clone, Debug, Encode, Decode)]
pub struct KeyShares {
    chain: ExternalChain,
    batch_share: SecretBytes,
    batch_public: Vec<u8>,
    chain_share: SecretBytes,
    chain_public: Vec<u8>,
}

impl KeyShares {
    /// Whether both hold the same bytes (secret parts compared without copying them).
    fn same_as(&self, other: &KeyShares) -> bool {
        self.chain == other.chain
            && self.batch_share.expose() == other.batch_share.expose()
            && self.batch_public == other.batch_public
            && self.chain_share.expose() == other.chain_share.expose()
            && self.chain_public == other.chain_public
    }
}

/// The keys a session generated here, whether or not they are active yet.
pub fn generated_keys(reader: &impl Read, session: SessionId) -> Result<Option<ThresholdKeyPair>, DbError> {
    KEY_SHARES.get(reader, &session)?.map(|stored| ThresholdKeyPair::from_stored(session, &stored)).transpose()
}

/// The keys the coordinator confirmed, the only ones that may sign.
pub fn active_keys(reader: &impl Read) -> Result<Option<ThresholdKeyPair>, DbError> {
    match ACTIVE_SESSION.get(reader, &())? {
        Some(session) => generated_keys(reader, session),
        None => Ok(None),
    }
}

/// Generated keys by session, parsed once. Stored keys never change, and parsing a large
/// group's public key packages (a point decompression per participant, for both keys) was
/// most of the cost of a signing step.
#[derive(Default)]
pub struct KeyCache(std::collections::BTreeMap<SessionId, std::sync::Arc<ThresholdKeyPair>>);

impl KeyCache {
    /// Sessions kept at once (keys rotate rarely; an evicted session is parsed again).
    const CAPACITY: usize = 4;

    /// The keys `session` generated here (see [`generated_keys`]) if they are live (confirmed
    /// and not retired), parsed at most once while cached.
    pub fn get(
        &mut self,
        reader: &impl Read,
        session: SessionId,
    ) -> Result<Option<std::sync::Arc<ThresholdKeyPair>>, DbError> {
        // Only a live key signs: a retired one's parsed shares are dropped (and zeroized) here.
        if super::stage::stage(reader, session)?.is_none() {
            self.0.remove(&session);
            return Ok(None);
        }
        if let Some(keys) = self.0.get(&session) {
            return Ok(Some(keys.clone()));
        }
        let Some(keys) = generated_keys(reader, session)? else { return Ok(None) };
        let keys = std::sync::Arc::new(keys);
        while self.0.len() >= Self::CAPACITY {
            self.0.pop_first();
        }
        self.0.insert(session, keys.clone());
        Ok(Some(keys))
    }

    /// Drops `session`'s parsed keys (their shares are zeroized as they drop).
    pub fn forget(&mut self, session: SessionId) {
        self.0.remove(&session);
    }

    /// The active keys (see [`active_keys`]), parsed once.
    pub fn active(&mut self, reader: &impl Read) -> Result<Option<std::sync::Arc<ThresholdKeyPair>>, DbError> {
        match ACTIVE_SESSION.get(reader, &())? {
            Some(session) => self.get(reader, session),
            None => Ok(None),
        }
    }
}

/// The active keys for a reader outside the processor that asks often (inspection, the
/// simulation's checks): parsed again only when what is stored changes, so unlike [`KeyCache`]
/// it sees any change to the stored keys, at the cost of one read and comparison.
#[derive(Default)]
pub struct ActiveKeysMemo(Option<(SessionId, KeyShares, std::sync::Arc<ThresholdKeyPair>)>);

impl ActiveKeysMemo {
    /// Exactly [`active_keys`], parsing only keys not parsed last time.
    pub fn get(&mut self, reader: &impl Read) -> Result<Option<std::sync::Arc<ThresholdKeyPair>>, DbError> {
        let Some(session) = ACTIVE_SESSION.get(reader, &())? else { return Ok(None) };
        let Some(stored) = KEY_SHARES.get(reader, &session)? else { return Ok(None) };
        if let Some((memo_session, memo_stored, keys)) = &self.0 {
            if *memo_session == session && memo_stored.same_as(&stored) {
                return Ok(Some(keys.clone()));
            }
        }
        let keys = std::sync::Arc::new(ThresholdKeyPair::from_stored(session, &stored)?);
        self.0 = Some((session, stored, keys.clone()));
        Ok(Some(keys))
    }
}
