//! Key generation among several processor cores over a shuffled, delayed, duplicating and
//! dropping network, with crashes and a Byzantine participant; the generated keys sign, and
//! implementations other than the signer's verify.

use bitcoin::key::TapTweak;
use bitcoin::secp256k1::{schnorr, Message, Secp256k1, XOnlyPublicKey};
use coordinator::local::{Faults, LocalNetwork};
use coordinator::{Observation, SessionStatus};
use frost_core::keys::{KeyPackage, PublicKeyPackage};
use frost_core::Ciphersuite;
use processor_core::ids::{ExternalChain, Millis, Participant, SessionId};
use processor_core::keygen::{self, monero::monero_threshold_keys, ChainKeyShare, ThresholdKeyPair};
use processor_core::messages::{BlameReason, ChainPublicKey, GroupKeys};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::collections::BTreeMap;
use std::time::Instant;

const SESSION: SessionId = SessionId(1);
const DEADLINE: Millis = Millis(600_000);

fn all_active(network: &LocalNetwork, members: &[usize]) -> bool {
    members.iter().all(|i| keygen::active_keys(network.db(*i)).unwrap().is_some())
}

/// Runs a key generation and returns every member's active keys.
fn generate(
    n: usize,
    t: u16,
    chain: ExternalChain,
    seed: u64,
    faults: Faults,
) -> (LocalNetwork, Vec<ThresholdKeyPair>) {
    let mut network = LocalNetwork::new(n, chain, seed, faults);
    network.start_keygen(SESSION, t, None);
    let members: Vec<usize> = (0..n).collect();
    assert!(
        network.run_until(DEADLINE, |net| all_active(net, &members)),
        "{t}-of-{n} {chain} key generation (seed {seed}) did not finish; coordinator saw {:?}",
        network.coordinator().observations()
    );
    let keys = members.iter().map(|i| keygen::active_keys(network.db(*i)).unwrap().unwrap()).collect();
    (network, keys)
}

fn agreed_keys(network: &LocalNetwork, keys: &[ThresholdKeyPair]) -> GroupKeys {
    let first = keys[0].group_keys();
    for pair in keys {
        assert_eq!(pair.group_keys(), first, "processors disagree on the group keys");
        assert_eq!(pair.session, SESSION);
    }
    assert_eq!(network.coordinator().status(SESSION), Some(&SessionStatus::Confirmed(first)));
    first
}

/// FROST-signs `message` with the first `t` of `shares` (plain, or with the BIP341 tweak).
fn frost_sign<C: Ciphersuite>(
    shares: &[(&KeyPackage<C>, &PublicKeyPackage<C>)],
    message: &[u8],
    rng: &mut ChaCha20Rng,
    sign: impl Fn(
        &frost_core::SigningPackage<C>,
        &frost_core::round1::SigningNonces<C>,
        &KeyPackage<C>,
    ) -> frost_core::round2::SignatureShare<C>,
    aggregate: impl Fn(
        &frost_core::SigningPackage<C>,
        &BTreeMap<frost_core::Identifier<C>, frost_core::round2::SignatureShare<C>>,
        &PublicKeyPackage<C>,
    ) -> frost_core::Signature<C>,
) -> Vec<u8> {
    let signers = &shares[..usize::from(*shares[0].0.min_signers())];
    let mut nonces = BTreeMap::new();
    let mut commitments = BTreeMap::new();
    for (share, _) in signers {
        let (nonce, commitment) = frost_core::round1::commit(share.signing_share(), rng);
        nonces.insert(*share.identifier(), nonce);
        commitments.insert(*share.identifier(), commitment);
    }
    let package = frost_core::SigningPackage::new(commitments, message);
    let signature_shares = signers
        .iter()
        .map(|(share, _)| (*share.identifier(), sign(&package, &nonces[share.identifier()], share)))
        .collect();
    aggregate(&package, &signature_shares, signers[0].1).serialize().unwrap()
}

fn ed25519_sign(
    shares: &[(&KeyPackage<keygen::keys::Ed25519>, &PublicKeyPackage<keygen::keys::Ed25519>)],
    message: &[u8],
    rng: &mut ChaCha20Rng,
) -> [u8; 64] {
    frost_sign(
        shares,
        message,
        rng,
        |package, nonces, share| frost_ed25519::round2::sign(package, nonces, share).unwrap(),
        |package, shares, public| frost_ed25519::aggregate(package, shares, public).unwrap(),
    )
    .try_into()
    .unwrap()
}

/// Verifies with ed25519-dalek: not the signer's implementation.
fn assert_ed25519_verifies(public_key: [u8; 32], message: &[u8], signature: [u8; 64]) {
    let key = ed25519_dalek::VerifyingKey::from_bytes(&public_key).unwrap();
    key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&signature))
        .expect("ed25519-dalek rejects the threshold signature");
}

/// Signs with every key a session produced and verifies each signature independently.
fn assert_keys_sign(keys: &mut [ThresholdKeyPair], group: GroupKeys, seed: u64) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    // Rotate so the signing set is not always the first t participants.
    keys.rotate_left((seed as usize) % keys.len());

    let batch: Vec<_> = keys.iter().map(|k| (&k.batch.share, &k.batch.public)).collect();
    let message = b"a Batch for Serai";
    assert_ed25519_verifies(group.batch.0, message, ed25519_sign(&batch, message, &mut rng));

    match group.chain {
        ChainPublicKey::Bitcoin { internal_key } => {
            let shares: Vec<_> = keys
                .iter()
                .map(|k| match &k.chain {
                    ChainKeyShare::Bitcoin(share) => (&share.share, &share.public),
                    ChainKeyShare::Monero(_) => panic!("a Bitcoin session produced a Monero key"),
                })
                .collect();
            let sighash = [0x5a; 32];
            let signature = frost_sign(
                &shares,
                &sighash,
                &mut rng,
                |package, nonces, share| {
                    frost_secp256k1_tr::round2::sign_with_tweak(package, nonces, share, None).unwrap()
                },
                |package, shares, public| {
                    frost_secp256k1_tr::aggregate_with_tweak(package, shares, public, None).unwrap()
                },
            );
            // libsecp256k1's BIP340 verification against the BIP341-tweaked output key.
            let secp = Secp256k1::verification_only();
            let internal = XOnlyPublicKey::from_slice(&internal_key).unwrap();
            let (output_key, _) = internal.tap_tweak(&secp, None);
            let signature = schnorr::Signature::from_slice(&signature).unwrap();
            secp.verify_schnorr(&signature, &Message::from_digest(sighash), &output_key.to_x_only_public_key())
                .expect("libsecp256k1 rejects the key-path signature");
        }
        ChainPublicKey::Monero { spend_key } => {
            let shares: Vec<_> = keys
                .iter()
                .map(|k| match &k.chain {
                    ChainKeyShare::Monero(share) => (&share.share, &share.public),
                    ChainKeyShare::Bitcoin(_) => panic!("a Monero session produced a Bitcoin key"),
                })
                .collect();
            let message = b"a Monero spend";
            assert_ed25519_verifies(spend_key, message, ed25519_sign(&shares, message, &mut rng));
            // monero-wallet's multisig signer takes these shares with the same group key.
            for pair in keys.iter() {
                let ChainKeyShare::Monero(share) = &pair.chain else { unreachable!() };
                let index = (1..=keys.len() as u16)
                    .find(|i| frost_core::Identifier::try_from(*i).unwrap() == *share.share.identifier())
                    .unwrap();
                monero_threshold_keys(share, Participant::new(index).unwrap())
                    .expect("converts to monero-wallet's keys");
            }
        }
    }
}

#[test]
fn threshold_keys_agree_and_sign_2_of_3_3_of_4_5_of_7() {
    for (seed, (t, n)) in [(2u16, 3usize), (3, 4), (5, 7)].into_iter().enumerate() {
        for chain in [ExternalChain::Bitcoin, ExternalChain::Monero] {
            let started = Instant::now();
            let (network, mut keys) = generate(n, t, chain, seed as u64, Faults::unreliable());
            let group = agreed_keys(&network, &keys);
            let stats = network.stats();
            assert!(stats.duplicated > 0 && stats.dropped > 0, "the network did not misbehave: {stats:?}");
            println!(
                "{t}-of-{n} {chain}: keys agreed in {:?} wall, {} virtual; {stats:?}",
                started.elapsed(),
                network.now()
            );
            assert_keys_sign(&mut keys, group, seed as u64);
        }
    }
}

#[test]
fn key_generation_survives_processor_crashes() {
    for seed in 0..4u64 {
        let chain = if seed % 2 == 0 { ExternalChain::Bitcoin } else { ExternalChain::Monero };
        let faults = Faults { crash_per_mille: 250, ..Faults::unreliable() };
        let (network, mut keys) = generate(4, 3, chain, 100 + seed, faults);
        assert!(network.stats().crashes > 10, "too few crashes to mean anything: {:?}", network.stats());
        let group = agreed_keys(&network, &keys);
        assert_keys_sign(&mut keys, group, seed);
    }
}

#[test]
fn a_participant_sending_bad_shares_is_blamed_and_no_key_is_used() {
    for chain in [ExternalChain::Bitcoin, ExternalChain::Monero] {
        let mut network = LocalNetwork::new(4, chain, 7, Faults::unreliable());
        let byzantine = 2;
        network.make_byzantine(byzantine);
        network.start_keygen(SESSION, 3, None);
        let failed = network
            .run_until(DEADLINE, |net| matches!(net.coordinator().status(SESSION), Some(SessionStatus::Failed { .. })));
        assert!(failed, "the session with a bad-share participant did not fail");
        let accused = Participant::from_position(byzantine);
        assert_eq!(network.coordinator().status(SESSION), Some(&SessionStatus::Failed { blamed: accused }));
        let blames: Vec<_> = network
            .coordinator()
            .observations()
            .iter()
            .filter_map(|o| match o {
                Observation::Blamed { accused, by, reason, .. } => {
                    assert_eq!(*reason, BlameReason::InvalidShare);
                    Some((*by, *accused))
                }
                _ => None,
            })
            .collect();
        assert!(!blames.is_empty());
        assert!(blames.iter().all(|(by, blamed)| *blamed == accused && *by != accused), "{blames:?}");

        // Let every processor learn the verdict, then have a faulty coordinator confirm the keys
        // some of them generated anyway: nobody may activate a key from a failed session.
        network.run_until(Millis(network.now().0 + 10_000), |_| false);
        let generated: Vec<GroupKeys> = network
            .coordinator()
            .observations()
            .iter()
            .filter_map(|o| match o {
                Observation::KeysGenerated { keys, .. } => Some(*keys),
                _ => None,
            })
            .collect();
        for keys in generated {
            network.coordinator_acts(|c| c.confirm_regardless(SESSION, keys));
        }
        network.run_until(Millis(network.now().0 + 10_000), |_| false);
        for index in 0..4 {
            assert!(
                keygen::active_keys(network.db(index)).unwrap().is_none(),
                "processor {index} activated a failed session's key"
            );
            assert!(
                keygen::generated_keys(network.db(index), SESSION).unwrap().is_none(),
                "processor {index} kept a failed session's key shares"
            );
        }

        // The honest three then generate a key without the blamed participant.
        let honest = [0usize, 1, 3];
        network.start_keygen(SessionId(2), 2, Some(&honest));
        assert!(network.run_until(DEADLINE, |net| all_active(net, &honest)), "the honest participants did not recover");
        let keys: Vec<_> = honest.iter().map(|i| keygen::active_keys(network.db(*i)).unwrap().unwrap()).collect();
        assert!(keys.iter().all(|k| k.session == SessionId(2) && k.group_keys() == keys[0].group_keys()));
    }
}

#[test]
fn secrets_are_absent_from_debug_output() {
    let (_, keys) = generate(3, 2, ExternalChain::Bitcoin, 42, Faults::none());
    for pair in &keys {
        let printed = format!("{pair:?}");
        let batch_secret = hex::encode(pair.batch.share.signing_share().serialize());
        assert!(!printed.contains(&batch_secret), "batch key share in Debug output");
        let ChainKeyShare::Bitcoin(chain) = &pair.chain else { panic!() };
        assert!(!printed.contains(&hex::encode(chain.share.signing_share().serialize())));
        assert!(printed.contains("<redacted>"));
    }
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let (nonces, _) = frost_core::round1::commit(keys[0].batch.share.signing_share(), &mut rng);
    let printed = format!("{nonces:?}");
    assert!(!printed.contains(&hex::encode(nonces.hiding().serialize())));

    fn zeroized_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    zeroized_on_drop::<KeyPackage<keygen::keys::Ed25519>>();
    zeroized_on_drop::<KeyPackage<keygen::keys::Secp256k1Tr>>();
    zeroized_on_drop::<frost_core::round1::SigningNonces<keygen::keys::Ed25519>>();
}
