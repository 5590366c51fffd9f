//! Small types that carry meaning: a participant index is never a height, a session is never a
//! sequence id. Every one of them is encoded the same way on the wire and in the DB.

use bincode::{Decode, Encode};

use core::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Encode, Decode)]
        #[cfg_attr(test, derive(proptest_derive::Arbitrary))]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl $name {
            /// Big-endian bytes, so DB keys built from this id sort in numeric order.
            pub fn to_key_bytes(self) -> Vec<u8> {
                self.0.to_be_bytes().to_vec()
            }
        }
    };
}

id_type!(
    /// A key-generation session: one attempt at generating the keys of one validator set.
    SessionId(u32)
);
id_type!(
    /// Position of a message in one direction of one coordinator<->processor link.
    SeqId(u64)
);
id_type!(
    /// The n-th attempt at a signing protocol; a new attempt always means new nonces.
    Attempt(u32)
);
id_type!(
    /// Milliseconds on the injected clock (virtual in simulation, wall clock in the daemon).
    Millis(u64)
);
id_type!(
    /// Height of a block on an external chain.
    BlockHeight(u64)
);
id_type!(
    /// Sequential id of a Batch on one external chain.
    BatchId(u32)
);
id_type!(
    /// An amount in the chain's smallest unit (satoshi, piconero).
    Amount(u64)
);
id_type!(
    /// The version of the database layout.
    SchemaVersion(u32)
);

/// An output on an external chain, in the chain's own terms: Bitcoin's outpoint (txid and
/// output index, 36 bytes), Monero's transaction hash and index in it.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct OutputId(pub Vec<u8>);

impl fmt::Debug for OutputId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OutputId({})", hex::encode(&self.0))
    }
}

impl fmt::Display for OutputId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

/// A validator's 1-based index in a key-generation session, as FROST numbers participants.
/// Never 0: the constructors refuse it and so does decoding, so no index from the wire can
/// underflow a position or name FROST's invalid identifier.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Encode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Participant(#[cfg_attr(test, proptest(strategy = "1..=u16::MAX"))] u16);

impl<Context> bincode::Decode<Context> for Participant {
    fn decode<D: bincode::de::Decoder<Context = Context>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        let index = u16::decode(decoder)?;
        Participant::new(index).ok_or(bincode::error::DecodeError::Other("participant index 0 (indexes start at 1)"))
    }
}
bincode::impl_borrow_decode!(Participant);

impl Participant {
    /// `None` for 0: FROST identifiers start at 1.
    pub const fn new(index: u16) -> Option<Participant> {
        if index == 0 {
            None
        } else {
            Some(Participant(index))
        }
    }
    /// The 1-based index, as FROST numbers the participant.
    pub const fn get(self) -> u16 {
        self.0
    }
    /// Zero-based position in a participant list.
    pub const fn position(self) -> usize {
        (self.0 - 1) as usize
    }
    /// The participant at a zero-based position of a list.
    pub fn from_position(position: usize) -> Participant {
        let index = u16::try_from(position + 1).expect("participant lists are bounded by u16");
        Participant(index)
    }
}

impl fmt::Display for Participant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The external chains a processor can serve.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum ExternalChain {
    /// Bitcoin: amounts in satoshi, funds under a Taproot key.
    Bitcoin,
    /// Monero: amounts in piconero, funds in a wallet with a threshold spend key.
    Monero,
}

impl fmt::Display for ExternalChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExternalChain::Bitcoin => "bitcoin",
            ExternalChain::Monero => "monero",
        })
    }
}

impl core::str::FromStr for ExternalChain {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bitcoin" => Ok(ExternalChain::Bitcoin),
            "monero" => Ok(ExternalChain::Monero),
            other => Err(format!("unknown chain `{other}` (expected `bitcoin` or `monero`)")),
        }
    }
}

macro_rules! bytes32_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
        #[cfg_attr(test, derive(proptest_derive::Arbitrary))]
        pub struct $name(pub [u8; 32]);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), hex::encode(self.0))
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }
    };
}

bytes32_type!(
    /// Ed25519 public key identifying a processor or a coordinator on the message network.
    PeerKey
);
bytes32_type!(
    /// The identifier of a block on an external chain.
    BlockId
);
bytes32_type!(
    /// Identifier of a payment plan (a transaction the group will sign).
    PlanId
);
bytes32_type!(
    /// Ed25519 group key that signs Batches for Serai.
    BatchPublicKey
);
