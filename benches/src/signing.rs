//! Signing fixtures: trusted-dealer key sets installed in in-memory processor DBs (so large
//! groups need no DKG first), Batches and Bitcoin plans to sign.

use frost_core::keys::{IdentifierList, KeyPackage, PublicKeyPackage};
use frost_core::Ciphersuite;
use processor_core::batch::BatchRecord;
use processor_core::db::{Db, MemDb};
use processor_core::ids::{Amount, Attempt, BatchId, BlockHeight, BlockId, ExternalChain, PlanId, SessionId};
use processor_core::keygen::keys::{Ed25519, Secp256k1Tr};
use processor_core::keygen::{install_keys, ChainKeyShare, KeyShare, ThresholdKeyPair};
use processor_core::messages::{Batch, InInstruction, OutputKind};
use processor_core::payments::{PlanRecord, PlanState};
use processor_core::scheduler::{Payment, Plan, PlanKind, PlannedPayment, Utxo};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

pub const SESSION: SessionId = SessionId(1);

fn dealer<C: Ciphersuite>(n: u16, t: u16, rng: &mut ChaCha20Rng) -> Vec<KeyShare<C>> {
    let (shares, public): (_, PublicKeyPackage<C>) =
        frost_core::keys::generate_with_dealer(n, t, IdentifierList::Default, rng).expect("valid parameters");
    shares
        .into_values()
        .map(|share| KeyShare {
            share: KeyPackage::try_from(share).expect("a dealt share verifies"),
            public: public.clone(),
        })
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
            install_keys(&mut txn, &keys);
            processor_core::scanner::start_at(&mut txn, BlockHeight(0)).expect("in-memory");
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
        instructions: (0..instructions)
            .map(|i| (InInstruction { account: [i as u8; 32] }, Amount(1_000 + i as u64)))
            .collect(),
    };
    let record = BatchRecord {
        session: SESSION,
        height: BlockHeight(5),
        batch,
        attempt: Attempt(attempt),
        signature: None,
        published: false,
    };
    let mut txn = db.txn();
    processor_core::batch::store_batch(&mut txn, id, &record);
    txn.commit().expect("in-memory");
    id
}

/// A plan spending `inputs` group outputs of 100,000 sat to one payment, with change.
pub fn bitcoin_plan(inputs: usize) -> Plan {
    let inputs: Vec<Utxo> = (0..inputs)
        .map(|i| {
            let mut id = [i as u8; 32].to_vec();
            id.extend((i as u32).to_le_bytes());
            Utxo {
                id: processor_core::ids::OutputId(id),
                amount: Amount(100_000),
                kind: if i % 2 == 0 { OutputKind::External } else { OutputKind::Change },
            }
        })
        .collect();
    let total = 100_000 * inputs.len() as u64;
    let fee = 1_000 + 60 * inputs.len() as u64;
    let destination = bitcoin::ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_raw_hash(
        bitcoin::hashes::Hash::from_byte_array([9; 20]),
    ))
    .to_bytes();
    let paid = total / 2 - fee;
    Plan {
        kind: PlanKind::Payments,
        inputs,
        payments: vec![PlannedPayment {
            payment: Payment { id: [1; 32], destination, amount: Amount(total / 2) },
            paid: Amount(paid),
        }],
        branches: vec![],
        change: Some(Amount(total - total / 2)),
        fee: Amount(fee),
    }
}

/// Records `plan` at `db` as planned, awaiting attempt `attempt`.
pub fn record_plan(db: &MemDb, plan: &Plan, attempt: u32) -> PlanId {
    let id = processor_core::payments::plan_id(ExternalChain::Bitcoin, plan);
    let record = PlanRecord {
        id,
        chain: ExternalChain::Bitcoin,
        session: SESSION,
        plan: plan.clone(),
        state: PlanState::Planned,
        attempt: Attempt(attempt),
        fee_rate: 10,
    };
    let mut txn = db.txn();
    processor_core::payments::save_plan(&mut txn, &record);
    txn.commit().expect("in-memory");
    id
}

/// The chain key shares of `dbs` (for the bare-library floor).
pub fn chain_shares(dbs: &[MemDb]) -> Vec<KeyShare<Secp256k1Tr>> {
    dbs.iter()
        .map(|db| match processor_core::keygen::active_keys(db).expect("in-memory").expect("installed").chain {
            ChainKeyShare::Bitcoin(share) => share,
            ChainKeyShare::Monero(_) => unreachable!("installed as Bitcoin"),
        })
        .collect()
}

/// The batch key shares of `dbs`.
pub fn batch_shares(dbs: &[MemDb]) -> Vec<KeyShare<Ed25519>> {
    dbs.iter().map(|db| processor_core::keygen::active_keys(db).expect("in-memory").expect("installed").batch).collect()
}

/// A 3-of-4 Monero group holding `inputs` spendable outputs on a mock chain, with a plan
/// spending all of them, recorded (with its rings) at the three signers' DBs.
pub struct MoneroSigning {
    pub dbs: Vec<MemDb>,
    pub record: PlanRecord,
    pub inputs: Vec<Vec<u8>>,
    pub spend_key: [u8; 32],
    /// monero-wallet's multisig keys of the three signers (for the bare-library floor).
    pub threshold_keys: Vec<modular_frost::ThresholdKeys<modular_frost::curve::Ed25519>>,
}

pub fn monero_signing(inputs: usize, seed: u64) -> MoneroSigning {
    use mock_chains::monero::{block_on, Depositor, MockMonero, MoneroConfig};
    use processor_core::chain::monero::{group_address, MoneroBlockData};
    use processor_core::chain::{scan_block, ScanKey};
    use processor_core::messages::ChainPublicKey;
    use processor_core::transaction::monero as xmr;

    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let batch = dealer::<Ed25519>(4, 3, &mut rng);
    let chain_keys = dealer::<Ed25519>(4, 3, &mut rng);
    let pairs: Vec<ThresholdKeyPair> = batch
        .into_iter()
        .zip(chain_keys)
        .take(3)
        .map(|(batch, chain)| ThresholdKeyPair { session: SESSION, batch, chain: ChainKeyShare::Monero(chain) })
        .collect();
    let ChainPublicKey::Monero { spend_key } = pairs[0].group_keys().chain else { unreachable!("a Monero key") };
    let threshold_keys = pairs
        .iter()
        .enumerate()
        .map(|(index, pair)| {
            let ChainKeyShare::Monero(share) = &pair.chain else { unreachable!() };
            processor_core::keygen::monero::monero_threshold_keys(
                share,
                processor_core::ids::Participant::from_position(index),
            )
            .expect("converts")
        })
        .collect();
    let dbs: Vec<MemDb> = pairs
        .iter()
        .map(|pair| {
            let db = MemDb::default();
            let mut txn = db.txn();
            install_keys(&mut txn, pair);
            processor_core::scanner::start_at(&mut txn, BlockHeight(0)).expect("in-memory");
            txn.commit().expect("in-memory");
            db
        })
        .collect();

    let mut chain = MockMonero::with_config(seed, MoneroConfig { coinbase_lock: 2, ..MoneroConfig::default() });
    let mut depositor = Depositor::new(seed ^ 0xd0d0);
    for _ in 0..12 + inputs {
        chain.mine_to(&depositor.address());
    }
    let group = group_address(&spend_key, monero_wallet::address::Network::Mainnet).expect("a valid key");
    let first_height = chain.tip_height() + 1;
    for _ in 0..inputs {
        let deposit = depositor.deposit(&chain, &group, 100_000_000_000, None).expect("funded");
        chain.submit(deposit).expect("valid");
        chain.mine();
    }
    for _ in 0..12 {
        chain.mine();
    }
    let key = [ScanKey { session: SESSION, key: ChainPublicKey::Monero { spend_key } }];
    let mut utxos = Vec::new();
    for height in first_height..first_height + inputs {
        let block = chain.block(height).expect("mined");
        let transactions = chain.transactions(height);
        let first = chain.scannable_block_at(height).expect("mined").output_index_for_first_ringct_output;
        let bytes = MoneroBlockData::new(block, &transactions[1..], first).encode();
        for output in scan_block(ExternalChain::Monero, &bytes, &key).expect("scans").outputs {
            for db in &dbs {
                let mut txn = db.txn();
                xmr::store_output(
                    &mut txn,
                    &output.id,
                    &xmr::MoneroOutput {
                        final_at: BlockHeight(height as u64),
                        wallet_output: output.spend_data.clone(),
                    },
                );
                txn.commit().expect("in-memory");
            }
            utxos.push(Utxo { id: output.id, amount: output.amount, kind: output.kind });
        }
    }
    assert_eq!(utxos.len(), inputs);
    let total: u64 = utxos.iter().map(|u| u.amount.0).sum();
    let fee = 100_000_000;
    let destination = mock_chains::monero::WalletKeys::from_seed(seed ^ 7).address().to_string().into_bytes();
    let plan = Plan {
        kind: PlanKind::Payments,
        inputs: utxos,
        payments: vec![PlannedPayment {
            payment: Payment { id: [1; 32], destination, amount: Amount(total / 2) },
            paid: Amount(total / 2 - fee),
        }],
        branches: vec![],
        change: Some(Amount(total - total / 2)),
        fee: Amount(fee),
    };
    let id = processor_core::payments::plan_id(ExternalChain::Monero, &plan);
    let record = PlanRecord {
        id,
        chain: ExternalChain::Monero,
        session: SESSION,
        plan,
        state: PlanState::Planned,
        attempt: Attempt(0),
        fee_rate: 20_000,
    };
    let request = xmr::decoy_request(&dbs[0], &record).expect("outputs stored");
    let inputs = block_on(xmr::select_decoys(&chain, &request)).expect("ready").expect("rings");
    for db in &dbs {
        let mut txn = db.txn();
        processor_core::payments::save_plan(&mut txn, &record);
        xmr::store_inputs(&mut txn, id, &inputs);
        txn.commit().expect("in-memory");
    }
    MoneroSigning { dbs, record, inputs, spend_key, threshold_keys }
}

/// Records `record` at `db` as planned, awaiting attempt `attempt`.
pub fn reset_plan(db: &MemDb, record: &PlanRecord, attempt: u32) {
    let mut record = record.clone();
    record.attempt = Attempt(attempt);
    let mut txn = db.txn();
    processor_core::payments::save_plan(&mut txn, &record);
    txn.commit().expect("in-memory");
}
