//! Every message fits the wire (hole 9 of the hostile-inputs review): the largest messages the
//! chains and the planning bounds allow, sealed as on the wire, stay within
//! `MAX_MESSAGE_BYTES`, and the real per-input sizes of preprocesses and shares stay within
//! what planning assumes (`transaction::signing_bytes_per_input`).

use processor_benches::signing::*;
use processor_core::crypto::Identity;
use processor_core::db::Db;
use processor_core::ids::{Amount, Attempt, BlockHeight, BlockId, ExternalChain, OutputId, Participant, SeqId};
use processor_core::keygen::MAX_PARTICIPANTS;
use processor_core::messages::{
    CoordinatorMessage, Deposit, Envelope, Frame, InInstruction, OutputKind, ProcessorMessage, ScannerEvent,
    SignCommand, SignEvent, SignId, SignTarget, MAX_MESSAGE_BYTES,
};
use processor_core::transaction::{max_signable_inputs, signing_bytes_per_input, TransactionSigner};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn sealed<M: bincode::Encode>(message: M) -> usize {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let (sender, recipient) = (Identity::generate(&mut rng), Identity::generate(&mut rng));
    let frame = Frame::Data { seq: SeqId(u64::MAX), message };
    Envelope::new(sender.peer_key(), recipient.peer_key(), frame).seal(&sender).len()
}

/// One signer's preprocess and share for a plan recorded in `dbs` (the first `signers` sign).
fn preprocess_and_share(dbs: &[processor_core::db::MemDb], id: SignId) -> (Vec<u8>, Vec<u8>) {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let mut signers: Vec<TransactionSigner> = dbs.iter().map(|_| TransactionSigner::default()).collect();
    let mut preprocesses = Vec::new();
    for (index, signer) in signers.iter_mut().enumerate() {
        let mut txn = dbs[index].txn();
        let messages = signer.reattempt(&mut txn, &mut rng, id).expect("preprocess");
        txn.commit().unwrap();
        let Some(ProcessorMessage::Sign(SignEvent::Preprocess { preprocess, .. })) = messages.into_iter().next() else {
            panic!("no preprocess")
        };
        preprocesses.push((Participant::from_position(index), preprocess));
    }
    let mut txn = dbs[0].txn();
    let messages = signers[0].preprocesses(&mut txn, id, &preprocesses).expect("share");
    let Some(ProcessorMessage::Sign(SignEvent::Share { share, .. })) = messages.into_iter().next() else {
        panic!("no share")
    };
    (preprocesses[0].1.clone(), share)
}

/// The per-input growth of a preprocess and a share between plans of `small` and `large`
/// inputs, checked against the planning constant (and so is the whole at `large`).
fn check_per_input(chain: ExternalChain, small: (Vec<u8>, Vec<u8>), large: (Vec<u8>, Vec<u8>), inputs: (usize, usize)) {
    let bound = signing_bytes_per_input(chain);
    for (what, a, b) in [("preprocess", &small.0, &large.0), ("share", &small.1, &large.1)] {
        let per_input = (b.len() - a.len()) / (inputs.1 - inputs.0);
        println!(
            "{chain} {what}: {} bytes at {} inputs, {} at {}: {per_input} per input",
            a.len(),
            inputs.0,
            b.len(),
            inputs.1
        );
        assert!(per_input <= bound, "{chain} {what}s grow {per_input} bytes per input, planning assumes {bound}");
        assert!(b.len() <= bound * inputs.1 + 256, "{chain} {what} of {} bytes at {} inputs", b.len(), inputs.1);
    }
}

#[test]
fn bitcoin_preprocesses_and_shares_stay_within_the_planning_bound() {
    let all = bitcoin_signers(4, 3, 61);
    let dbs = &all[..3];
    let sizes: Vec<_> = [2usize, 40]
        .into_iter()
        .map(|inputs| {
            let plan = bitcoin_plan(inputs);
            let plan_id = dbs.iter().map(|db| record_plan(db, &plan, 0)).collect::<Vec<_>>()[0];
            let id = SignId { session: SESSION, target: SignTarget::Transaction(plan_id), attempt: Attempt(1) };
            preprocess_and_share(dbs, id)
        })
        .collect();
    let [small, large] = <[_; 2]>::try_from(sizes).unwrap();
    check_per_input(ExternalChain::Bitcoin, small, large, (2, 40));
}

#[test]
fn monero_preprocesses_and_shares_stay_within_the_planning_bound() {
    let sizes: Vec<_> = [1usize, 4]
        .into_iter()
        .map(|inputs| {
            let fixture = monero_signing(inputs, 70 + inputs as u64);
            reset_plan_everywhere(&fixture);
            let id =
                SignId { session: SESSION, target: SignTarget::Transaction(fixture.record.id), attempt: Attempt(1) };
            preprocess_and_share(&fixture.dbs[..3], id)
        })
        .collect();
    let [small, large] = <[_; 2]>::try_from(sizes).unwrap();
    check_per_input(ExternalChain::Monero, small, large, (1, 4));
}

fn reset_plan_everywhere(fixture: &MoneroSigning) {
    for db in &fixture.dbs {
        reset_plan(db, &fixture.record, 0);
    }
}

/// At the largest signing set, a plan with the most inputs planning allows has Preprocesses
/// and Shares commands (every signer's part at the assumed per-input size) that fit one message.
#[test]
fn the_largest_signing_commands_fit_one_message() {
    for chain in [ExternalChain::Bitcoin, ExternalChain::Monero] {
        let inputs = max_signable_inputs(chain, MAX_PARTICIPANTS);
        let part = vec![0xffu8; inputs * signing_bytes_per_input(chain) + 256];
        let parts: Vec<(Participant, Vec<u8>)> =
            (0..MAX_PARTICIPANTS).map(|index| (Participant::from_position(index), part.clone())).collect();
        let id = SignId {
            session: SESSION,
            target: SignTarget::Transaction(processor_core::ids::PlanId([0xff; 32])),
            attempt: Attempt(u32::MAX),
        };
        let size = sealed(CoordinatorMessage::Sign(SignCommand::Preprocesses { id, preprocesses: parts }));
        println!("{chain}: {inputs} inputs at {MAX_PARTICIPANTS} signers: Preprocesses of {size} bytes");
        assert!(size <= MAX_MESSAGE_BYTES, "{chain}: {size} bytes");
        assert!(inputs >= 16, "{chain}: a plan of the largest set could spend only {inputs} inputs");
    }
}

/// A Bitcoin block full of deposits to the group (every output the block weight allows, each
/// with an InInstruction and the largest encodings) is reported in one message.
#[test]
fn a_block_full_of_deposits_is_reported_in_one_message() {
    // 4,000,000 weight units; a P2TR output is 43 bytes, 172 weight units.
    let most_outputs = 4_000_000 / 172;
    let deposit = Deposit {
        output_id: OutputId(vec![0xff; 36]),
        amount: Amount(u64::MAX),
        instruction: Some(InInstruction { account: [0xff; 32] }),
        kind: OutputKind::External,
    };
    let event = ScannerEvent::BlockFinal {
        height: BlockHeight(u64::MAX),
        block: BlockId([0xff; 32]),
        deposits: vec![deposit; most_outputs],
    };
    let size = sealed(ProcessorMessage::Scanner(event));
    println!("{most_outputs} deposits: BlockFinal of {size} bytes");
    assert!(size <= MAX_MESSAGE_BYTES, "{size} bytes");
}
