//! Decoding of untrusted bytes: blocks, transactions and `OP_RETURN` payloads.

use bitcoin::consensus::encode;
use bitcoin::opcodes::all::OP_RETURN;
use bitcoin::script::Instruction;
use bitcoin::{Block, Script, Transaction};

/// Bytes that are not exactly one consensus-encoded object.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("invalid consensus encoding: {0}")]
    Encoding(#[from] encode::Error),
}

/// Decodes a consensus-encoded block. Rejects trailing bytes; never panics on garbage (the
/// `bitcoin` decoder bounds its allocations and reports errors).
pub fn parse_block(bytes: &[u8]) -> Result<Block, ParseError> {
    Ok(encode::deserialize(bytes)?)
}

/// Decodes a consensus-encoded transaction (with or without witness data).
pub fn parse_transaction(bytes: &[u8]) -> Result<Transaction, ParseError> {
    Ok(encode::deserialize(bytes)?)
}

/// The data of an `OP_RETURN <push>` script: exactly one push after `OP_RETURN`, as
/// `ScriptBuf::new_op_return` writes. `None` for anything else, so callers never mistake an
/// arbitrary script for an instruction.
pub fn op_return_payload(script: &Script) -> Option<&[u8]> {
    let mut instructions = script.instructions();
    match instructions.next()? {
        Ok(Instruction::Op(op)) if op == OP_RETURN => {}
        _ => return None,
    }
    let data = match instructions.next()? {
        Ok(Instruction::PushBytes(data)) => data.as_bytes(),
        _ => return None,
    };
    instructions.next().is_none().then_some(data)
}
