//! How an InInstruction is carried on chain: a version byte, then the wire encoding. Bitcoin
//! puts these bytes in an OP_RETURN output, Monero in the transaction's extra (arbitrary data).

use crate::messages::{decode, encode, InInstruction};

const VERSION: u8 = 1;
/// Bitcoin's standard OP_RETURN relay limit; Monero allows more but one format serves both.
pub const MAX_INSTRUCTION_BYTES: usize = 80;

/// The bytes a deposit carries for `instruction`: the version byte, then its wire encoding (at
/// most [`MAX_INSTRUCTION_BYTES`]).
pub fn encode_instruction(instruction: &InInstruction) -> Vec<u8> {
    let mut bytes = vec![VERSION];
    bytes.extend(encode(instruction));
    debug_assert!(bytes.len() <= MAX_INSTRUCTION_BYTES);
    bytes
}

/// `None` for anything that is not exactly one well-formed instruction of a known version.
pub fn decode_instruction(bytes: &[u8]) -> Option<InInstruction> {
    if bytes.len() > MAX_INSTRUCTION_BYTES {
        return None;
    }
    let (version, rest) = bytes.split_first()?;
    if *version != VERSION {
        return None;
    }
    decode(rest).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn instructions_round_trip(instruction: InInstruction) {
            let bytes = encode_instruction(&instruction);
            prop_assert!(bytes.len() <= MAX_INSTRUCTION_BYTES);
            prop_assert_eq!(decode_instruction(&bytes), Some(instruction));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            if let Some(instruction) = decode_instruction(&bytes) {
                prop_assert_eq!(encode_instruction(&instruction), bytes);
            }
        }
    }
}
