//! The Monero fee model charges at least what monero-wallet computes for the real transaction
//! (CLSAG rings of 16, a Bulletproof+ over every output, the change output), for every input
//! and output count the scheduler can plan; otherwise a plan could not be built.

mod common;

use mock_chains::monero::{block_on, Depositor, MockMonero, MoneroConfig, WalletKeys};
use processor_core::chain::monero::{group_address, MoneroBlockData};
use processor_core::chain::{scan_block, ScanKey};
use processor_core::db::{Db, MemDb};
use processor_core::ids::{Amount, Attempt, BlockHeight, ExternalChain, SessionId};
use processor_core::inspect::Inspector;
use processor_core::messages::ChainPublicKey;
use processor_core::payments::{fee_model, PlanRecord, PlanState};
use processor_core::scheduler::{Payment, Plan, PlanKind, PlannedPayment, Utxo};
use processor_core::transaction::monero as xmr;

/// Installs participant 1's share of a dealt 2-of-2 Monero key set as active keys; returns the
/// group's spend key.
fn install_dealer_keys(db: &MemDb, seed: u64) -> [u8; 32] {
    use frost_core::keys::{IdentifierList, KeyPackage};
    use processor_core::keygen::keys::{Ed25519, KeyShare};
    use processor_core::keygen::{install_keys, ChainKeyShare, ThresholdKeyPair};
    use rand_chacha::rand_core::SeedableRng;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let mut deal = || {
        let (shares, public) =
            frost_core::keys::generate_with_dealer::<Ed25519, _>(2, 2, IdentifierList::Default, &mut rng).unwrap();
        let share = shares.into_values().next().unwrap();
        KeyShare { share: KeyPackage::try_from(share).unwrap(), public }
    };
    let keys = ThresholdKeyPair { session: SessionId(1), batch: deal(), chain: ChainKeyShare::Monero(deal()) };
    let mut txn = db.txn();
    install_keys(&mut txn, &keys);
    processor_core::scanner::start_at(&mut txn, BlockHeight(0)).unwrap();
    txn.commit().unwrap();
    let ChainPublicKey::Monero { spend_key } = keys.group_keys().chain else { unreachable!() };
    spend_key
}

const FEE_RATE: u64 = 20_000;

#[test]
fn the_monero_fee_model_covers_real_transactions() {
    let mut chain = MockMonero::with_config(61, MoneroConfig { coinbase_lock: 1, ..MoneroConfig::default() });
    let mut depositor = Depositor::new(61);
    let inputs_wanted = 4;
    for _ in 0..14 {
        chain.mine_to(&depositor.address());
    }
    let db = MemDb::default();
    let spend_key = install_dealer_keys(&db, 62);
    let group = group_address(&spend_key, monero_wallet::address::Network::Mainnet).unwrap();
    let first = chain.tip_height() + 1;
    for _ in 0..inputs_wanted {
        let deposit = depositor.deposit(&chain, &group, 50_000_000_000, None).unwrap();
        chain.submit(deposit).unwrap();
        chain.mine();
    }
    for _ in 0..12 {
        chain.mine();
    }
    let key = [ScanKey { session: SessionId(1), key: ChainPublicKey::Monero { spend_key } }];
    let mut utxos = Vec::new();
    for height in first..first + inputs_wanted {
        let bytes = MoneroBlockData::new(
            chain.block(height).unwrap(),
            &chain.transactions(height)[1..],
            chain.scannable_block_at(height).unwrap().output_index_for_first_ringct_output,
        )
        .encode();
        for output in scan_block(ExternalChain::Monero, &bytes, &key).unwrap().outputs {
            let mut txn = db.txn();
            xmr::store_output(
                &mut txn,
                &output.id,
                &xmr::MoneroOutput { final_at: BlockHeight(height as u64), wallet_output: output.spend_data.clone() },
            );
            txn.commit().unwrap();
            utxos.push(Utxo { id: output.id, amount: output.amount, kind: output.kind });
        }
    }
    let model = fee_model(ExternalChain::Monero);
    let recipient = WalletKeys::from_seed(63).address().to_string().into_bytes();
    for inputs in [1, 2, 4] {
        for payments in [1, 2, 3, 4, 7, 8, 12, model.max_outputs - 1] {
            let spent = &utxos[..inputs];
            let total: u64 = spent.iter().map(|u| u.amount.0).sum();
            let fee = model.fee(FEE_RATE, inputs, payments + 1);
            let each = 1_000_000_000;
            let plan = Plan {
                kind: PlanKind::Payments,
                inputs: spent.to_vec(),
                payments: (0..payments)
                    .map(|i| PlannedPayment {
                        payment: Payment { id: [i as u8; 32], destination: recipient.clone(), amount: Amount(each) },
                        paid: Amount(each),
                    })
                    .collect(),
                branches: vec![],
                change: Some(Amount(total - fee.0 - each * payments as u64)),
                fee,
            };
            assert!(plan.conserves_value());
            let id = processor_core::payments::plan_id(ExternalChain::Monero, &plan);
            let record = PlanRecord {
                id,
                chain: ExternalChain::Monero,
                session: SessionId(1),
                plan,
                state: PlanState::Planned,
                attempt: Attempt(0),
                fee_rate: FEE_RATE,
            };
            let request = xmr::decoy_request(&db, &record).unwrap();
            let rings = block_on(xmr::select_decoys(&chain, &request)).unwrap().unwrap();
            let parsed = xmr::parse_inputs(&request, &rings).unwrap();
            let signable = xmr::signable(&record, &spend_key, parsed).unwrap();
            assert!(
                signable.necessary_fee() <= fee.0,
                "{inputs} inputs, {payments} payments: monero-wallet needs {} piconero, the model charged {}",
                signable.necessary_fee(),
                fee.0
            );
        }
    }

    // A plan whose transaction cannot be built (it leaves less than the real fee and no
    // change) fails once, with a report, instead of asking for rings forever.
    let spent = &utxos[..1];
    let total = spent[0].amount.0;
    let plan = Plan {
        kind: PlanKind::Payments,
        inputs: spent.to_vec(),
        payments: vec![PlannedPayment {
            payment: Payment { id: [9; 32], destination: recipient.clone(), amount: Amount(total - 10) },
            paid: Amount(total - 10),
        }],
        branches: vec![],
        change: None,
        fee: Amount(10),
    };
    let id = processor_core::payments::plan_id(ExternalChain::Monero, &plan);
    let record = PlanRecord {
        id,
        chain: ExternalChain::Monero,
        session: SessionId(1),
        plan,
        state: PlanState::Planned,
        attempt: Attempt(0),
        fee_rate: FEE_RATE,
    };
    let mut txn = db.txn();
    processor_core::payments::save_plan(&mut txn, &record);
    processor_core::transaction::eventuality::watch(&mut txn, &record).unwrap();
    txn.commit().unwrap();
    assert_eq!(xmr::decoy_requests(&db).unwrap().len(), 1);
    let request = xmr::decoy_request(&db, &record).unwrap();
    let rings = block_on(xmr::select_decoys(&chain, &request)).unwrap().unwrap();
    let mut txn = db.txn();
    let messages = xmr::decoys_arrived(&mut txn, id, &rings).unwrap().unwrap();
    txn.commit().unwrap();
    assert!(matches!(
        messages.as_slice(),
        [processor_core::messages::ProcessorMessage::Payments(processor_core::messages::PaymentsEvent::PlanFailed { plan, .. })] if *plan == id
    ));
    assert!(matches!(Inspector::new(&db).plan(id).unwrap().unwrap().state, PlanState::Failed { .. }));
    assert!(xmr::decoy_requests(&db).unwrap().is_empty(), "a failed plan is not asked about again");
}
