use super::*;
use processor_core::batch::{store_batch, BatchRecord};
use processor_core::chain::bitcoin::ProofOfWork;
use processor_core::core::{Config, Processor};
use processor_core::crypto::Identity;
use processor_core::db::Db;
use processor_core::ids::{Amount, Attempt, BatchId, BlockHeight, BlockId, ExternalChain, SessionId};
use processor_core::messages::{Batch, InInstruction};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// A data directory a processor opened (schema stamped) with one Batch built and not signed;
/// the store stays open, as a running daemon keeps it.
fn running_processor(dir: &Path) -> RocksDb {
    let db = RocksDb::open(dir).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let coordinator = Identity::generate(&mut rng).peer_key();
    let config = Config {
        chain: ExternalChain::Bitcoin,
        coordinator,
        confirmations: 3,
        proof_of_work: ProofOfWork::REGTEST,
        retirement_window: 6,
    };
    let identity = Identity::generate(&mut rng);
    drop(Processor::open(db.clone(), identity, config, ChaCha20Rng::seed_from_u64(2)).unwrap());
    let batch = Batch {
        chain: ExternalChain::Bitcoin,
        id: BatchId(4),
        block: BlockId([9; 32]),
        instructions: vec![(InInstruction { account: [1; 32] }, Amount(50_000))],
    };
    let record = BatchRecord {
        session: SessionId(1),
        height: BlockHeight(12),
        batch,
        attempt: Attempt(2),
        signature: None,
        published: false,
    };
    let mut txn = db.txn();
    store_batch(&mut txn, BatchId(4), &record);
    txn.commit().unwrap();
    db
}

#[test]
fn a_running_processors_directory_is_read_without_disturbing_it() {
    let dir = tempfile::tempdir().unwrap();
    let writer = running_processor(dir.path());

    let report = inspect(dir.path()).unwrap();
    assert!(report.schema_version.is_some(), "{report:?}");
    assert_eq!(report.active_session, None);
    assert_eq!(report.halted, None);
    assert_eq!((report.batches.pending, report.batches.signed), (1, 0));
    assert_eq!(
        report.batches.newest,
        vec![BatchReport { id: 4, height: 12, instructions: 1, attempt: 2, signed: false, published: false }]
    );
    let text = report.human();
    assert!(text.contains("batches           1 pending, 0 signed, 0 published"), "{text}");
    assert!(text.contains("halted            no"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
    assert_eq!(json["batches"]["newest"][0]["height"], 12);

    // The daemon's handle still writes; the read-only one cannot.
    let mut txn = writer.txn();
    txn.put(b"probe".to_vec(), b"1".to_vec());
    txn.commit().unwrap();
    let reader = RocksDb::open_read_only(dir.path()).unwrap();
    let mut txn = reader.txn();
    txn.put(b"probe".to_vec(), b"2".to_vec());
    assert!(txn.commit().is_err(), "a read-only store took a write");
    assert_eq!(writer.get(b"probe").unwrap(), Some(b"1".to_vec()));
}

#[test]
fn a_directory_without_a_store_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let error = inspect(dir.path()).unwrap_err();
    assert!(error.contains("not a processor's data directory"), "{error}");
    assert!(!dir.path().join("CURRENT").exists(), "inspecting created nothing");
}
