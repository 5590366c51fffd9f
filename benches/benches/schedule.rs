//! Scheduling over large funds: the group holding 1,000,000 outputs with 100,000 Burns queued
//! (every queued payment planned in one pass), and the everyday case of one Burn arriving while
//! the group holds 10,000 or 1,000,000 outputs (which must cost the same). The funds are the
//! processor's stored funds, a row per output and per payment, in the in-memory backend; each
//! iteration plans in a transaction that is then dropped, so every iteration starts alike.
//!
//! The heap a pass allocates is measured with a counting allocator and printed: the stored
//! funds load a page at a time, so the pass holds what it plans, not what the group holds.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use processor_core::db::{Db, MemDb};
use processor_core::ids::{Amount, OutputId, SessionId};
use processor_core::messages::OutputKind;
use processor_core::scheduler::{self, FeeModel, Payment, Utxo};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts live heap bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// A database holding `outputs` outputs of 10,000..1,010,000 sat and `payments` queued
/// payments of 5,000..505,000 sat to P2TR scripts.
fn funds(outputs: u64, payments: u64) -> MemDb {
    let mut rng = ChaCha20Rng::seed_from_u64(outputs ^ (payments << 32));
    let db = MemDb::new();
    let mut txn = db.txn();
    scheduler::set_fee_rate(&mut txn, 5).unwrap();
    for index in 0..outputs {
        let mut id = [0u8; 36];
        rng.fill_bytes(&mut id[..32]);
        id[32..].copy_from_slice(&(index as u32).to_le_bytes());
        let amount = Amount(10_000 + rng.next_u64() % 1_000_000);
        scheduler::add_output(
            &mut txn,
            SessionId(1),
            Utxo { id: OutputId(id.to_vec()), amount, kind: OutputKind::External },
        )
        .unwrap();
    }
    for index in 0..payments {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&index.to_le_bytes());
        let mut destination = vec![0x51, 0x20];
        destination.extend_from_slice(&id);
        let amount = Amount(5_000 + rng.next_u64() % 500_000);
        scheduler::queue_payment(&mut txn, Payment { id, destination, amount }).unwrap();
    }
    txn.commit().unwrap();
    db
}

/// One scheduling pass, not committed: how many plans and payments it made, and the heap it
/// allocated at its peak beyond what was live before.
fn pass(db: &MemDb) -> (usize, usize, usize) {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let mut txn = db.txn();
    let scheduled = scheduler::schedule_stored(&mut txn, SessionId(1), &FeeModel::BITCOIN).unwrap();
    let planned = scheduled.plans.iter().map(|plan| plan.payments.len()).sum();
    let plans = scheduled.plans.len();
    drop(scheduled);
    drop(txn);
    (plans, planned, PEAK.load(Ordering::Relaxed) - before)
}

fn large_funds(c: &mut Criterion) {
    let mut group = c.benchmark_group("schedule");
    group.sample_size(10);

    let db = funds(1_000_000, 100_000);
    let (plans, planned, heap) = pass(&db);
    println!(
        "1,000,000 outputs, 100,000 queued: {plans} plans paying {planned} payments; pass heap peak {:.1} MiB",
        heap as f64 / (1 << 20) as f64
    );
    group.bench_function("outputs_1000000_queued_100000/plan_all", |b| b.iter(|| pass(&db)));

    for outputs in [10_000u64, 1_000_000] {
        let db = funds(outputs, 1);
        let (plans, _, heap) = pass(&db);
        println!("{outputs} outputs, one Burn queued: {plans} plan; pass heap peak {:.1} KiB", heap as f64 / 1024.0);
        group.bench_with_input(BenchmarkId::new("one_burn", outputs), &db, |b, db| b.iter(|| pass(db)));
    }
    group.finish();
}

criterion_group!(benches, large_funds);
criterion_main!(benches);
