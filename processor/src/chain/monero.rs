//! Monero scanning (being written).

use super::{ChainError, ScanKey, ScannedBlock};

pub(super) fn scan_block(_bytes: &[u8], _keys: &[ScanKey]) -> Result<ScannedBlock, ChainError> {
    Err(ChainError::UnsupportedKey("Monero scanning is not implemented yet".into()))
}
