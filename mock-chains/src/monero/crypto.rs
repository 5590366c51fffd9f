//! Curve helpers and wallet keys.
//!
//! curve25519-dalek is not a direct dependency of this crate, so the dalek types are only ever
//! reached through monero-ed25519's `Point::into`/`Scalar::into` and used by inference.

use std::sync::LazyLock;

use monero_wallet::{
    address::{AddressType, MoneroAddress, Network},
    ed25519::{Commitment, CompressedPoint, Point, Scalar},
    io::VarInt,
    primitives::keccak256,
    ViewPair,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

static G: LazyLock<Point> = LazyLock::new(|| CompressedPoint::G.decompress().expect("G is a canonical point"));

/// `s * G`.
pub(crate) fn mul_base(s: Scalar) -> Point {
    let g: Point = *G;
    Point::from(s.into() * g.into())
}

/// `s * P`.
pub(crate) fn mul(s: Scalar, p: Point) -> Point {
    Point::from(s.into() * p.into())
}

pub(crate) fn add(a: Point, b: Point) -> Point {
    Point::from(a.into() + b.into())
}

/// Sum of points; `None` for an empty iterator (the identity is not nameable without dalek).
pub(crate) fn sum(points: impl IntoIterator<Item = Point>) -> Option<Point> {
    points.into_iter().reduce(add)
}

/// monerod's `zeroCommit(amount)`: `G + amount * H`, the commitment of a cleartext amount.
pub(crate) fn zero_commit(amount: u64) -> Point {
    Commitment::new(Scalar::ONE, amount).commit()
}

/// `fee * H`.
pub(crate) fn fee_commit(fee: u64) -> Point {
    Commitment::new(Scalar::ZERO, fee).commit()
}

pub(crate) fn is_torsion_free(p: Point) -> bool {
    p.into().is_torsion_free()
}

/// One output paid to an address the way monero-wallet's scanner recognises it.
pub(crate) struct DerivedOutput {
    pub key: CompressedPoint,
    pub view_tag: u8,
    /// `Hs([uniqueness ||] 8rV || o)`: what the recipient's key offset, the commitment mask and
    /// the amount's encryption derive from.
    pub shared: Scalar,
}

/// The transaction key `R` for randomness `r`: `r*G`, or `r*D` for a subaddress with spend key
/// `D` (Monero's subaddress scheme).
pub(crate) fn tx_key(r: Scalar, to: &MoneroAddress) -> Point {
    if to.is_subaddress() {
        mul(r, to.spend())
    } else {
        mul_base(r)
    }
}

/// Output `o` of a transaction with randomness `r` paying `to`:
/// `key = Hs([uniqueness ||] 8rV || o) G + S`, `view_tag = H("view_tag" || 8rV || o)[0]`.
/// `uniqueness` is only used for guaranteed addresses (see monero-wallet's `GuaranteedScanner`).
pub(crate) fn derive_output(r: Scalar, to: &MoneroAddress, o: usize, uniqueness: [u8; 32]) -> DerivedOutput {
    derive_output_from_ecdh(mul(r, to.view()), to.spend(), to.is_guaranteed().then_some(uniqueness), o)
}

/// Output `o` to the spend key `spend` from the ECDH `ecdh` (`rV` on the sender's side, `vR`
/// on the recipient's, so a sender can pay its own change under another recipient's key `R`),
/// with `uniqueness` for a guaranteed address.
pub(crate) fn derive_output_from_ecdh(
    ecdh: Point,
    spend: Point,
    uniqueness: Option<[u8; 32]>,
    o: usize,
) -> DerivedOutput {
    let mut derivation = Point::from(ecdh.into().mul_by_cofactor()).compress().to_bytes().to_vec();
    // Writing to a Vec cannot fail.
    let _ = VarInt::write(&o, &mut derivation);
    let view_tag = keccak256([b"view_tag".as_slice(), &derivation].concat())[0];
    let shared = match uniqueness {
        Some(uniqueness) => Scalar::hash([uniqueness.as_slice(), &derivation].concat()),
        None => Scalar::hash(&derivation),
    };
    DerivedOutput { key: add(mul_base(shared), spend).compress(), view_tag, shared }
}

/// The shared secret of output `o` from the ECDH `ecdh` (`rV`, or `vR` on the recipient's
/// side) of a standard address: `Hs(8 ecdh || o)`.
pub(crate) fn shared_secret(ecdh: Point, o: usize) -> Scalar {
    let mut derivation = Point::from(ecdh.into().mul_by_cofactor()).compress().to_bytes().to_vec();
    // Writing to a Vec cannot fail.
    let _ = VarInt::write(&o, &mut derivation);
    Scalar::hash(&derivation)
}

/// `a + b`.
pub(crate) fn add_scalars(a: Scalar, b: Scalar) -> Scalar {
    Scalar::from(a.into() + b.into())
}

/// The commitment mask of an output with shared secret `shared`: `Hs("commitment_mask" || shared)`.
pub(crate) fn commitment_mask(shared: Scalar) -> Scalar {
    let mut preimage = b"commitment_mask".to_vec();
    preimage.extend(<[u8; 32]>::from(shared));
    Scalar::hash(preimage)
}

/// An output's amount as RingCT's compact encryption hides it: `amount ^ H("amount" || shared)[..8]`.
pub(crate) fn encrypt_amount(shared: Scalar, amount: u64) -> [u8; 8] {
    let mut preimage = b"amount".to_vec();
    preimage.extend(<[u8; 32]>::from(shared));
    let mask = keccak256(preimage);
    let mut first = [0u8; 8];
    first.copy_from_slice(&mask[..8]);
    (amount ^ u64::from_le_bytes(first)).to_le_bytes()
}

/// monero-wallet's `uniqueness` for a miner transaction of block `height`.
pub(crate) fn miner_uniqueness(height: usize) -> [u8; 32] {
    let mut u = b"uniqueness".to_vec();
    let _ = VarInt::write(&height, &mut u);
    keccak256(u)
}

/// Private spend and view keys of a standard Monero wallet.
#[derive(Clone)]
pub struct WalletKeys {
    spend: Scalar,
    view: Scalar,
}

impl core::fmt::Debug for WalletKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WalletKeys").field("spend_public", &self.spend_public().compress()).finish_non_exhaustive()
    }
}

impl WalletKeys {
    /// Keys drawn from a seeded ChaCha20 stream.
    pub fn from_seed(seed: u64) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        Self::random(&mut rng)
    }

    pub(crate) fn random(rng: &mut ChaCha20Rng) -> Self {
        WalletKeys { spend: Scalar::random(rng), view: Scalar::random(rng) }
    }

    /// The private spend key.
    pub fn spend(&self) -> Scalar {
        self.spend
    }

    /// The private view key.
    pub fn view(&self) -> Scalar {
        self.view
    }

    /// The public spend key.
    pub fn spend_public(&self) -> Point {
        mul_base(self.spend)
    }

    /// The public view key.
    pub fn view_public(&self) -> Point {
        mul_base(self.view)
    }

    /// The view pair monero-wallet's `Scanner` takes.
    pub fn view_pair(&self) -> ViewPair {
        // A spend key of the form `x*G` is torsion-free, which is all `ViewPair::new` checks.
        ViewPair::new(self.spend_public(), Into::into(self.view)).expect("a key x*G is torsion-free")
    }

    /// The standard (legacy, mainnet) address.
    pub fn address(&self) -> MoneroAddress {
        MoneroAddress::new(Network::Mainnet, AddressType::Legacy, self.spend_public(), self.view_public())
    }
}

/// A key that cannot back an address.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum KeyError {
    /// The bytes are not a canonical Ed25519 point encoding.
    #[error("the {0} key is not a canonical point encoding")]
    NotAPoint(&'static str),
    /// The point has a torsion component (never produced by `x*G`).
    #[error("the {0} key has a torsion component")]
    Torsion(&'static str),
}

/// The standard mainnet address for a compressed public spend key (e.g. the threshold group's
/// Ed25519 key from the DKG) and a compressed public view key.
pub fn address_from_keys(spend: [u8; 32], view: [u8; 32]) -> Result<MoneroAddress, KeyError> {
    let decode = |bytes: [u8; 32], which: &'static str| {
        let point = CompressedPoint::from(bytes).decompress().ok_or(KeyError::NotAPoint(which))?;
        if !is_torsion_free(point) {
            return Err(KeyError::Torsion(which));
        }
        Ok(point)
    };
    Ok(MoneroAddress::new(Network::Mainnet, AddressType::Legacy, decode(spend, "spend")?, decode(view, "view")?))
}
