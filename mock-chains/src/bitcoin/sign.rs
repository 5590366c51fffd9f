//! Taproot key-path helpers: P2TR scripts, BIP341 sighashes and BIP340 signing.

use std::sync::OnceLock;

use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash;
use bitcoin::key::TapTweak;
use bitcoin::secp256k1::{All, Keypair, Message, Secp256k1, XOnlyPublicKey};
use bitcoin::sighash::{Prevouts, SighashCache, TapSighashType, TaprootError};
use bitcoin::transaction::Version;
use bitcoin::{taproot, OutPoint, Script, ScriptBuf, Sequence, TapSighash, Transaction, TxIn, TxOut, Witness};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sha2::{Digest, Sha256};

/// Why a key-path spend could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("input index {index} out of range for a transaction with {inputs} inputs")]
    InputIndex { index: usize, inputs: usize },
    #[error("{prevouts} prevouts given for a transaction with {inputs} inputs")]
    PrevoutCount { prevouts: usize, inputs: usize },
    #[error("BIP341 sighash unavailable: {0}")]
    Sighash(#[from] TaprootError),
}

/// One context for the process: creating a context is cheap but not free, and it is immutable.
pub(crate) fn secp() -> &'static Secp256k1<All> {
    static SECP: OnceLock<Secp256k1<All>> = OnceLock::new();
    SECP.get_or_init(Secp256k1::new)
}

/// A ChaCha20 RNG derived from a seed under a domain, so the chain, the miner key and each
/// depositor draw independent streams from the same `u64`.
pub(crate) fn seeded_rng(domain: &[u8], seed: u64) -> ChaCha20Rng {
    let digest = Sha256::new()
        .chain_update(b"mock-chains/bitcoin/")
        .chain_update(domain)
        .chain_update(seed.to_le_bytes())
        .finalize();
    ChaCha20Rng::from_seed(digest.into())
}

/// A secp256k1 keypair from seeded bytes (retrying the ~2^-128 chance of an invalid scalar).
pub(crate) fn keypair_from_rng(rng: &mut ChaCha20Rng) -> Keypair {
    use rand_core::RngCore;
    loop {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        if let Ok(keypair) = Keypair::from_seckey_slice(secp(), &bytes) {
            return keypair;
        }
    }
}

/// The P2TR `script_pubkey` for `internal_key` with no script tree (BIP341 tweak with an empty
/// merkle root, as BIP86 wallets and the group use).
pub fn p2tr_script(internal_key: XOnlyPublicKey) -> ScriptBuf {
    ScriptBuf::new_p2tr(secp(), internal_key, None)
}

/// The output key of a P2TR `script_pubkey` (the already-tweaked key signatures verify against),
/// or `None` if the script is not P2TR or its key is not on the curve.
pub fn output_key(script_pubkey: &Script) -> Option<XOnlyPublicKey> {
    if !script_pubkey.is_p2tr() {
        return None;
    }
    XOnlyPublicKey::from_slice(script_pubkey.as_bytes().get(2..34)?).ok()
}

/// A version-2 transaction without signatures: inputs with empty witnesses and final sequence
/// numbers (so a zero lock time is irrelevant), outputs as given.
pub fn unsigned_transaction(inputs: &[OutPoint], outputs: Vec<TxOut>) -> Transaction {
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: inputs
            .iter()
            .map(|previous_output| TxIn {
                previous_output: *previous_output,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            })
            .collect(),
        output: outputs,
    }
}

/// The BIP341 key-path sighash of input `input_index`, committing to all `prevouts` (one per
/// input, in input order).
pub fn key_spend_sighash(
    tx: &Transaction,
    input_index: usize,
    prevouts: &[TxOut],
    sighash_type: TapSighashType,
) -> Result<TapSighash, SignError> {
    if input_index >= tx.input.len() {
        return Err(SignError::InputIndex { index: input_index, inputs: tx.input.len() });
    }
    if prevouts.len() != tx.input.len() {
        return Err(SignError::PrevoutCount { prevouts: prevouts.len(), inputs: tx.input.len() });
    }
    Ok(SighashCache::new(tx).taproot_key_spend_signature_hash(input_index, &Prevouts::All(prevouts), sighash_type)?)
}

/// Signs input `input_index` as a key-path spend by the BIP341-tweaked (no script tree) form of
/// `internal`, setting its witness. The key is not checked against the prevout: signing with the
/// wrong key is a legitimate thing for a test to want.
pub fn sign_key_spend(
    tx: &mut Transaction,
    input_index: usize,
    prevouts: &[TxOut],
    internal: &Keypair,
    sighash_type: TapSighashType,
    aux_rand: &[u8; 32],
) -> Result<(), SignError> {
    let sighash = key_spend_sighash(tx, input_index, prevouts, sighash_type)?;
    let witness = key_spend_witness(sighash, internal, sighash_type, aux_rand);
    tx.input[input_index].witness = witness;
    Ok(())
}

/// Signs every input with the same key (`SIGHASH_DEFAULT`), deriving each input's BIP340 aux
/// randomness from `aux_rand` and the input index.
pub fn sign_all_key_spends(
    tx: &mut Transaction,
    prevouts: &[TxOut],
    internal: &Keypair,
    aux_rand: &[u8; 32],
) -> Result<(), SignError> {
    if prevouts.len() != tx.input.len() {
        return Err(SignError::PrevoutCount { prevouts: prevouts.len(), inputs: tx.input.len() });
    }
    // Witnesses are not part of the sighash, so every sighash can be taken first.
    let mut cache = SighashCache::new(&*tx);
    let mut witnesses = Vec::with_capacity(prevouts.len());
    for index in 0..prevouts.len() {
        let sighash =
            cache.taproot_key_spend_signature_hash(index, &Prevouts::All(prevouts), TapSighashType::Default)?;
        let aux = input_aux(aux_rand, index);
        witnesses.push(key_spend_witness(sighash, internal, TapSighashType::Default, &aux));
    }
    for (input, witness) in tx.input.iter_mut().zip(witnesses) {
        input.witness = witness;
    }
    Ok(())
}

/// Builds and signs a transaction spending `inputs` (outpoints with the outputs they spend, all
/// controlled by `internal`'s BIP341-tweaked key) to `outputs`.
pub fn spend_key_path(
    inputs: &[(OutPoint, TxOut)],
    outputs: Vec<TxOut>,
    internal: &Keypair,
    aux_rand: &[u8; 32],
) -> Result<Transaction, SignError> {
    let outpoints: Vec<OutPoint> = inputs.iter().map(|(outpoint, _)| *outpoint).collect();
    let prevouts: Vec<TxOut> = inputs.iter().map(|(_, txout)| txout.clone()).collect();
    let mut tx = unsigned_transaction(&outpoints, outputs);
    sign_all_key_spends(&mut tx, &prevouts, internal, aux_rand)?;
    Ok(tx)
}

fn key_spend_witness(
    sighash: TapSighash,
    internal: &Keypair,
    sighash_type: TapSighashType,
    aux_rand: &[u8; 32],
) -> Witness {
    let tweaked = internal.tap_tweak(secp(), None).to_keypair();
    let message = Message::from_digest(sighash.to_byte_array());
    let signature = secp().sign_schnorr_with_aux_rand(&message, &tweaked, aux_rand);
    Witness::p2tr_key_spend(&taproot::Signature { signature, sighash_type })
}

fn input_aux(aux_rand: &[u8; 32], index: usize) -> [u8; 32] {
    Sha256::new().chain_update(aux_rand).chain_update((index as u64).to_le_bytes()).finalize().into()
}
