//! Key material the processor holds: its network identity and secrets that must be zeroized.

use crate::ids::PeerKey;
use core::fmt;
use ed25519_dalek::{Signer, SigningKey};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

/// A peer's Ed25519 identity on the message network. Zeroized on drop; Debug shows only the
/// public key.
#[derive(Clone)]
pub struct Identity(SigningKey);

impl Identity {
    /// A new identity, its secret key drawn from `rng`.
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Identity {
        Identity(SigningKey::generate(rng))
    }

    /// The identity with this 32-byte Ed25519 secret key (as [`Identity::secret_bytes`] gives it).
    pub fn from_secret_bytes(secret: &Zeroizing<[u8; 32]>) -> Identity {
        Identity(SigningKey::from_bytes(secret))
    }

    /// The 32-byte Ed25519 secret key, to persist; zeroized when dropped.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The public key that names this peer on the message network.
    pub fn peer_key(&self) -> PeerKey {
        PeerKey(self.0.verifying_key().to_bytes())
    }

    /// An Ed25519 signature over `message` (how envelopes are sealed).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity").field("public", &self.peer_key()).finish_non_exhaustive()
    }
}

/// A 32-byte secret seed. Zeroized on drop; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretSeed(Zeroizing<[u8; 32]>);

impl SecretSeed {
    /// A fresh seed drawn from `rng`.
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> SecretSeed {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        SecretSeed(seed)
    }
    /// Wraps seed bytes already kept zeroizing.
    pub fn from_bytes(bytes: Zeroizing<[u8; 32]>) -> SecretSeed {
        SecretSeed(bytes)
    }
    /// The seed's bytes, for the derivation that uses them; never log or store them elsewhere.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SecretSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretSeed(<redacted>)")
    }
}

/// Secret bytes (a serialized key share). Zeroized on drop; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Takes ownership of secret bytes, zeroizing them when dropped.
    pub fn new(bytes: Vec<u8>) -> SecretBytes {
        SecretBytes(Zeroizing::new(bytes))
    }
    /// The secret bytes, to parse them; never log or store them elsewhere.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBytes(<redacted>)")
    }
}

// Secrets are stored in the DB; their encodings go through the same codec as everything else.
mod secret_codec {
    use super::{SecretBytes, SecretSeed};
    use bincode::de::{BorrowDecoder, Decode, Decoder};
    use bincode::enc::{Encode, Encoder};
    use bincode::error::{DecodeError, EncodeError};
    use zeroize::Zeroizing;

    impl Encode for SecretSeed {
        fn encode<E: Encoder>(&self, encoder: &mut E) -> Result<(), EncodeError> {
            let seed: &[u8; 32] = &self.0;
            seed.encode(encoder)
        }
    }
    impl<Context> Decode<Context> for SecretSeed {
        fn decode<D: Decoder<Context = Context>>(decoder: &mut D) -> Result<Self, DecodeError> {
            Ok(SecretSeed(Zeroizing::new(<[u8; 32]>::decode(decoder)?)))
        }
    }
    impl<'de, Context> bincode::BorrowDecode<'de, Context> for SecretSeed {
        fn borrow_decode<D: BorrowDecoder<'de, Context = Context>>(decoder: &mut D) -> Result<Self, DecodeError> {
            Decode::decode(decoder)
        }
    }

    impl Encode for SecretBytes {
        fn encode<E: Encoder>(&self, encoder: &mut E) -> Result<(), EncodeError> {
            self.0.as_slice().encode(encoder)
        }
    }
    impl<Context> Decode<Context> for SecretBytes {
        fn decode<D: Decoder<Context = Context>>(decoder: &mut D) -> Result<Self, DecodeError> {
            Ok(SecretBytes(Zeroizing::new(Vec::<u8>::decode(decoder)?)))
        }
    }
    impl<'de, Context> bincode::BorrowDecode<'de, Context> for SecretBytes {
        fn borrow_decode<D: BorrowDecoder<'de, Context = Context>>(decoder: &mut D) -> Result<Self, DecodeError> {
            Decode::decode(decoder)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    #[test]
    fn secrets_are_absent_from_debug_output() {
        let mut rng = rand_chacha::ChaCha20Rng::from_seed([7; 32]);
        let identity = Identity::generate(&mut rng);
        let secret_hex = hex::encode(&identity.secret_bytes()[..]);
        let printed = format!("{identity:?}");
        assert!(!printed.contains(&secret_hex), "identity secret in Debug: {printed}");
        assert!(printed.contains(&identity.peer_key().to_string()));

        let seed = SecretSeed::generate(&mut rng);
        let printed = format!("{seed:?}");
        assert!(!printed.contains(&hex::encode(seed.expose())));
        assert!(!printed.contains(&format!("{:?}", seed.expose())));

        let bytes = SecretBytes::new(vec![0xAB; 40]);
        assert_eq!(format!("{bytes:?}"), "SecretBytes(<redacted>)");
    }

    #[test]
    fn secrets_round_trip_through_the_codec() {
        use crate::messages::{decode, encode};
        let seed = SecretSeed::generate(&mut rand_chacha::ChaCha20Rng::from_seed([9; 32]));
        let decoded: (SecretSeed, u8) = decode(&encode(&(seed.clone(), 7u8))).unwrap();
        assert_eq!(decoded, (seed, 7));
        let bytes = SecretBytes::new(vec![1, 2, 3]);
        let decoded: (SecretBytes, u8) = decode(&encode(&(bytes.clone(), 7u8))).unwrap();
        assert_eq!(decoded, (bytes, 7));
    }
}

/// Point-to-point encryption between two processors' identities, for secrets relayed through
/// the coordinator (DKG shares). The key is the X25519 agreement of the two Ed25519 identities
/// (in Montgomery form) hashed with a context that names the session and both ends, so each
/// key encrypts exactly one plaintext; re-encrypting after a restart yields identical bytes.
/// AEAD (ChaCha20-Poly1305) also authenticates the sender to the recipient.
pub mod pairwise {
    use super::Identity;
    use crate::ids::PeerKey;
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
    use ed25519_dalek::VerifyingKey;
    use sha2::{Digest, Sha256};
    use zeroize::Zeroizing;

    /// Whether a peer key is usable for agreement: a valid point, not of small order.
    pub fn usable(peer: &PeerKey) -> bool {
        VerifyingKey::from_bytes(&peer.0).is_ok_and(|key| !key.is_weak())
    }

    fn cipher(me: &Identity, peer: &PeerKey, context: &[u8]) -> Option<ChaCha20Poly1305> {
        let peer = VerifyingKey::from_bytes(&peer.0).ok().filter(|key| !key.is_weak())?;
        let scalar = Zeroizing::new(me.0.to_scalar_bytes());
        let shared = Zeroizing::new(peer.to_montgomery().mul_clamped(*scalar).to_bytes());
        let mut hasher = Sha256::new();
        hasher.update(b"threshold-custody processor pairwise key v1");
        hasher.update(shared.as_slice());
        hasher.update((context.len() as u64).to_le_bytes());
        hasher.update(context);
        let key = Zeroizing::new(<[u8; 32]>::from(hasher.finalize()));
        Some(ChaCha20Poly1305::new(&Key::from(*key)))
    }

    /// Encrypts `plaintext` for `recipient`. `context` must differ for every plaintext.
    pub fn seal(me: &Identity, recipient: &PeerKey, context: &[u8], plaintext: &[u8]) -> Option<Vec<u8>> {
        let cipher = cipher(me, recipient, context)?;
        cipher.encrypt(&Nonce::default(), Payload { msg: plaintext, aad: context }).ok()
    }

    /// Decrypts what `sender` sealed for us; `None` if it was not sealed by them for this context.
    pub fn open(me: &Identity, sender: &PeerKey, context: &[u8], ciphertext: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let cipher = cipher(me, sender, context)?;
        cipher.decrypt(&Nonce::default(), Payload { msg: ciphertext, aad: context }).ok().map(Zeroizing::new)
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use rand_chacha::rand_core::SeedableRng;

        #[test]
        fn only_the_two_ends_can_open_and_contexts_do_not_mix() {
            let mut rng = rand_chacha::ChaCha20Rng::from_seed([3; 32]);
            let (alice, bob, eve) =
                (Identity::generate(&mut rng), Identity::generate(&mut rng), Identity::generate(&mut rng));
            let sealed = seal(&alice, &bob.peer_key(), b"ctx", b"share").unwrap();
            assert_ne!(&sealed[..5], b"share");
            assert_eq!(open(&bob, &alice.peer_key(), b"ctx", &sealed).unwrap().as_slice(), b"share");
            assert!(open(&bob, &alice.peer_key(), b"other ctx", &sealed).is_none());
            assert!(open(&eve, &alice.peer_key(), b"ctx", &sealed).is_none());
            assert!(open(&bob, &eve.peer_key(), b"ctx", &sealed).is_none());
            let mut tampered = sealed.clone();
            tampered[0] ^= 1;
            assert!(open(&bob, &alice.peer_key(), b"ctx", &tampered).is_none());
            // Deterministic: a restart re-encrypts to the same bytes.
            assert_eq!(seal(&alice, &bob.peer_key(), b"ctx", b"share").unwrap(), sealed);
            // The identity point is of small order: refused.
            let identity_point = PeerKey({
                let mut b = [0u8; 32];
                b[0] = 1;
                b
            });
            assert!(!usable(&identity_point));
            assert!(seal(&alice, &identity_point, b"ctx", b"share").is_none());
        }
    }
}
