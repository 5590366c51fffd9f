//! Signing fixtures: trusted-dealer key sets installed in in-memory processor DBs (so large
//! groups need no DKG first), Batches and Bitcoin plans to sign.

use frost_core::keys::{IdentifierList, KeyPackage, PublicKeyPackage};
use frost_core::Ciphersuite;
use processor::batch::BatchRecord;
use processor::db::{schema, Db, MemDb};
use processor::ids::{Amount, Attempt, BatchId, BlockHeight, BlockId, ExternalChain, PlanId, SessionId};
use processor::keygen::keys::{Ed25519, Secp256k1Tr};
use processor::keygen::{install_keys, ChainKeyShare, KeyShare, ThresholdKeyPair};
use processor::messages::{Batch, InInstruction, OutputKind};
use processor::payments::{PlanRecord, PlanState};
use processor::scheduler::{Payment, Plan, PlanKind, PlannedPayment, Utxo};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

pub const SESSION: SessionId = SessionId(1);

fn dealer<C: Ciphersuite>(n: u16, t: u16, rng: &mut ChaCha20Rng) -> Vec<KeyShare<C>> {
    let (shares, public): (_, PublicKeyPackage<C>) =
        frost_core::keys::generate_with_dealer(n, t, IdentifierList::Default, rng).expect("valid parameters");
    shares
        .into_values()
        .map(|share| KeyShare { share: KeyPackage::try_from(share).expect("a dealt share verifies"), public: public.clone() })
        .collect()
}

/// `n` processor DBs holding a `t`-of-`n` Bitcoin key set (batch key and chain key), active.
pub fn bitcoin_signers(n: u16, t: u16, seed: u64) -> Vec<MemDb> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let batch = dealer::<Ed25519>(n, t, &mut rng);
    let chain = dealer::<Secp256k1Tr>(n, t, &mut rng);
    batch
        .into_iter()
        .zip(chain)
        .map(|(batch, chain)| {
            let db = MemDb::default();
            let mut txn = db.txn();
            let keys = ThresholdKeyPair { session: SESSION, batch, chain: ChainKeyShare::Bitcoin(chain) };
            install_keys(&mut txn, &keys, BlockHeight(0));
            txn.commit().expect("in-memory");
            db
        })
        .collect()
}

/// A Batch of `instructions` InInstructions, recorded at `db` as awaiting attempt `attempt`.
pub fn record_batch(db: &MemDb, instructions: usize, attempt: u32) -> BatchId {
    let id = BatchId(7);
    let batch = Batch {
        chain: ExternalChain::Bitcoin,
        id,
        block: BlockId([3; 32]),
        instructions: (0 .. instructions).map(|i| (InInstruction { account: [i as u8; 32] }, Amount(1_000 + i as u64))).collect(),
    };
    let record = BatchRecord { session: SESSION, height: BlockHeight(5), batch, attempt: Attempt(attempt), signature: None, published: false };
    let mut txn = db.txn();
    schema::BATCHES.set(&mut txn, &id, &record);
    txn.commit().expect("in-memory");
    id
}

/// A plan spending `inputs` group outputs of 100,000 sat to one payment, with change.
pub fn bitcoin_plan(inputs: usize) -> Plan {
    let inputs: Vec<Utxo> = (0 .. inputs)
        .map(|i| {
            let mut id = [i as u8; 32].to_vec();
            id.extend((i as u32).to_le_bytes());
            Utxo { id, amount: Amount(100_000), kind: if i % 2 == 0 { OutputKind::External } else { OutputKind::Change } }
        })
        .collect();
    let total = 100_000 * inputs.len() as u64;
    let fee = 1_000 + 60 * inputs.len() as u64;
    let destination = bitcoin::ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_raw_hash(bitcoin::hashes::Hash::from_byte_array([9; 20]))).to_bytes();
    let paid = total / 2 - fee;
    Plan {
        kind: PlanKind::Payments,
        inputs,
        payments: vec![PlannedPayment { payment: Payment { id: [1; 32], destination, amount: Amount(total / 2) }, paid: Amount(paid) }],
        branches: vec![],
        change: Some(Amount(total - total / 2)),
        fee: Amount(fee),
    }
}

/// Records `plan` at `db` as planned, awaiting attempt `attempt`.
pub fn record_plan(db: &MemDb, plan: &Plan, attempt: u32) -> PlanId {
    let id = processor::payments::plan_id(ExternalChain::Bitcoin, plan);
    let record = PlanRecord { id, chain: ExternalChain::Bitcoin, session: SESSION, plan: plan.clone(), state: PlanState::Planned, attempt: Attempt(attempt), fee_rate: 10 };
    let mut txn = db.txn();
    schema::PLANS.set(&mut txn, &id.0.to_vec(), &record);
    txn.commit().expect("in-memory");
    id
}

/// The chain key shares of `dbs` (for the bare-library floor).
pub fn chain_shares(dbs: &[MemDb]) -> Vec<KeyShare<Secp256k1Tr>> {
    dbs.iter()
        .map(|db| match processor::keygen::active_keys(db).expect("in-memory").expect("installed").chain {
            ChainKeyShare::Bitcoin(share) => share,
            ChainKeyShare::Monero(_) => unreachable!("installed as Bitcoin"),
        })
        .collect()
}

/// The batch key shares of `dbs`.
pub fn batch_shares(dbs: &[MemDb]) -> Vec<KeyShare<Ed25519>> {
    dbs.iter().map(|db| processor::keygen::active_keys(db).expect("in-memory").expect("installed").batch).collect()
}
