//! One bincode configuration for every byte the processor puts on the wire or reads from it.

use bincode::{Decode, Encode};

/// Upper bound on one encoded message; decoding refuses to allocate past it.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Explicit rather than bincode's defaults, so a library upgrade cannot change the encoding.
fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_little_endian().with_variable_int_encoding().with_limit::<MAX_MESSAGE_BYTES>()
}

/// Why bytes from the network were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// The input is longer than [`MAX_MESSAGE_BYTES`]; refused before decoding.
    #[error("message of {len} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge {
        /// The input's length in bytes.
        len: usize,
    },
    /// The bytes do not decode as the expected type; the decoder's reason.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A value decoded but did not span the input: this many bytes were left over.
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    /// The bytes decode, but are not the value's one encoding (bincode accepts, for example,
    /// a variable-length integer in a longer form than needed).
    #[error("the message is not canonically encoded")]
    NonCanonical,
    /// The envelope's protocol version (carried here) is not [`super::PROTOCOL_VERSION`].
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u16),
    /// The envelope names a recipient other than the peer opening it.
    #[error("message addressed to another peer")]
    WrongRecipient,
    /// The envelope's sender is not one the receiver accepts (a processor accepts only its
    /// configured coordinator).
    #[error("message from a sender that is not accepted here")]
    UnexpectedSender,
    /// The sender's Ed25519 signature over the envelope does not verify (or its key is not one).
    #[error("invalid sender signature")]
    BadSignature,
}

/// Encodes a value. Encoding into a `Vec` has no failure mode for these types.
pub fn encode<T: Encode>(value: &T) -> Vec<u8> {
    bincode::encode_to_vec(value, config()).expect("encoding into a Vec cannot fail")
}

/// Decodes exactly one value spanning all of `bytes`.
pub fn decode<T: Decode<()>>(bytes: &[u8]) -> Result<T, WireError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge { len: bytes.len() });
    }
    let (value, read) =
        bincode::decode_from_slice(bytes, config()).map_err(|error| WireError::Malformed(error.to_string()))?;
    if read != bytes.len() {
        return Err(WireError::TrailingBytes(bytes.len() - read));
    }
    Ok(value)
}

/// [`decode`], refusing bytes that are not the value's one encoding: what comes from another
/// party has exactly one form, so no two byte strings (or hashes of them) stand for one message.
pub fn decode_canonical<T: Decode<()> + Encode>(bytes: &[u8]) -> Result<T, WireError> {
    let value = decode(bytes)?;
    if encode(&value) != bytes {
        return Err(WireError::NonCanonical);
    }
    Ok(value)
}
