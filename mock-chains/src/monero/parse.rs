//! Total decoders for untrusted block and transaction bytes.

use monero_wallet::{block::Block, transaction::Transaction};

/// Bytes that are not exactly one canonical block or transaction.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum ParseError {
    /// monero-oxide's decoder refused the bytes.
    #[error("does not decode: {0}")]
    Decode(String),
    /// A valid encoding followed by extra bytes.
    #[error("{0} trailing bytes")]
    TrailingBytes(usize),
    /// Decodes, but re-encodes differently (monero-oxide normalises a few fields), so the bytes
    /// are not the canonical encoding of what they decode to.
    #[error("not the canonical encoding")]
    NonCanonical,
}

/// Decodes a block blob. Never panics; rejects trailing and non-canonical bytes.
pub fn parse_block(bytes: &[u8]) -> Result<Block, ParseError> {
    let mut reader = bytes;
    let block = Block::read(&mut reader).map_err(|e| ParseError::Decode(e.to_string()))?;
    if !reader.is_empty() {
        return Err(ParseError::TrailingBytes(reader.len()));
    }
    if block.serialize() != bytes {
        return Err(ParseError::NonCanonical);
    }
    Ok(block)
}

/// Decodes a full (unpruned) transaction blob. Never panics; rejects trailing and
/// non-canonical bytes.
pub fn parse_transaction(bytes: &[u8]) -> Result<Transaction, ParseError> {
    let mut reader = bytes;
    let tx = Transaction::read(&mut reader).map_err(|e| ParseError::Decode(e.to_string()))?;
    if !reader.is_empty() {
        return Err(ParseError::TrailingBytes(reader.len()));
    }
    if tx.serialize() != bytes {
        return Err(ParseError::NonCanonical);
    }
    Ok(tx)
}
