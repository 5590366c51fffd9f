//! Bitcoin blocks are hashed once, from their own bytes: every txid and wtxid equals the
//! bitcoin crate's (`compute_txid`, `compute_wtxid`), the commitment checks accept exactly the
//! blocks its `check_merkle_root` and `check_witness_commitment` accept, and `scan_block`
//! returns what decoding, those two checks and `scan_parsed_block` return. On the real mainnet
//! blocks in the shared test data (skipped with a message when absent), on blocks built here,
//! and on both mutated: flipped, overwritten, inserted and removed bytes, and truncations.

use bitcoin::blockdata::opcodes::all::OP_RETURN;
use bitcoin::hashes::Hash;
use bitcoin::script::{Builder, PushBytesBuf};
use bitcoin::{absolute, transaction, Amount, Block, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness};
use processor_core::chain::bitcoin::{block_hashes, check_commitments, group_script, output_id, scan_parsed_block};
use processor_core::chain::instruction::encode_instruction;
use processor_core::chain::{scan_block_watching, ChainError, ScanKey, ScannedBlock, Spend, Watched};
use processor_core::ids::{ExternalChain, OutputId, SessionId};
use processor_core::messages::{ChainPublicKey, InInstruction};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::OnceLock;

const MERKLE: &str = "merkle root does not commit to the transactions";
const WITNESS: &str = "witness commitment does not commit to the witnesses";

/// The x coordinate of secp256k1's generator: a valid x-only key.
fn internal_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    hex::decode_to_slice("79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798", &mut key).unwrap();
    key
}

fn key() -> ScanKey {
    ScanKey { session: SessionId(1), key: ChainPublicKey::Bitcoin { internal_key: internal_key() } }
}

fn block413567() -> Option<&'static [u8]> {
    static BLOCK: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    shared_block(&BLOCK, concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/block413567.raw"))
}

fn block866342() -> Option<&'static [u8]> {
    static BLOCK: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    shared_block(&BLOCK, concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/block866342.raw"))
}

/// The file at `path`, read once per process (the proptests ask for it every case).
fn shared_block(read: &'static OnceLock<Option<Vec<u8>>>, path: &str) -> Option<&'static [u8]> {
    read.get_or_init(|| {
        let bytes = std::fs::read(path).ok();
        if bytes.is_none() {
            eprintln!("{path} is absent: skipping the tests on it");
        }
        bytes
    })
    .as_deref()
}

/// What `scan_block` returned before blocks were hashed from their bytes: decode, the bitcoin
/// crate's two checks, `scan_parsed_block`, and the watched outputs spent, each spender's
/// txid computed by the bitcoin crate.
fn scan_as_before(bytes: &[u8], watched: &BTreeSet<OutputId>) -> Result<ScannedBlock, ChainError> {
    let block: Block = bitcoin::consensus::deserialize(bytes).map_err(|e| ChainError::Malformed(e.to_string()))?;
    if !block.check_merkle_root() {
        return Err(ChainError::Inconsistent(MERKLE.into()));
    }
    if !block.check_witness_commitment() {
        return Err(ChainError::Inconsistent(WITNESS.into()));
    }
    let mut scanned = scan_parsed_block(&block, &[key()])?;
    for transaction in block.txdata.iter().skip(1) {
        for input in &transaction.input {
            let id = output_id(&input.previous_output);
            if watched.contains(&id) {
                scanned
                    .spends
                    .push(Spend { output: id, transaction: transaction.compute_txid().to_byte_array().to_vec() });
            }
        }
    }
    Ok(scanned)
}

fn scan(bytes: &[u8], watched: &BTreeSet<OutputId>) -> Result<ScannedBlock, ChainError> {
    let watched = Watched { outputs: watched.clone(), ..Watched::default() };
    scan_block_watching(ExternalChain::Bitcoin, bytes, &[key()], &watched)
}

/// Everything this file claims of `bytes`: the hashes are the bitcoin crate's whenever it
/// decodes them (and refused when it does not), the checks agree with its checks, and scanning
/// returns what it returned before. Returns whether the block was accepted.
fn agree(bytes: &[u8], watched: &BTreeSet<OutputId>) -> Result<bool, TestCaseError> {
    let hashes = block_hashes(bytes);
    match bitcoin::consensus::deserialize::<Block>(bytes) {
        Err(_) => prop_assert!(hashes.is_err(), "hashed a block the bitcoin crate does not decode"),
        Ok(block) => {
            let hashes = hashes.map_err(|e| TestCaseError::fail(format!("decoded but not hashed: {e}")))?;
            let txids: Vec<_> = block.txdata.iter().map(Transaction::compute_txid).collect();
            let wtxids: Vec<_> = block.txdata.iter().map(Transaction::compute_wtxid).collect();
            prop_assert_eq!(&hashes.txids, &txids);
            prop_assert_eq!(&hashes.wtxids, &wtxids);
            let expected = if !block.check_merkle_root() {
                Err(ChainError::Inconsistent(MERKLE.into()))
            } else if !block.check_witness_commitment() {
                Err(ChainError::Inconsistent(WITNESS.into()))
            } else {
                Ok(())
            };
            prop_assert_eq!(check_commitments(&block, &hashes), expected);
        }
    }
    let scanned = scan(bytes, watched);
    prop_assert_eq!(&scanned, &scan_as_before(bytes, watched));
    Ok(scanned.is_ok())
}

/// The transactions of a block built here.
#[derive(Clone, Debug)]
struct Shape {
    /// Transactions without witnesses.
    legacy: usize,
    /// Transactions with witnesses (which makes the coinbase commit to them).
    segwit: usize,
    /// Whether a transaction without inputs is included (serialized with marker and flag).
    without_inputs: bool,
    /// The coinbase's witness, when it commits: 0, the reserved value alone (valid); 1, the
    /// reserved value and another item; 2, a 33-byte reserved value.
    reserved: u8,
    /// Outputs beside the commitment that look like one: 0, none; 1, a wrong one before it
    /// (ignored: the last counts); 2, a wrong one after it (refused); 3, one of 37 bytes after
    /// it (too short to count).
    decoy: u8,
}

fn shapes() -> impl Strategy<Value = Shape> {
    (
        0usize..4,
        0usize..4,
        any::<bool>(),
        prop_oneof![4 => Just(0u8), 1 => 1u8..3],
        prop_oneof![2 => Just(0u8), 1 => 1u8..4],
    )
        .prop_map(|(legacy, segwit, without_inputs, reserved, decoy)| Shape {
            legacy,
            segwit,
            without_inputs,
            reserved,
            decoy,
        })
}

/// A valid block of this shape, of a legacy, a segwit and an input-less transaction.
const FULL: Shape = Shape { legacy: 2, segwit: 2, without_inputs: true, reserved: 0, decoy: 0 };

/// A block of `shape` paying the group from its coinbase and from every other transaction
/// (with an InInstruction), and the outputs its transactions spend. Valid unless `shape`'s
/// `reserved` or `decoy` says otherwise.
fn small_block(shape: &Shape) -> (Vec<u8>, BTreeSet<OutputId>) {
    let group = group_script(&internal_key()).unwrap();
    let instruction = PushBytesBuf::try_from(encode_instruction(&InInstruction { account: [7; 32] })).unwrap();
    let op_return = Builder::new().push_opcode(OP_RETURN).push_slice(instruction).into_script();
    let other = ScriptBuf::new_op_return([1, 2, 3]);
    let witnessed = shape.segwit > 0;
    let mut coinbase_input = TxIn {
        previous_output: OutPoint::null(),
        script_sig: Builder::new().push_int(700_000).push_slice([9; 4]).into_script(),
        sequence: Sequence::MAX,
        witness: Witness::new(),
    };
    if witnessed {
        coinbase_input.witness = match shape.reserved {
            0 => Witness::from_slice(&[vec![0u8; 32]]),
            1 => Witness::from_slice(&[vec![0u8; 32], vec![1]]),
            _ => Witness::from_slice(&[vec![0u8; 33]]),
        };
    }
    let coinbase = Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![coinbase_input],
        output: vec![TxOut { value: Amount::from_sat(50_000), script_pubkey: group.clone() }],
    };
    let mut spent = BTreeSet::new();
    let mut txdata = vec![coinbase];
    for index in 0..shape.legacy + shape.segwit {
        let previous_output =
            OutPoint { txid: bitcoin::Txid::from_byte_array([index as u8 + 1; 32]), vout: index as u32 };
        spent.insert(output_id(&previous_output));
        let segwit = index >= shape.legacy;
        txdata.push(Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::from_consensus(index as u32),
            input: vec![TxIn {
                previous_output,
                script_sig: if segwit { ScriptBuf::new() } else { Builder::new().push_slice([3; 71]).into_script() },
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                // An empty item counts as a witness.
                witness: if segwit { Witness::from_slice(&[vec![], vec![index as u8; 64]]) } else { Witness::new() },
            }],
            output: vec![
                TxOut { value: Amount::ZERO, script_pubkey: op_return.clone() },
                TxOut { value: Amount::from_sat(1_000 + index as u64), script_pubkey: group.clone() },
                TxOut { value: Amount::from_sat(5), script_pubkey: other.clone() },
            ],
        });
    }
    if shape.without_inputs {
        txdata.push(Transaction {
            version: transaction::Version::ONE,
            lock_time: absolute::LockTime::ZERO,
            input: vec![],
            output: vec![TxOut { value: Amount::from_sat(600), script_pubkey: group.clone() }],
        });
    }
    let header = bitcoin::block::Header {
        version: bitcoin::block::Version::from_consensus(0x2000_0000),
        prev_blockhash: bitcoin::BlockHash::from_byte_array([5; 32]),
        merkle_root: bitcoin::TxMerkleNode::all_zeros(),
        time: 1_700_000_000,
        bits: bitcoin::CompactTarget::from_consensus(0x207f_ffff),
        nonce: 0,
    };
    let mut block = Block { header, txdata };
    if witnessed {
        let root = block.witness_root().unwrap();
        let commitment = Block::compute_witness_commitment(&root, &[0; 32]);
        let magic = [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
        let script =
            |body: &[u8]| TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::from_bytes([&magic, body].concat()) };
        let outputs = &mut block.txdata[0].output;
        match shape.decoy {
            1 => outputs.extend([script(&[0xd0; 32]), script(&commitment.to_byte_array())]),
            2 => outputs.extend([script(&commitment.to_byte_array()), script(&[0xd0; 32])]),
            3 => outputs.extend([script(&commitment.to_byte_array()), script(&[0xd0; 31])]),
            _ => outputs.push(script(&commitment.to_byte_array())),
        }
    }
    block.header.merkle_root = block.compute_merkle_root().unwrap();
    let valid = !witnessed || (shape.reserved == 0 && shape.decoy != 2);
    assert!(block.check_merkle_root());
    assert_eq!(block.check_witness_commitment(), valid);
    (bitcoin::consensus::serialize(&block), spent)
}

/// The outputs every `every`th transaction of `block` spends first, and one nobody spends.
fn some_spent(bytes: &[u8], every: usize) -> BTreeSet<OutputId> {
    let block: Block = bitcoin::consensus::deserialize(bytes).unwrap();
    let mut watched: BTreeSet<_> = block
        .txdata
        .iter()
        .skip(1)
        .step_by(every)
        .map(|transaction| output_id(&transaction.input[0].previous_output))
        .collect();
    watched.insert(output_id(&OutPoint { txid: bitcoin::Txid::from_byte_array([0xee; 32]), vout: 3 }));
    watched
}

/// Where each transaction of the block `bytes` lies, and (for one with witnesses) where its
/// witnesses do, from the bitcoin crate's sizes.
fn layout(bytes: &[u8]) -> Vec<(Range<usize>, Option<Range<usize>>)> {
    let block: Block = bitcoin::consensus::deserialize(bytes).unwrap();
    let mut start = 80 + bitcoin::VarInt::from(block.txdata.len()).size();
    let mut layout = Vec::new();
    for transaction in &block.txdata {
        let (base, end) = (transaction.base_size(), start + transaction.total_size());
        // Version, marker and flag, inputs and outputs (base less version and lock time),
        // witnesses, lock time.
        let witnesses = (end - start != base).then(|| start + 6 + base - 8..end - 4);
        layout.push((start..end, witnesses));
        start = end;
    }
    assert_eq!(start, bytes.len());
    layout
}

/// The block with the byte at `at` changed.
fn altered(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut bytes = bytes.to_vec();
    bytes[at] ^= 0x01;
    bytes
}

/// A witness byte changed is refused by the witness check, a byte of a transaction outside
/// its witnesses by the merkle check: by the bitcoin crate's checks and by `scan_block` alike.
fn altered_bytes_are_refused(bytes: &[u8]) {
    let block: Block = bitcoin::consensus::deserialize(bytes).unwrap();
    let layout = layout(bytes);
    let none = BTreeSet::new();
    // A lock time, in a transaction's txid.
    let (last, _) = layout.last().unwrap().clone();
    let refused = altered(bytes, last.end - 1);
    assert_eq!(scan(&refused, &none), Err(ChainError::Inconsistent(MERKLE.into())));
    assert_eq!(agree(&refused, &none).map_err(|e| e.to_string()), Ok(false));
    // The last byte of a transaction's witnesses, in its last item (not a length: that item is
    // not empty).
    let witnessed = block.txdata.iter().zip(&layout).skip(1).find_map(|(transaction, (_, witnesses))| {
        let last_item = transaction.input.last()?.witness.last()?;
        witnesses.clone().filter(|_| !last_item.is_empty())
    });
    if let Some(witnesses) = witnessed {
        let refused = altered(bytes, witnesses.end - 1);
        let block: Block = bitcoin::consensus::deserialize(&refused).unwrap();
        assert!(block.check_merkle_root() && !block.check_witness_commitment());
        assert_eq!(scan(&refused, &none), Err(ChainError::Inconsistent(WITNESS.into())));
        assert_eq!(agree(&refused, &none).map_err(|e| e.to_string()), Ok(false));
    } else {
        assert!(block.txdata.iter().all(|transaction| transaction.input.iter().all(|input| input.witness.is_empty())));
    }
}

#[test]
fn real_blocks_hash_as_the_bitcoin_crate_hashes_them() {
    for bytes in [block413567(), block866342()].into_iter().flatten() {
        let block: Block = bitcoin::consensus::deserialize(bytes).unwrap();
        let hashes = block_hashes(bytes).unwrap();
        assert_eq!(hashes.txids.len(), block.txdata.len());
        for ((transaction, txid), wtxid) in block.txdata.iter().zip(&hashes.txids).zip(&hashes.wtxids) {
            assert_eq!(*txid, transaction.compute_txid());
            assert_eq!(*wtxid, transaction.compute_wtxid());
        }
        assert!(block.check_merkle_root() && block.check_witness_commitment());
        assert_eq!(check_commitments(&block, &hashes), Ok(()));
        let watched = some_spent(bytes, 97);
        let scanned = scan(bytes, &watched).unwrap();
        assert_eq!(scanned.spends.len(), watched.len() - 1, "every watched output but one is spent");
        assert_eq!(Ok(scanned), scan_as_before(bytes, &watched));
    }
    if let Some(bytes) = block866342() {
        let block: Block = bitcoin::consensus::deserialize(bytes).unwrap();
        let hashes = block_hashes(bytes).unwrap();
        assert!(
            hashes.txids.iter().zip(&hashes.wtxids).filter(|(t, w)| t.to_byte_array() != w.to_byte_array()).count()
                > 4_000
        );
        assert_eq!(scan(bytes, &BTreeSet::new()).unwrap().height.map(|h| h.0), Some(866_342));
        assert_eq!(block.txdata.len(), 4_864);
    }
}

#[test]
fn real_blocks_altered_are_refused_by_the_right_check() {
    for bytes in [block413567(), block866342()].into_iter().flatten() {
        altered_bytes_are_refused(bytes);
    }
}

#[test]
fn small_blocks_altered_are_refused_by_the_right_check() {
    for shape in [
        FULL,
        Shape { legacy: 1, segwit: 0, without_inputs: false, ..FULL },
        Shape { legacy: 0, segwit: 3, without_inputs: false, decoy: 1, ..FULL },
    ] {
        let (bytes, _) = small_block(&shape);
        altered_bytes_are_refused(&bytes);
    }
}

/// Where a block's structure lies: its CompactSizes, each transaction's version, marker and
/// flag, outputs' values, inputs' previous output indices and sequences, and lock times
/// (found from the bitcoin crate's decoding).
fn structure(bytes: &[u8]) -> Vec<usize> {
    let size = |n: usize| bitcoin::VarInt::from(n).size();
    let block: Block = bitcoin::consensus::deserialize(bytes).unwrap();
    let mut offsets = vec![80];
    let mut at = 80 + size(block.txdata.len());
    for transaction in &block.txdata {
        let segwit = transaction.total_size() != transaction.base_size();
        offsets.push(at);
        at += 4;
        if segwit {
            offsets.extend([at, at + 1]);
            at += 2;
        }
        offsets.push(at);
        at += size(transaction.input.len());
        for input in &transaction.input {
            offsets.push(at + 32);
            at += 36;
            offsets.push(at);
            at += size(input.script_sig.len()) + input.script_sig.len();
            offsets.push(at);
            at += 4;
        }
        offsets.push(at);
        at += size(transaction.output.len());
        for output in &transaction.output {
            offsets.push(at);
            at += 8;
            offsets.push(at);
            at += size(output.script_pubkey.len()) + output.script_pubkey.len();
        }
        if segwit {
            for input in &transaction.input {
                offsets.push(at);
                at += size(input.witness.len());
                for item in input.witness.iter() {
                    offsets.push(at);
                    at += size(item.len()) + item.len();
                }
            }
        }
        offsets.push(at);
        at += 4;
    }
    assert_eq!(at, bytes.len());
    offsets
}

/// One change to a block's bytes.
#[derive(Clone, Debug)]
enum Edit {
    Xor(usize, u8),
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
    /// A one-byte CompactSize `n` rewritten as the non-minimal `fd n 00`.
    Widen(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    // Bytes that mean the most to a CompactSize or a segwit marker and flag.
    let special = prop::sample::select(vec![0x00, 0x01, 0x02, 0xfc, 0xfd, 0xfe, 0xff]);
    prop_oneof![
        3 => (any::<usize>(), 1u8..).prop_map(|(at, xor)| Edit::Xor(at, xor)),
        3 => (any::<usize>(), special.clone()).prop_map(|(at, byte)| Edit::Set(at, byte)),
        1 => (any::<usize>(), special).prop_map(|(at, byte)| Edit::Insert(at, byte)),
        1 => any::<usize>().prop_map(Edit::Remove),
        1 => any::<usize>().prop_map(Edit::Truncate),
        1 => any::<usize>().prop_map(Edit::Widen),
    ]
}

/// Where an edit lands: anywhere; near the start or the end (a large block's bytes are mostly
/// scripts and witnesses); or on the block's structure ([`structure`]).
#[derive(Clone, Copy, Debug)]
enum Area {
    Anywhere,
    Start,
    End,
    Structure,
}

fn areas() -> impl Strategy<Value = Area> {
    prop_oneof![1 => Just(Area::Anywhere), 1 => Just(Area::Start), 1 => Just(Area::End), 3 => Just(Area::Structure)]
}

/// `edits` applied to the valid block `bytes`, in `area`.
fn edited(bytes: &[u8], area: Area, edits: &[Edit]) -> Vec<u8> {
    let structure = structure(bytes);
    let mut bytes = bytes.to_vec();
    for edit in edits {
        let len = bytes.len();
        let at = |position: usize, room: usize| match area {
            Area::Anywhere => position % room,
            Area::Start => position % room.min(400),
            Area::End => room - 1 - position % room.min(400),
            Area::Structure => structure[position % structure.len()].min(room - 1),
        };
        match *edit {
            Edit::Xor(position, xor) if len > 0 => bytes[at(position, len)] ^= xor,
            Edit::Set(position, byte) if len > 0 => bytes[at(position, len)] = byte,
            Edit::Insert(position, byte) => bytes.insert(at(position, len + 1), byte),
            Edit::Remove(position) if len > 0 => {
                bytes.remove(at(position, len));
            }
            Edit::Truncate(position) => bytes.truncate(at(position, len + 1)),
            Edit::Widen(position) if len > 0 => {
                let at = at(position, len);
                if bytes[at] < 0xfd {
                    bytes.splice(at..=at, [0xfd, bytes[at], 0]);
                }
            }
            _ => {}
        }
    }
    bytes
}

#[test]
fn every_edit_of_the_structure_agrees() {
    // Each edit once on each structural byte of a block with every kind of transaction (and a
    // script of 252 bytes, the largest one-byte CompactSize).
    let (bytes, spent) = small_block(&FULL);
    let mut block: Block = bitcoin::consensus::deserialize(&bytes).unwrap();
    block.txdata[1].input[0].script_sig = ScriptBuf::from_bytes(vec![0x51; 0xfc]);
    block.header.merkle_root = block.compute_merkle_root().unwrap();
    for bytes in [bytes, bitcoin::consensus::serialize(&block)] {
        for position in 0..structure(&bytes).len() {
            let specials = [0x00, 0x01, 0x02, 0xfc, 0xfd, 0xfe, 0xff];
            let edits =
                specials.iter().flat_map(|byte| [Edit::Set(position, *byte), Edit::Insert(position, *byte)]).chain([
                    Edit::Xor(position, 0x80),
                    Edit::Remove(position),
                    Edit::Truncate(position),
                    Edit::Widen(position),
                ]);
            for edit in edits {
                let edited = edited(&bytes, Area::Structure, std::slice::from_ref(&edit));
                agree(&edited, &spent).unwrap_or_else(|e| panic!("{edit:?} at structural byte {position}: {e}"));
            }
        }
    }
}

#[test]
fn a_coinbase_witness_needs_a_commitment() {
    // A block whose only witness is the coinbase's (which changes no txid).
    let (bytes, spent) = small_block(&Shape { legacy: 2, segwit: 0, ..FULL });
    let mut block: Block = bitcoin::consensus::deserialize(&bytes).unwrap();
    block.txdata[0].input[0].witness = Witness::from_slice(&[[0u8; 32]]);
    let bytes = bitcoin::consensus::serialize(&block);
    assert_eq!(agree(&bytes, &spent).map_err(|e| e.to_string()), Ok(false));
    assert_eq!(scan(&bytes, &spent), Err(ChainError::Inconsistent(WITNESS.into())));
}

#[test]
fn a_segwit_flag_needs_a_witness() {
    // The legacy transaction (the block's second) re-serialized with marker and flag, and then
    // an empty witness for its one input (refused) or a witness of one empty item (decoded; the
    // block's coinbase does not commit to it).
    let (bytes, spent) = small_block(&Shape { legacy: 1, segwit: 0, without_inputs: false, ..FULL });
    let layout = layout(&bytes);
    let (transaction, _) = layout[1].clone();
    for (witness, decodes) in [(&[0u8][..], false), (&[1, 0][..], true)] {
        let mut flagged = bytes.clone();
        flagged.splice(transaction.end - 4..transaction.end - 4, witness.iter().copied());
        flagged.splice(transaction.start + 4..transaction.start + 4, [0, 1]);
        assert_eq!(bitcoin::consensus::deserialize::<Block>(&flagged).is_ok(), decodes);
        assert_eq!(agree(&flagged, &spent).map_err(|e| e.to_string()), Ok(false));
        if decodes {
            assert_eq!(scan(&flagged, &spent), Err(ChainError::Inconsistent(WITNESS.into())));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn small_blocks_hash_and_check_as_the_bitcoin_crate_does(shape in shapes()) {
        let (bytes, spent) = small_block(&shape);
        let valid = shape.segwit == 0 || (shape.reserved == 0 && shape.decoy != 2);
        prop_assert_eq!(agree(&bytes, &spent)?, valid);
        if !valid {
            prop_assert_eq!(scan(&bytes, &spent), Err(ChainError::Inconsistent(WITNESS.into())));
            return Ok(());
        }
        let scanned = scan(&bytes, &spent).unwrap();
        prop_assert_eq!(scanned.outputs.len(), 1 + shape.legacy + shape.segwit + usize::from(shape.without_inputs));
        prop_assert_eq!(scanned.spends.len(), shape.legacy + shape.segwit);
    }

    #[test]
    fn mutated_small_blocks_agree(shape in shapes(), area in areas(), edits in prop::collection::vec(edit(), 1..4)) {
        let (bytes, spent) = small_block(&shape);
        agree(&edited(&bytes, area, &edits), &spent)?;
    }

    #[test]
    fn garbage_is_refused_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        agree(&bytes, &BTreeSet::new())?;
        // A header and one transaction's worth of garbage after a plausible count.
        let mut framed = bytes.clone();
        if framed.len() > 81 {
            framed[80] = 1;
            agree(&framed, &BTreeSet::new())?;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn mutated_real_blocks_agree(area in areas(), edits in prop::collection::vec(edit(), 1..3), which in any::<bool>()) {
        let Some(original) = (if which { block866342() } else { block413567() }) else { return Ok(()) };
        agree(&edited(original, area, &edits), &BTreeSet::new())?;
    }
}
