//! Bitcoin: the group receives deposits to the BIP341 key-path output of its x-only internal
//! key with no script tree, and its own change and branch outputs to the key-path output of
//! the same key committed to [`CHANGE_ROOT`] as merkle root: a second address only the group's
//! transactions pay, so change is never mistaken for a deposit. Both are spent by the key path
//! (nobody knows a script under `CHANGE_ROOT`). A deposit's InInstruction is the first
//! OP_RETURN output of its transaction that decodes as one; every output of that transaction
//! paying the group carries it.

use super::instruction::decode_instruction;
use super::{ChainError, ReceivedOutput, ScanKey, ScannedBlock, Spend};
use crate::ids::{Amount, BlockHeight, BlockId, OutputId};
use crate::messages::{ChainPublicKey, InInstruction, OutputKind};
use bitcoin::block::Header;
use bitcoin::hashes::Hash;
use bitcoin::key::{Secp256k1, XOnlyPublicKey};
use bitcoin::script::Instruction;
use bitcoin::taproot::TapNodeHash;
use bitcoin::{Block, OutPoint, ScriptBuf, Transaction, Txid, Wtxid};
use std::collections::BTreeSet;

/// The taproot merkle root of the change address: SHA-256 of
/// "threshold-custody processor: change", not the hash of any known script.
pub const CHANGE_ROOT: [u8; 32] = [
    0x01, 0xb4, 0x84, 0x93, 0x3f, 0xec, 0x97, 0x1a, 0x56, 0x19, 0xa8, 0xa3, 0x3c, 0x2c, 0x0f, 0x10, 0x43, 0xee, 0x03,
    0xa2, 0x2d, 0x28, 0xf0, 0x51, 0x96, 0xa0, 0x13, 0x81, 0x69, 0xf9, 0x28, 0x14,
];

/// The merkle root an output of `kind` commits to.
pub fn merkle_root(kind: OutputKind) -> Option<[u8; 32]> {
    match kind {
        OutputKind::External => None,
        OutputKind::Change => Some(CHANGE_ROOT),
    }
}

/// The scriptPubKey the group's key receives deposits to.
pub fn group_script(internal_key: &[u8; 32]) -> Result<ScriptBuf, ChainError> {
    script_of(internal_key, OutputKind::External)
}

/// The scriptPubKey of the group's outputs of `kind`.
pub fn script_of(internal_key: &[u8; 32], kind: OutputKind) -> Result<ScriptBuf, ChainError> {
    let key = XOnlyPublicKey::from_slice(internal_key)
        .map_err(|e| ChainError::UnsupportedKey(format!("not an x-only key: {e}")))?;
    let root = merkle_root(kind).map(TapNodeHash::from_byte_array);
    Ok(ScriptBuf::new_p2tr(&Secp256k1::verification_only(), key, root))
}

/// An output's id: txid then output index (little endian).
pub fn output_id(outpoint: &OutPoint) -> OutputId {
    let mut id = outpoint.txid.to_byte_array().to_vec();
    id.extend(outpoint.vout.to_le_bytes());
    OutputId(id)
}

/// The outpoint an output id names, if it is one.
pub fn outpoint_of(id: &OutputId) -> Option<OutPoint> {
    let txid: [u8; 32] = id.0.get(..32)?.try_into().ok()?;
    let vout: [u8; 4] = id.0.get(32..)?.try_into().ok()?;
    Some(OutPoint { txid: bitcoin::Txid::from_byte_array(txid), vout: u32::from_le_bytes(vout) })
}

/// The InInstruction a transaction carries, if any.
pub fn transaction_instruction(transaction: &Transaction) -> Option<InInstruction> {
    transaction.output.iter().filter(|output| output.script_pubkey.is_op_return()).find_map(|output| {
        // OP_RETURN then exactly one push.
        let mut instructions = output.script_pubkey.instructions().skip(1);
        match (instructions.next(), instructions.next()) {
            (Some(Ok(Instruction::PushBytes(data))), None) => decode_instruction(data.as_bytes()),
            _ => None,
        }
    })
}

/// The hash a Bitcoin-family chain computes its proof of work with, over the 80-byte header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowHash {
    /// Bitcoin: double SHA-256, the block hash itself.
    Sha256d,
    /// Litecoin: scrypt with N = 1024, r = 1, p = 1 and a 32-byte output, the header salted
    /// with itself (the block hash stays double SHA-256).
    Scrypt,
}

/// What a Bitcoin-family block's header must prove: the hash ([`PowHash`]) read as a
/// little-endian number is at most the target its `bits` encode, and that target is no easier
/// than the network's limit (else a node could serve regtest-difficulty blocks on mainnet).
/// Difficulty retargeting is not checked: it needs the header chain's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProofOfWork {
    hash: PowHash,
    limit_bits: u32,
    limit: [u8; 32],
}

impl ProofOfWork {
    /// Bitcoin mainnet and testnet (testnet's minimum-difficulty blocks are at this limit).
    pub const BITCOIN: ProofOfWork = ProofOfWork::new(PowHash::Sha256d, 0x1d00_ffff);
    /// Bitcoin's default signet.
    pub const SIGNET: ProofOfWork = ProofOfWork::new(PowHash::Sha256d, 0x1e03_77ae);
    /// Bitcoin regtest, and the mock chain (about every second hash meets it).
    pub const REGTEST: ProofOfWork = ProofOfWork::new(PowHash::Sha256d, 0x207f_ffff);
    /// Litecoin mainnet.
    pub const LITECOIN: ProofOfWork = ProofOfWork::new(PowHash::Scrypt, 0x1e0f_ffff);
    /// Litecoin regtest.
    pub const LITECOIN_REGTEST: ProofOfWork = ProofOfWork::new(PowHash::Scrypt, 0x207f_ffff);

    /// The rule of a network whose easiest target (Bitcoin Core's `powLimit`) is `limit_bits`,
    /// compact-encoded: every target a header can encode is at most `powLimit` exactly when it
    /// is at most this. Panics (at compile time for a constant) if `limit_bits` is no target.
    pub const fn new(hash: PowHash, limit_bits: u32) -> ProofOfWork {
        let Some(limit) = target_of_bits(limit_bits) else { panic!("the network's limit must be a valid target") };
        ProofOfWork { hash, limit_bits, limit }
    }

    /// The hash the target applies to.
    pub const fn hash(&self) -> PowHash {
        self.hash
    }

    /// The network's easiest target, compact-encoded.
    pub const fn limit_bits(&self) -> u32 {
        self.limit_bits
    }
}

/// Why a header's proof of work was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PowError {
    /// `bits` encode no usable target: negative, zero or beyond 256 bits.
    #[error("bits {bits:#010x} encode no valid target")]
    InvalidBits {
        /// The header's `bits`.
        bits: u32,
    },
    /// The target is easier than the network allows.
    #[error("bits {bits:#010x} encode a target easier than the network's limit {limit_bits:#010x}")]
    TargetAboveLimit {
        /// The header's `bits`.
        bits: u32,
        /// The network's limit.
        limit_bits: u32,
    },
    /// The header's hash does not meet its own target.
    #[error("the header's hash does not meet its target (bits {bits:#010x})")]
    HashAboveTarget {
        /// The header's `bits`.
        bits: u32,
    },
}

/// The target `bits` encode, big-endian, as Bitcoin Core decodes it (`SetCompact`); `None` for
/// the encodings Core refuses: negative, zero or overflowing 256 bits.
pub const fn target_of_bits(bits: u32) -> Option<[u8; 32]> {
    let size = bits >> 24;
    let mut word = bits & 0x007f_ffff;
    if size <= 3 {
        word >>= 8 * (3 - size);
    }
    let negative = word != 0 && bits & 0x0080_0000 != 0;
    let overflow = word != 0 && (size > 34 || (word > 0xff && size > 33) || (word > 0xffff && size > 32));
    if word == 0 || negative || overflow {
        return None;
    }
    // The word's byte of significance k (0: least) lands at big-endian index 31 - (shift + k);
    // beyond 256 bits it is zero (the overflow rule ensures it).
    let shift = size.saturating_sub(3);
    let mut target = [0u8; 32];
    let mut significance = 0;
    while significance < 3 {
        let position = shift + significance;
        if position < 32 {
            target[31 - position as usize] = (word >> (8 * significance)) as u8;
        }
        significance += 1;
    }
    Some(target)
}

/// Checks the proof of work of the header that `bytes` (a block's consensus encoding) begins
/// with, under `rule`. Cheap next to scanning for double SHA-256; scrypt costs one 128 KiB
/// memory-hard hash.
pub fn check_proof_of_work(bytes: &[u8], rule: &ProofOfWork) -> Result<(), ChainError> {
    let (header, _): (Header, usize) =
        bitcoin::consensus::deserialize_partial(bytes).map_err(|e| ChainError::Malformed(format!("header: {e}")))?;
    let bits = header.bits.to_consensus();
    let target = target_of_bits(bits).ok_or(PowError::InvalidBits { bits })?;
    if target > rule.limit {
        return Err(PowError::TargetAboveLimit { bits, limit_bits: rule.limit_bits }.into());
    }
    let mut hash = match rule.hash {
        PowHash::Sha256d => header.block_hash().to_byte_array(),
        PowHash::Scrypt => scrypt_of(&bitcoin::consensus::serialize(&header)),
    };
    // The hash is a little-endian number; the target is big-endian.
    hash.reverse();
    if hash > target {
        return Err(PowError::HashAboveTarget { bits }.into());
    }
    Ok(())
}

/// Litecoin's proof-of-work hash of a serialized header.
fn scrypt_of(header: &[u8]) -> [u8; 32] {
    // Constants within scrypt's bounds: failing here is a programming error, not bad input.
    let params = scrypt::Params::new(10, 1, 1, 32).expect("N = 1024, r = 1, p = 1 are valid scrypt parameters");
    let mut hash = [0u8; 32];
    scrypt::scrypt(header, header, &params, &mut hash).expect("a 32-byte output is valid");
    hash
}

/// The height a block commits to in its coinbase (BIP34: the first push of the coinbase's
/// script, a minimally encoded number, in a block of version 2 or later), if it commits to one.
/// Bitcoin Core requires it on every network from a height far below any a processor scans
/// (mainnet 227,931; signet and regtest 1), and its miner always writes it.
pub fn coinbase_height(block: &Block) -> Option<u64> {
    if block.header.version < bitcoin::block::Version::TWO {
        return None;
    }
    let script = &block.txdata.first()?.input.first()?.script_sig;
    let height = match script.instructions_minimal().next()?.ok()? {
        // OP_0 is an empty push.
        Instruction::PushBytes(bytes) => bitcoin::script::read_scriptint(bytes.as_bytes()).ok()?,
        // OP_1 to OP_16.
        Instruction::Op(op) => match op.classify(bitcoin::opcodes::ClassifyContext::Legacy) {
            bitcoin::opcodes::Class::PushNum(number) => i64::from(number),
            _ => return None,
        },
    };
    u64::try_from(height).ok()
}

/// A block's id: its block hash, in the hash's internal byte order (not the reversed hex shown
/// by explorers).
pub fn block_id(block: &Block) -> BlockId {
    BlockId(block.block_hash().to_byte_array())
}

pub(super) fn scan_block(
    bytes: &[u8],
    keys: &[ScanKey],
    watched: &BTreeSet<OutputId>,
) -> Result<ScannedBlock, ChainError> {
    let block: Block = bitcoin::consensus::deserialize(bytes).map_err(|e| ChainError::Malformed(e.to_string()))?;
    // Every txid and wtxid, hashed once from the bytes just decoded: the commitment checks and
    // the scan below share them.
    let hashes = block_hashes(bytes)?;
    if hashes.txids.len() != block.txdata.len() {
        return Err(ChainError::Malformed("the transactions hashed are not the transactions decoded".into()));
    }
    if !crate::mutation::active(crate::mutation::Mutation::NoBlockCommitmentCheck) {
        check_commitments(&block, &hashes)?;
    }
    let mut scanned = scan_transactions(&block, keys, |index, transaction| {
        hashes.txids.get(index).copied().unwrap_or_else(|| transaction.compute_txid())
    })?;
    if !watched.is_empty() {
        scanned.spends = spends_in(&block, &hashes.txids, watched);
    }
    Ok(scanned)
}

/// The txid and wtxid of every transaction of a block, in block order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockHashes {
    /// The txids: double SHA-256 of each transaction without marker, flag and witnesses.
    pub txids: Vec<Txid>,
    /// The wtxids: double SHA-256 of each whole transaction (the txid for one without
    /// witnesses). The coinbase's is its real one, not the zeros the witness merkle tree
    /// takes in its place.
    pub wtxids: Vec<Wtxid>,
}

/// Hashes every transaction of the block `bytes` (a block's consensus encoding) from the byte
/// ranges it occupies, without decoding or re-serialising it: the txid over version, inputs,
/// outputs and lock time, the wtxid over the whole transaction. Never panics. Refuses what the
/// bitcoin crate's decoder refuses (truncation, non-minimal CompactSizes, a segwit flag other
/// than 1 or without witnesses, trailing bytes) except its caps on a witness's size, over
/// 4 MB: beyond any valid block, and [`scan_block`] runs that decoder first.
pub fn block_hashes(bytes: &[u8]) -> Result<BlockHashes, ChainError> {
    let mut reader = Reader { bytes, at: 0 };
    reader.skip(80).map_err(|e| ChainError::Malformed(format!("header: {e}")))?;
    let count = reader.count(10).map_err(|e| ChainError::Malformed(format!("transaction count: {e}")))?;
    let mut hashes = BlockHashes { txids: Vec::with_capacity(count), wtxids: Vec::with_capacity(count) };
    for index in 0..count {
        let (txid, wtxid) =
            transaction_hashes(&mut reader).map_err(|e| ChainError::Malformed(format!("transaction {index}: {e}")))?;
        hashes.txids.push(txid);
        hashes.wtxids.push(wtxid);
    }
    if reader.at != bytes.len() {
        return Err(ChainError::Malformed(format!("{} bytes after the last transaction", bytes.len() - reader.at)));
    }
    Ok(hashes)
}

/// Reads the transaction at the reader's position and returns its txid and wtxid.
fn transaction_hashes(reader: &mut Reader) -> Result<(Txid, Wtxid), &'static str> {
    let start = reader.at;
    reader.skip(4)?;
    // BIP144: no inputs then flag 1 marks witnesses; the bitcoin crate supports no other flag.
    let mut inputs = reader.count(41)?;
    let segwit = inputs == 0;
    let body = if segwit {
        if reader.byte()? != 1 {
            return Err("unsupported segwit flag");
        }
        let body = reader.at;
        inputs = reader.count(41)?;
        body
    } else {
        start + 4
    };
    for _ in 0..inputs {
        // Previous output, script, sequence.
        reader.skip(36)?;
        reader.bytes_with_length()?;
        reader.skip(4)?;
    }
    for _ in 0..reader.count(9)? {
        // Value, script.
        reader.skip(8)?;
        reader.bytes_with_length()?;
    }
    let body_end = reader.at;
    if segwit {
        let mut witnessed = false;
        for _ in 0..inputs {
            let items = reader.count(1)?;
            witnessed |= items != 0;
            for _ in 0..items {
                reader.bytes_with_length()?;
            }
        }
        if inputs != 0 && !witnessed {
            return Err("witness flag set but no witnesses present");
        }
    }
    let lock_time = reader.at;
    reader.skip(4)?;
    let whole = reader.bytes.get(start..reader.at).ok_or("truncated")?;
    if !segwit {
        let txid = sha256d(&[whole]);
        return Ok((Txid::from_byte_array(txid), Wtxid::from_byte_array(txid)));
    }
    let part = |range: std::ops::Range<usize>| reader.bytes.get(range).ok_or("truncated");
    let txid = sha256d(&[part(start..start + 4)?, part(body..body_end)?, part(lock_time..reader.at)?]);
    Ok((Txid::from_byte_array(txid), Wtxid::from_byte_array(sha256d(&[whole]))))
}

/// A bounds-checked cursor over a block's bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn skip(&mut self, length: usize) -> Result<(), &'static str> {
        match self.at.checked_add(length) {
            Some(end) if end <= self.bytes.len() => {
                self.at = end;
                Ok(())
            }
            _ => Err("truncated"),
        }
    }

    fn byte(&mut self) -> Result<u8, &'static str> {
        let byte = *self.bytes.get(self.at).ok_or("truncated")?;
        self.at += 1;
        Ok(byte)
    }

    /// A CompactSize, minimally encoded (as the bitcoin crate requires).
    fn compact_size(&mut self) -> Result<u64, &'static str> {
        let (length, minimum) = match self.byte()? {
            0xfd => (2, 0xfd),
            0xfe => (4, 0x1_0000),
            0xff => (8, 0x1_0000_0000),
            small => return Ok(u64::from(small)),
        };
        let mut value = [0u8; 8];
        value[..length]
            .copy_from_slice(self.bytes.get(self.at..).and_then(|rest| rest.get(..length)).ok_or("truncated")?);
        self.at += length;
        let value = u64::from_le_bytes(value);
        if value < minimum {
            return Err("non-minimal varint");
        }
        Ok(value)
    }

    /// A CompactSize counting items of at least `each` bytes, so at most what the bytes left
    /// can hold (bounding every loop and allocation by the input's length).
    fn count(&mut self, each: usize) -> Result<usize, &'static str> {
        let count = self.compact_size()?;
        let left = (self.bytes.len() - self.at) / each;
        usize::try_from(count).ok().filter(|count| *count <= left).ok_or("truncated")
    }

    /// A CompactSize length and that many bytes (a script or a witness item).
    fn bytes_with_length(&mut self) -> Result<(), &'static str> {
        let length = self.compact_size()?;
        self.skip(usize::try_from(length).map_err(|_| "truncated")?)
    }
}

/// Double SHA-256 of the concatenation of `parts`.
fn sha256d(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    sha256_of_digest(hasher.finalize().into())
}

/// SHA-256's initial state (FIPS 180-4, section 5.3.3).
const SHA256_INITIAL: [u32; 8] =
    [0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19];

/// Double SHA-256 of a 64-byte message, a merkle tree's pair of nodes: the compression
/// function over the message and its padding block, then over the digest padded.
fn sha256d_64(message: &[u8; 64]) -> [u8; 32] {
    // 0x80, then the message's length in bits (512) as a big-endian u64 ending the block.
    let mut padding = [0u8; 64];
    padding[0] = 0x80;
    padding[62] = 0x02;
    let mut state = SHA256_INITIAL;
    sha2::compress256(&mut state, &[(*message).into(), padding.into()]);
    sha256_of_digest(digest_of(state))
}

/// SHA-256 of a 32-byte digest (the second hash of double SHA-256): one compression.
fn sha256_of_digest(digest: [u8; 32]) -> [u8; 32] {
    // The digest, 0x80, then its length in bits (256) as a big-endian u64 ending the block.
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(&digest);
    block[32] = 0x80;
    block[62] = 0x01;
    let mut state = SHA256_INITIAL;
    sha2::compress256(&mut state, &[block.into()]);
    digest_of(state)
}

/// The digest a SHA-256 state stands for: its words big-endian.
fn digest_of(state: [u32; 8]) -> [u8; 32] {
    let mut digest = [0u8; 32];
    for (bytes, word) in digest.chunks_exact_mut(4).zip(state) {
        bytes.copy_from_slice(&word.to_be_bytes());
    }
    digest
}

/// Checks that the block's header commits to its transactions (the merkle root of `hashes`'
/// txids) and its coinbase to their witnesses (the witness commitment of the wtxids), by the
/// rules of the bitcoin crate's `Block::check_merkle_root` and
/// `Block::check_witness_commitment`. `hashes` are the block's own, from [`block_hashes`].
pub fn check_commitments(block: &Block, hashes: &BlockHashes) -> Result<(), ChainError> {
    if hashes.txids.len() != block.txdata.len() || hashes.wtxids.len() != block.txdata.len() {
        return Err(ChainError::Malformed("the transactions hashed are not the transactions decoded".into()));
    }
    let root = tree_root(hashes.txids.iter().map(|txid| txid.to_byte_array()).collect());
    if root != Some(block.header.merkle_root.to_byte_array()) {
        return Err(ChainError::Inconsistent("merkle root does not commit to the transactions".into()));
    }
    if !witness_commitment_holds(block, &hashes.wtxids) {
        return Err(ChainError::Inconsistent("witness commitment does not commit to the witnesses".into()));
    }
    Ok(())
}

/// `Block::check_witness_commitment`, over known wtxids.
fn witness_commitment_holds(block: &Block, wtxids: &[Wtxid]) -> bool {
    // The commitment's output script: OP_RETURN, a 36-byte push, the commitment header.
    const MAGIC: [u8; 6] = [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
    // Optional in a block without witnesses.
    if block.txdata.iter().all(|transaction| transaction.input.iter().all(|input| input.witness.is_empty())) {
        return true;
    }
    let Some(coinbase) = block.txdata.first().filter(|coinbase| coinbase.is_coinbase()) else {
        return false;
    };
    // The last output that starts with the magic bytes carries it.
    let Some(commitment) = coinbase.output.iter().rev().find_map(|output| {
        let script = output.script_pubkey.as_bytes();
        (script.len() >= 38 && script[..6] == MAGIC).then(|| &script[6..38])
    }) else {
        return false;
    };
    // The witness reserved value: the coinbase input's witness, exactly one 32-byte item.
    let Some(reserved) = coinbase.input.first().and_then(|input| {
        let witness = &input.witness;
        witness.nth(0).filter(|value| witness.len() == 1 && value.len() == 32)
    }) else {
        return false;
    };
    let leaves = std::iter::once([0; 32]).chain(wtxids.iter().skip(1).map(|wtxid| wtxid.to_byte_array()));
    let Some(root) = tree_root(leaves.collect()) else {
        return false;
    };
    sha256d(&[&root, reserved]) == *commitment
}

/// The merkle root of `leaves` as Bitcoin computes it (`bitcoin::merkle_tree::calculate_root`):
/// each level pairs its nodes, the last with itself when they are odd, and hashes each pair
/// with double SHA-256; `None` without leaves.
fn tree_root(mut level: Vec<[u8; 32]>) -> Option<[u8; 32]> {
    while level.len() > 1 {
        let pairs = level.len().div_ceil(2);
        for index in 0..pairs {
            let left = level[2 * index];
            let right = level.get(2 * index + 1).copied().unwrap_or(left);
            let mut pair = [0u8; 64];
            pair[..32].copy_from_slice(&left);
            pair[32..].copy_from_slice(&right);
            level[index] = sha256d_64(&pair);
        }
        level.truncate(pairs);
    }
    level.first().copied()
}

/// Which `watched` outputs the block's transactions spend, `txids` being theirs.
fn spends_in(block: &Block, txids: &[Txid], watched: &BTreeSet<OutputId>) -> Vec<Spend> {
    let mut spends = Vec::new();
    for (transaction, txid) in block.txdata.iter().zip(txids).skip(1) {
        for input in &transaction.input {
            let id = output_id(&input.previous_output);
            if watched.contains(&id) {
                spends.push(Spend { output: id, transaction: txid.to_byte_array().to_vec() });
            }
        }
    }
    spends
}

/// Scans an already parsed block whose merkle root the caller has checked (or, in benchmarks,
/// deliberately not).
pub fn scan_parsed_block(block: &Block, keys: &[ScanKey]) -> Result<ScannedBlock, ChainError> {
    scan_transactions(block, keys, |_, transaction| transaction.compute_txid())
}

/// [`scan_parsed_block`], `txid_of` giving the txid of the block's transaction at an index.
fn scan_transactions(
    block: &Block,
    keys: &[ScanKey],
    txid_of: impl Fn(usize, &Transaction) -> Txid,
) -> Result<ScannedBlock, ChainError> {
    let mut scripts = Vec::with_capacity(2 * keys.len());
    for key in keys {
        match key.key {
            ChainPublicKey::Bitcoin { internal_key } => {
                for kind in [OutputKind::External, OutputKind::Change] {
                    scripts.push((script_of(&internal_key, kind)?, key.session, kind));
                }
            }
            ChainPublicKey::Monero { .. } => {
                return Err(ChainError::UnsupportedKey("a Monero key cannot receive Bitcoin".into()))
            }
        }
    }

    let mut outputs = Vec::new();
    for (position, transaction) in block.txdata.iter().enumerate() {
        let mut instruction = None;
        let mut instruction_read = false;
        let mut txid = None;
        for (index, output) in transaction.output.iter().enumerate() {
            let Some((_, session, kind)) = scripts.iter().find(|(script, _, _)| *script == output.script_pubkey) else {
                continue;
            };
            if *kind == OutputKind::External && !instruction_read {
                instruction = transaction_instruction(transaction);
                instruction_read = true;
            }
            let txid = *txid.get_or_insert_with(|| txid_of(position, transaction));
            outputs.push(ReceivedOutput {
                id: output_id(&OutPoint { txid, vout: index as u32 }),
                amount: Amount(output.value.to_sat()),
                instruction: if *kind == OutputKind::External { instruction.clone() } else { None },
                session: *session,
                kind: *kind,
                spend_data: vec![],
            });
        }
    }
    Ok(ScannedBlock {
        id: block_id(block),
        parent: BlockId(block.header.prev_blockhash.to_byte_array()),
        height: coinbase_height(block).map(BlockHeight),
        outputs,
        spends: vec![],
        completions: vec![],
        own_transactions: vec![],
    })
}

#[cfg(test)]
mod tests {
    use super::super::{scan_block, ScanKey};
    use crate::ids::{ExternalChain, SessionId};
    use crate::messages::ChainPublicKey;
    use proptest::prelude::*;

    fn key() -> ScanKey {
        // The x coordinate of secp256k1's generator: a valid x-only key.
        let internal_key = hex_literal_generator();
        ScanKey { session: SessionId(1), key: ChainPublicKey::Bitcoin { internal_key } }
    }

    fn hex_literal_generator() -> [u8; 32] {
        let mut key = [0u8; 32];
        hex::decode_to_slice("79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798", &mut key).unwrap();
        key
    }

    #[test]
    fn change_root_is_the_documented_hash() {
        use sha2::Digest;
        let hash: [u8; 32] = sha2::Sha256::digest(b"threshold-custody processor: change").into();
        assert_eq!(hash, super::CHANGE_ROOT);
    }

    #[test]
    fn bits_decode_as_bitcoin_core_decodes_them() {
        use super::target_of_bits;
        let mut bitcoin_limit = [0u8; 32];
        bitcoin_limit[4..6].copy_from_slice(&[0xff, 0xff]);
        assert_eq!(target_of_bits(0x1d00_ffff), Some(bitcoin_limit));
        let mut one_at_the_top = [0u8; 32];
        one_at_the_top[0] = 1;
        assert_eq!(target_of_bits(0x2200_0001), Some(one_at_the_top));
        let mut small = [0u8; 32];
        small[31] = 0x12;
        assert_eq!(target_of_bits(0x0112_3456), Some(small), "size 1 keeps the top byte");
        // Negative, zero (also once shifted) and beyond 256 bits are no targets.
        for bits in [0x1d80_ffff, 0x1d00_0000, 0x0100_ffff, 0x2300_0001, 0x2200_0100, 0x2101_0000, 0xff7f_ffff] {
            assert_eq!(target_of_bits(bits), None, "{bits:#x}");
        }
    }

    #[test]
    fn litecoin_proves_its_work_with_scrypt() {
        use super::{check_proof_of_work, PowError, PowHash, ProofOfWork};
        use bitcoin::hashes::Hash;
        // Litecoin's mainnet genesis header.
        let merkle_root: bitcoin::TxMerkleNode =
            "97ddfbbae6be97fd6cdf3e7ca13232a3afff2353e29badfab7f73011edd4ced9".parse().unwrap();
        let header = bitcoin::block::Header {
            version: bitcoin::block::Version::ONE,
            prev_blockhash: bitcoin::BlockHash::all_zeros(),
            merkle_root,
            time: 1_317_972_665,
            bits: bitcoin::CompactTarget::from_consensus(0x1e0f_fff0),
            nonce: 2_084_524_493,
        };
        assert_eq!(header.block_hash().to_string(), "12a765e31ffd4059bada1e25190f6e98c99d9714d334efa41a195a7e7e04bfe2");
        let bytes = bitcoin::consensus::serialize(&header);
        // Its scrypt hash meets a target met by one hash in 2^20; its block hash does not.
        assert_eq!(check_proof_of_work(&bytes, &ProofOfWork::LITECOIN), Ok(()));
        let sha256d = ProofOfWork::new(PowHash::Sha256d, ProofOfWork::LITECOIN.limit_bits());
        assert_eq!(check_proof_of_work(&bytes, &sha256d), Err(PowError::HashAboveTarget { bits: 0x1e0f_fff0 }.into()));
        assert!(check_proof_of_work(&bytes[..79], &ProofOfWork::LITECOIN).is_err(), "a short header is refused");
    }

    proptest! {
        #[test]
        fn bits_decode_as_the_bitcoin_crate_decodes_them(bits in 0x0400_0000u32..0x2100_0000) {
            // Sizes 4 to 32, where the bitcoin crate decodes as Core does (below, it ignores the
            // sign bit; above, Core refuses what overflows).
            let theirs = bitcoin::Target::from_compact(bitcoin::CompactTarget::from_consensus(bits)).to_be_bytes();
            match super::target_of_bits(bits) {
                Some(ours) => prop_assert_eq!(ours, theirs),
                None => prop_assert_eq!(theirs, [0; 32]),
            }
        }

        #[test]
        fn compact_sizes_decode_as_the_bitcoin_crate_decodes_them(
            prefix in prop_oneof![Just(0xfdu8), Just(0xfe), Just(0xff), any::<u8>()],
            value in prop_oneof![
                any::<u64>(),
                prop::sample::select(vec![0xfc, 0xfd, 0xffff, 0x1_0000, 0xffff_ffff, 0x1_0000_0000]).prop_flat_map(|edge: u64| edge - 1..=edge + 1),
            ],
            length in 0usize..=9,
        ) {
            let mut bytes = vec![prefix];
            bytes.extend(value.to_le_bytes());
            bytes.truncate(length);
            let theirs = bitcoin::consensus::deserialize_partial::<bitcoin::VarInt>(&bytes);
            let mut reader = super::Reader { bytes: &bytes, at: 0 };
            match (reader.compact_size(), theirs) {
                (Ok(ours), Ok((theirs, read))) => {
                    prop_assert_eq!(ours, theirs.0);
                    prop_assert_eq!(reader.at, read);
                }
                (ours, theirs) => prop_assert!(ours.is_err() && theirs.is_err(), "{:?} {:?}", ours, theirs),
            }
        }

        #[test]
        fn merkle_roots_are_the_bitcoin_crates(leaves in proptest::collection::vec(any::<[u8; 32]>(), 0..70)) {
            use bitcoin::hashes::Hash;
            let theirs = bitcoin::merkle_tree::calculate_root(leaves.iter().map(|leaf| bitcoin::Txid::from_byte_array(*leaf)));
            prop_assert_eq!(super::tree_root(leaves), theirs.map(|root| root.to_byte_array()));
        }

        #[test]
        fn double_sha256_is_double_sha256(message in proptest::collection::vec(any::<u8>(), 0..300)) {
            use sha2::Digest;
            let expected: [u8; 32] = sha2::Sha256::digest(sha2::Sha256::digest(&message)).into();
            let (first, rest) = message.split_at(message.len() / 3);
            prop_assert_eq!(super::sha256d(&[first, rest]), expected);
            if let Ok(message) = <[u8; 64]>::try_from(&message[..]) {
                prop_assert_eq!(super::sha256d_64(&message), expected);
            }
            let mut sixty_four = [0u8; 64];
            let copied = message.len().min(64);
            sixty_four[..copied].copy_from_slice(&message[..copied]);
            let expected: [u8; 32] = sha2::Sha256::digest(sha2::Sha256::digest(sixty_four)).into();
            prop_assert_eq!(super::sha256d_64(&sixty_four), expected);
        }

        #[test]
        fn garbage_blocks_are_errors_not_panics(bytes in proptest::collection::vec(any::<u8>(), 0 .. 2048)) {
            prop_assert!(scan_block(ExternalChain::Bitcoin, &bytes, &[key()]).is_err());
        }

        #[test]
        fn mutated_blocks_are_errors_or_only_a_different_header(position: usize, xor in 1u8 ..) {
            let mut chain = mock_chains::bitcoin::MockBitcoin::new(3);
            let ours = bitcoin::key::XOnlyPublicKey::from_slice(&hex_literal_generator()).unwrap();
            chain.set_miner_script(mock_chains::bitcoin::p2tr_script(ours));
            chain.mine();
            let original = chain.block_bytes(1).unwrap();
            let expected = scan_block(ExternalChain::Bitcoin, &original, &[key()]).unwrap();
            prop_assert_eq!(expected.outputs.len(), 1);
            let mut bytes = original.clone();
            let at = position % bytes.len();
            bytes[at] ^= xor;
            // Transactions and witnesses are committed to; only the header can change unnoticed
            // here (its proof of work is checked apart, `check_proof_of_work`, before scanning).
            if let Ok(scanned) = scan_block(ExternalChain::Bitcoin, &bytes, &[key()]) {
                prop_assert!(at < 80, "byte {} of the transactions changed and scanning accepted it", at);
                prop_assert_eq!(scanned.outputs, expected.outputs);
            }
        }
    }
}
