//! The behaviour every backend must show: a suite each backend's tests run against it
//! (the in-memory one here, RocksDB in the daemon crate).

use super::{Db, Read, Table};
use crate::ids::SeqId;

const NUMBERS: Table<SeqId, String> = Table::new("numbers", b"test/numbers/");
const OTHER: Table<SeqId, String> = Table::new("other", b"test/other/");

/// `open` must return a handle to the same store each time it is called, after the previous
/// handle was dropped (a reopen).
pub fn run<D: Db>(open: impl Fn() -> D) {
    let db = open();
    assert_eq!(db.get(b"missing").unwrap(), None);

    // A committed transaction is visible; reads inside a transaction see its own writes.
    let mut txn = db.txn();
    NUMBERS.set(&mut txn, &SeqId(2), &"two".to_string());
    NUMBERS.set(&mut txn, &SeqId(1), &"one".to_string());
    NUMBERS.set(&mut txn, &SeqId(300), &"three hundred".to_string());
    OTHER.set(&mut txn, &SeqId(1), &"elsewhere".to_string());
    assert_eq!(NUMBERS.get(&txn, &SeqId(2)).unwrap().as_deref(), Some("two"));
    assert_eq!(NUMBERS.get(&db, &SeqId(2)).unwrap(), None, "uncommitted write leaked");
    txn.commit().unwrap();
    assert_eq!(NUMBERS.get(&db, &SeqId(2)).unwrap().as_deref(), Some("two"));

    // Entries come back in numeric key order, and only the table's own.
    let keys: Vec<u64> = NUMBERS.entries(&db).unwrap().into_iter().map(|(k, _)| k.0).collect();
    assert_eq!(keys, vec![1, 2, 300]);

    // A transaction dropped without commit leaves no trace.
    {
        let mut txn = db.txn();
        NUMBERS.set(&mut txn, &SeqId(4), &"four".to_string());
        NUMBERS.delete(&mut txn, &SeqId(1));
        assert_eq!(NUMBERS.entries(&txn).unwrap().len(), 3);
    }
    assert_eq!(NUMBERS.get(&db, &SeqId(4)).unwrap(), None);
    assert_eq!(NUMBERS.get(&db, &SeqId(1)).unwrap().as_deref(), Some("one"));

    // take reads and deletes, atomically with the rest of the transaction.
    let mut txn = db.txn();
    assert_eq!(NUMBERS.take(&mut txn, &SeqId(1)).unwrap().as_deref(), Some("one"));
    assert_eq!(NUMBERS.take(&mut txn, &SeqId(1)).unwrap(), None);
    let in_txn: Vec<u64> = NUMBERS.entries(&txn).unwrap().into_iter().map(|(k, _)| k.0).collect();
    assert_eq!(in_txn, vec![2, 300]);
    txn.commit().unwrap();

    // A corrupt value is an error, not a panic.
    let mut txn = db.txn();
    txn.put(b"test/numbers/\0\0\0\0\0\0\0\x09".to_vec(), vec![0xff, 0xff, 0xff]);
    txn.commit().unwrap();
    assert!(NUMBERS.get(&db, &SeqId(9)).is_err());
    let mut txn = db.txn();
    NUMBERS.delete(&mut txn, &SeqId(9));
    txn.commit().unwrap();

    // Pages: bounded, in key order, from after a key, with a transaction's own writes applied.
    let mut txn = db.txn();
    for n in [10, 11, 12, 13] {
        NUMBERS.set(&mut txn, &SeqId(n), &n.to_string());
    }
    txn.commit().unwrap();
    fn page_keys(reader: &impl Read, after: Option<u64>, limit: usize) -> Vec<u64> {
        NUMBERS.page(reader, after.map(SeqId).as_ref(), limit).unwrap().into_iter().map(|(k, _)| k.0).collect()
    }
    assert_eq!(page_keys(&db, None, 3), vec![2, 10, 11]);
    assert_eq!(page_keys(&db, Some(11), 10), vec![12, 13, 300]);
    assert_eq!(page_keys(&db, Some(300), 10), Vec::<u64>::new());
    let mut txn = db.txn();
    NUMBERS.delete(&mut txn, &SeqId(10));
    NUMBERS.delete(&mut txn, &SeqId(11));
    NUMBERS.delete(&mut txn, &SeqId(12));
    NUMBERS.set(&mut txn, &SeqId(5), &"five".to_string());
    assert_eq!(page_keys(&txn, None, 3), vec![2, 5, 13]);
    assert_eq!(page_keys(&txn, Some(5), 1), vec![13]);
    drop(txn);
    let mut txn = db.txn();
    for n in [10, 11, 12, 13] {
        NUMBERS.delete(&mut txn, &SeqId(n));
    }
    txn.commit().unwrap();

    // Reopening keeps every committed write and nothing else.
    drop(db);
    let db = open();
    let entries: Vec<(u64, String)> = NUMBERS.entries(&db).unwrap().into_iter().map(|(k, v)| (k.0, v)).collect();
    assert_eq!(entries, vec![(2, "two".to_string()), (300, "three hundred".to_string())]);
    assert_eq!(OTHER.get(&db, &SeqId(1)).unwrap().as_deref(), Some("elsewhere"));
    assert!(db.get_raw(b"test/numbers/\0\0\0\0\0\0\0\x04").unwrap().is_none());
}

#[cfg(test)]
#[test]
fn mem_db_passes_the_suite() {
    let db = super::MemDb::new();
    run(|| db.clone());
}
