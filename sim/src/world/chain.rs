//! The external chain of a simulated run and the workload on it: blocks, deposits with and
//! without InInstructions, and reorganisations.

use mock_chains::bitcoin::{Depositor as BitcoinDepositor, MockBitcoin};
use mock_chains::monero::{Depositor as MoneroDepositor, MockMonero, MoneroConfig};
use monero_wallet::ed25519::Scalar;
use processor_core::chain::instruction::encode_instruction;
use processor_core::chain::monero::{group_address, MoneroBlockData};
use processor_core::ids::ExternalChain;
use processor_core::messages::{ChainPublicKey, GroupKeys, InInstruction, OutputKind};
use std::collections::BTreeSet;

// One value per run: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Mock {
    Bitcoin(MockBitcoin, BitcoinDepositor),
    Monero(MockMonero, MoneroDepositor),
}

/// A simulated chain, as processors read it and as the workload drives it.
pub(crate) struct SimChain {
    mock: Mock,
    pub deposits: u64,
    pub reorgs: u64,
    /// What the hostile depositors did, for the checks.
    pub hostile: HostileLedger,
    /// The blocks the last shallow reorganisation replaced, until the node faults take them.
    replaced: Option<ReplacedBlocks>,
}

/// What the hostile depositors sent, as the checks need to know it without trusting the
/// processor's own decoding.
#[derive(Default)]
pub(crate) struct HostileLedger {
    /// Transactions (txid; Monero: hash) whose outputs to the group must be credited to no one:
    /// malformed instruction data, payments to the group's change address.
    pub uncredited: BTreeSet<[u8; 32]>,
    /// A burning-bug deposit's transaction key whose twin is still to come, and how many
    /// payments it made (Monero).
    pub twin_key: Option<(Scalar, usize)>,
    /// What was accepted, by kind.
    pub counts: crate::scenario::HostileCounts,
}

/// Why the chain refused a transaction a processor published.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The chain's relay policy: no node would relay it, however often it is published.
    Policy(String),
    /// The chain's state: already known, an input spent or gone after a reorganisation, ...
    State(String),
}

impl Refusal {
    /// What the chain said.
    pub fn reason(&self) -> &str {
        match self {
            Refusal::Policy(reason) | Refusal::State(reason) => reason,
        }
    }
}

/// The blocks a reorganisation no deeper than the confirmations replaced, as processors were
/// served them: a node that has not switched to the best chain yet keeps serving them.
#[derive(Debug)]
pub(crate) struct ReplacedBlocks {
    /// The height of the first replaced block; below it the best chain is unchanged.
    pub first_height: u64,
    /// The replaced blocks, from `first_height` up.
    pub blocks: Vec<Vec<u8>>,
}

impl ReplacedBlocks {
    /// The tip the replaced chain had.
    pub fn tip(&self) -> u64 {
        self.first_height + self.blocks.len().saturating_sub(1) as u64
    }
}

impl SimChain {
    pub fn bitcoin(seed: u64) -> SimChain {
        let mut bitcoin = MockBitcoin::new(seed);
        bitcoin.set_coinbase_maturity(1);
        let depositor = BitcoinDepositor::new(seed ^ 0x5eed);
        for _ in 0..20 {
            bitcoin.mine_to(depositor.script_pubkey());
        }
        SimChain {
            mock: Mock::Bitcoin(bitcoin, depositor),
            deposits: 0,
            reorgs: 0,
            hostile: HostileLedger::default(),
            replaced: None,
        }
    }

    pub fn monero(seed: u64) -> SimChain {
        let mut monero = MockMonero::with_config(seed, MoneroConfig { coinbase_lock: 2, ..MoneroConfig::default() });
        // Stand-in range proofs: proving a Bulletproof+ for every deposit cost more than anything
        // else in a run, and nothing under test reads a deposit's proof.
        let depositor = MoneroDepositor::new(seed ^ 0x5eed).with_stand_in_range_proofs();
        for _ in 0..20 {
            monero.mine_to(&depositor.address());
        }
        SimChain {
            mock: Mock::Monero(monero, depositor),
            deposits: 0,
            reorgs: 0,
            hostile: HostileLedger::default(),
            replaced: None,
        }
    }

    pub fn tip(&self) -> u64 {
        match &self.mock {
            Mock::Bitcoin(chain, _) => chain.tip_height(),
            Mock::Monero(chain, _) => chain.tip_height() as u64,
        }
    }

    /// The id of the block at `height` on the best chain (cheap: no encoding).
    pub fn block_id(&self, height: u64) -> Option<[u8; 32]> {
        use bitcoin::hashes::Hash;
        match &self.mock {
            Mock::Bitcoin(chain, _) => chain.block_hash(height).map(|hash| hash.to_byte_array()),
            Mock::Monero(chain, _) => chain.block_hash(usize::try_from(height).ok()?),
        }
    }

    /// The block as the chain source hands it to processors.
    pub fn block_bytes(&self, height: u64) -> Option<Vec<u8>> {
        match &self.mock {
            Mock::Bitcoin(chain, _) => chain.block_bytes(height),
            Mock::Monero(chain, _) => {
                let height = usize::try_from(height).ok()?;
                let block = chain.block(height)?;
                let transactions = chain.transactions(height);
                let first = chain.scannable_block_at(height)?.output_index_for_first_ringct_output;
                Some(MoneroBlockData::new(block, transactions.get(1..).unwrap_or_default(), first).encode())
            }
        }
    }

    /// Mines a block; every tenth pays the depositor so it never runs dry.
    pub fn mine(&mut self) {
        let refill = self.tip() % 10 == 0;
        match &mut self.mock {
            Mock::Bitcoin(chain, depositor) if refill => {
                let script = depositor.script_pubkey().to_owned();
                chain.mine_to(&script);
            }
            Mock::Bitcoin(chain, _) => {
                chain.mine();
            }
            Mock::Monero(chain, depositor) if refill => {
                chain.mine_to(&depositor.address());
            }
            Mock::Monero(chain, _) => {
                chain.mine();
            }
        }
    }

    /// Pays `amount` to the group's key, with an InInstruction crediting `account` if given.
    pub fn deposit(&mut self, keys: &GroupKeys, amount: u64, account: Option<[u8; 32]>) -> bool {
        let instruction = account.map(|account| encode_instruction(&InInstruction { account }));
        let accepted = match (&mut self.mock, keys.chain) {
            (Mock::Bitcoin(chain, depositor), ChainPublicKey::Bitcoin { internal_key }) => {
                let Ok(key) = bitcoin::key::XOnlyPublicKey::from_slice(&internal_key) else { return false };
                let script = mock_chains::bitcoin::p2tr_script(key);
                let built =
                    depositor.deposit(chain, &script, bitcoin::Amount::from_sat(amount), instruction.as_deref());
                let Ok(transaction) = built else { return false };
                let accepted = chain.submit(transaction.clone()).is_ok();
                if !accepted {
                    depositor.release(&transaction);
                }
                accepted
            }
            (Mock::Monero(chain, depositor), ChainPublicKey::Monero { spend_key }) => {
                let Ok(address) = group_address(&spend_key, monero_wallet::address::Network::Mainnet) else {
                    return false;
                };
                let Ok(transaction) = depositor.deposit(chain, &address, amount, instruction.as_deref()) else {
                    return false;
                };
                submit_monero(chain, depositor, transaction).is_some()
            }
            _ => false,
        };
        self.deposits += u64::from(accepted);
        accepted
    }

    /// A deposit amount typical of the chain.
    /// A hostile depositor's amount: below the chain's minimum deposit, at or above what the
    /// chain relays (Bitcoin's P2TR dust limit, 330 sat).
    pub fn dust_amount(&self, draw: u64) -> u64 {
        let (low, minimum) = match &self.mock {
            Mock::Bitcoin(..) => (330, processor_core::scanner::minimum_deposit(ExternalChain::Bitcoin).0),
            Mock::Monero(..) => (1_000_000, processor_core::scanner::minimum_deposit(ExternalChain::Monero).0),
        };
        low + draw % (minimum - low)
    }

    pub fn deposit_amount(&self, draw: u64) -> u64 {
        match &self.mock {
            Mock::Bitcoin(..) => 10_000 + draw % 1_000_000,
            Mock::Monero(..) => 1_000_000_000 + draw % 100_000_000_000,
        }
    }

    /// The fee rate the chain's nodes would quote (per vbyte for Bitcoin, per byte for Monero).
    pub fn fee_rate(&self) -> u64 {
        match &self.mock {
            Mock::Bitcoin(chain, _) => chain.fee_rate_sat_per_vb(),
            Mock::Monero(..) => 20_000,
        }
    }

    /// A Burn destination: a payable address of the chain, or (if `!valid`) something that is
    /// not one.
    pub fn burn_destination(&self, seed: u64, valid: bool) -> Vec<u8> {
        match (&self.mock, valid) {
            (Mock::Bitcoin(..), true) => BitcoinDepositor::new(seed).script_pubkey().to_bytes(),
            (Mock::Bitcoin(..), false) => vec![0x6a, 0x01, 0x00],
            (Mock::Monero(..), true) => {
                mock_chains::monero::WalletKeys::from_seed(seed).address().to_string().into_bytes()
            }
            (Mock::Monero(..), false) => b"not an address".to_vec(),
        }
    }

    /// Submits a signed transaction to the mempool.
    pub fn publish(&mut self, transaction: &[u8]) -> Result<(), Refusal> {
        use mock_chains::bitcoin::TxRejected as Bitcoin;
        use mock_chains::monero::TxRejected as Monero;
        match &mut self.mock {
            Mock::Bitcoin(chain, _) => {
                let transaction =
                    bitcoin::consensus::deserialize(transaction).map_err(|e| Refusal::State(e.to_string()))?;
                chain.submit(transaction).map(|_| ()).map_err(|e| match e {
                    Bitcoin::Dust { .. }
                    | Bitcoin::NonStandardScript { .. }
                    | Bitcoin::DataCarrierTooLarge { .. }
                    | Bitcoin::MultipleDataCarriers
                    | Bitcoin::FeeBelowMinimumRelay { .. }
                    | Bitcoin::TooLarge { .. } => Refusal::Policy(e.to_string()),
                    other => Refusal::State(other.to_string()),
                })
            }
            Mock::Monero(chain, _) => {
                let transaction = monero_wallet::transaction::Transaction::read(&mut &*transaction)
                    .map_err(|e| Refusal::State(e.to_string()))?;
                chain.submit(transaction).map(|_| ()).map_err(|e| match e {
                    Monero::ExtraTooLarge(_) | Monero::FeeTooLow { .. } => Refusal::Policy(format!("{e:?}")),
                    other => Refusal::State(format!("{other:?}")),
                })
            }
        }
    }

    /// Replaces the top `depth` blocks; a shallow reorganisation (`shallow`: no deeper than the
    /// confirmations) keeps the replaced blocks for nodes that stay on them. A deeper one replaces
    /// final blocks, which no node keeps serving here.
    pub fn reorg(&mut self, depth: usize, shallow: bool) -> bool {
        let tip = self.tip();
        let first_height = (tip + 1).saturating_sub(depth as u64);
        let replaced = (shallow && first_height > 0).then(|| ReplacedBlocks {
            first_height,
            blocks: (first_height..=tip).filter_map(|height| self.block_bytes(height)).collect(),
        });
        let done = match &mut self.mock {
            Mock::Bitcoin(chain, _) => chain.reorg(depth).is_ok(),
            Mock::Monero(chain, _) => chain.reorg(depth).is_ok(),
        };
        self.reorgs += u64::from(done);
        if done {
            self.replaced = replaced;
        }
        done
    }

    /// The blocks the last shallow reorganisation replaced, once.
    pub fn take_replaced(&mut self) -> Option<ReplacedBlocks> {
        self.replaced.take()
    }

    /// Selects a Monero plan's rings as a node whose chain ends at `tip` would: from blocks up to
    /// `tip` only (a node behind the decoy height cannot answer).
    pub fn select_decoys_as_of(
        &self,
        request: &processor_core::transaction::monero::DecoyRequest,
        tip: u64,
    ) -> Result<Vec<Vec<u8>>, String> {
        match &self.mock {
            Mock::Monero(chain, _) => {
                let view = MoneroAsOf { chain, tip: usize::try_from(tip).map_err(|e| e.to_string())? };
                mock_chains::monero::block_on(processor_core::transaction::monero::select_decoys(&view, request))
                    .ok_or("the mock chain's futures did not complete")?
            }
            Mock::Bitcoin(..) => Err("Bitcoin has no rings".into()),
        }
    }
}

/// The mock Monero chain as a node whose chain ends at `tip` serves it for ring selection.
struct MoneroAsOf<'c> {
    chain: &'c MockMonero,
    tip: usize,
}

impl MoneroAsOf<'_> {
    fn beyond(&self, what: String) -> monero_wallet::interface::InterfaceError {
        monero_wallet::interface::InterfaceError::InterfaceError(format!(
            "{what} is beyond this node's tip #{}",
            self.tip
        ))
    }
}

impl monero_wallet::interface::ProvidesBlockchainMeta for MoneroAsOf<'_> {
    fn latest_block_number(
        &self,
    ) -> impl Send + core::future::Future<Output = Result<usize, monero_wallet::interface::InterfaceError>> {
        core::future::ready(Ok(self.tip))
    }
}

impl monero_wallet::interface::ProvidesUnvalidatedDecoys for MoneroAsOf<'_> {
    fn ringct_output_distribution(
        &self,
        range: impl Send + core::ops::RangeBounds<usize>,
    ) -> impl Send + core::future::Future<Output = Result<Vec<u64>, monero_wallet::interface::InterfaceError>> {
        use core::ops::Bound;
        let start = match range.start_bound() {
            Bound::Included(start) => *start,
            Bound::Excluded(start) => start.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(end) => end.saturating_add(1),
            Bound::Excluded(end) => *end,
            Bound::Unbounded => self.tip + 1,
        };
        let result = if end > self.tip + 1 {
            Err(self.beyond(format!("block #{}", end - 1)))
        } else {
            let distribution =
                <MockMonero as monero_wallet::interface::ProvidesUnvalidatedDecoys>::ringct_output_distribution(
                    self.chain,
                    start..end,
                );
            mock_chains::monero::block_on(distribution).unwrap_or_else(|| {
                Err(monero_wallet::interface::InterfaceError::InternalError("a mock future is pending".into()))
            })
        };
        core::future::ready(result)
    }

    fn unlocked_ringct_outputs(
        &self,
        indexes: &[u64],
        evaluate_unlocked: monero_wallet::interface::EvaluateUnlocked,
    ) -> impl Send
           + core::future::Future<
        Output = Result<Vec<Option<[monero_wallet::ed25519::Point; 2]>>, monero_wallet::interface::TransactionsError>,
    > {
        let unknown =
            indexes.iter().find(|index| self.chain.output(**index).is_none_or(|output| output.height > self.tip));
        let result = match unknown {
            Some(index) => Err(self.beyond(format!("output {index}")).into()),
            None => {
                let outputs =
                    <MockMonero as monero_wallet::interface::ProvidesUnvalidatedDecoys>::unlocked_ringct_outputs(
                        self.chain,
                        indexes,
                        evaluate_unlocked,
                    );
                mock_chains::monero::block_on(outputs).unwrap_or_else(|| {
                    Err(monero_wallet::interface::InterfaceError::InternalError("a mock future is pending".into())
                        .into())
                })
            }
        };
        core::future::ready(result)
    }
}

/// How a hostile depositor's instruction data is malformed.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Malformed {
    /// The version byte and part of an instruction.
    Truncated,
    /// A whole instruction under another version byte.
    OtherVersion,
    /// A whole instruction followed by more bytes (within the chain's data limit).
    TrailingBytes,
    /// Random bytes of any length but an instruction's.
    RandomBytes,
    /// Bitcoin: an instruction split over two pushes of one OP_RETURN.
    TwoPushes,
    /// Monero: an instruction padded beyond the processor's 80-byte bound (one extra chunk
    /// holds 254).
    Oversized,
}

/// The hostile depositors' side of the chain: burning-bug twins, payments to the group's change
/// address, blocks of thousands of deposits, malformed instruction data. Each returns the id
/// of the transaction the chain accepted (txid; Monero: hash), if it did.
impl SimChain {
    /// Monero's burning bug: when no twin is pending, a deposit under a fresh transaction key
    /// (drawn from `draw`) paying one or both of `amounts`; else that key's twin paying the
    /// other count. Either way output 0 of the second repeats the first's one-time key (with its
    /// own amount) and an output 1 of the group's is fresh (the first's index 1 paid the
    /// depositor's change). Returns the accepted transaction's hash and whether it was the twin;
    /// `None` on Bitcoin.
    pub fn key_reusing_deposit(
        &mut self,
        keys: &GroupKeys,
        draw: u64,
        amounts: [u64; 2],
        account: Option<[u8; 32]>,
    ) -> Option<([u8; 32], bool)> {
        let (Mock::Monero(chain, depositor), ChainPublicKey::Monero { spend_key }) = (&mut self.mock, keys.chain)
        else {
            return None;
        };
        let address = group_address(&spend_key, monero_wallet::address::Network::Mainnet).ok()?;
        let instruction = account.map(|account| encode_instruction(&InInstruction { account }));
        let (tx_key, count, twin) = match self.hostile.twin_key.take() {
            Some((tx_key, first_count)) => (tx_key, 3 - first_count, true),
            None => (Scalar::hash(draw.to_le_bytes()), 1 + (draw >> 63) as usize, false),
        };
        let payments: Vec<_> = amounts[..count].iter().map(|amount| (address, *amount)).collect();
        let built = depositor.deposit_with_key(chain, &payments, instruction.as_deref(), tx_key);
        let accepted = built.ok().and_then(|transaction| submit_monero(chain, depositor, transaction));
        if !twin && accepted.is_some() {
            self.hostile.twin_key = Some((tx_key, count));
        }
        self.deposits += u64::from(accepted.is_some()) * payments.len() as u64;
        self.hostile.counts.key_reusing += u64::from(accepted.is_some());
        accepted.map(|hash| (hash, twin))
    }

    /// Whether a burning-bug deposit waits for its twin.
    pub fn twin_pending(&self) -> bool {
        self.hostile.twin_key.is_some()
    }

    /// A payment of `amount` to the group's change address, with an InInstruction crediting
    /// `account` if given: credited to no one (recorded so).
    pub fn change_address_deposit(
        &mut self,
        keys: &GroupKeys,
        amount: u64,
        account: Option<[u8; 32]>,
    ) -> Option<[u8; 32]> {
        let instruction = account.map(|account| encode_instruction(&InInstruction { account }));
        let accepted = match (&mut self.mock, keys.chain) {
            (Mock::Bitcoin(chain, depositor), ChainPublicKey::Bitcoin { internal_key }) => {
                let script = processor_core::chain::bitcoin::script_of(&internal_key, OutputKind::Change).ok()?;
                let built =
                    depositor.deposit(chain, &script, bitcoin::Amount::from_sat(amount), instruction.as_deref());
                submit_bitcoin(chain, depositor, built.ok()?)
            }
            (Mock::Monero(chain, depositor), ChainPublicKey::Monero { spend_key }) => {
                let network = monero_wallet::address::Network::Mainnet;
                let address = processor_core::chain::monero::change_address(&spend_key, network).ok()?;
                let built = depositor.deposit(chain, &address, amount, instruction.as_deref());
                submit_monero(chain, depositor, built.ok()?)
            }
            _ => None,
        };
        self.deposits += u64::from(accepted.is_some());
        self.hostile.counts.change_address += u64::from(accepted.is_some());
        self.record_uncredited(accepted)
    }

    /// One transaction paying the group's deposit address each of `amounts` (Monero: at most
    /// [`mock_chains::monero::MAX_PAYMENTS`]), every output carrying the one InInstruction
    /// crediting `account` if given.
    pub fn many_output_deposit(
        &mut self,
        keys: &GroupKeys,
        amounts: &[u64],
        account: Option<[u8; 32]>,
    ) -> Option<[u8; 32]> {
        let instruction = account.map(|account| encode_instruction(&InInstruction { account }));
        let accepted = match (&mut self.mock, keys.chain) {
            (Mock::Bitcoin(chain, depositor), ChainPublicKey::Bitcoin { internal_key }) => {
                let script = processor_core::chain::bitcoin::group_script(&internal_key).ok()?;
                let mut outputs: Vec<bitcoin::TxOut> = amounts
                    .iter()
                    .map(|amount| bitcoin::TxOut {
                        value: bitcoin::Amount::from_sat(*amount),
                        script_pubkey: script.clone(),
                    })
                    .collect();
                if let Some(instruction) = instruction {
                    let data = bitcoin::script::PushBytesBuf::try_from(instruction).ok()?;
                    outputs.push(bitcoin::TxOut {
                        value: bitcoin::Amount::ZERO,
                        script_pubkey: bitcoin::ScriptBuf::new_op_return(data),
                    });
                }
                {
                    let built = depositor.pay(chain, outputs).ok()?;
                    submit_bitcoin(chain, depositor, built)
                }
            }
            (Mock::Monero(chain, depositor), ChainPublicKey::Monero { spend_key }) => {
                let address = group_address(&spend_key, monero_wallet::address::Network::Mainnet).ok()?;
                let payments: Vec<_> = amounts.iter().map(|amount| (address, *amount)).collect();
                {
                    let built = depositor.deposit_many(chain, &payments, instruction.as_deref()).ok()?;
                    submit_monero(chain, depositor, built)
                }
            }
            _ => None,
        };
        self.deposits += u64::from(accepted.is_some()) * amounts.len() as u64;
        self.hostile.counts.large_block_deposits += u64::from(accepted.is_some()) * amounts.len() as u64;
        accepted
    }

    /// A deposit of `amount` whose instruction data is malformed as `how` (its bytes drawn from
    /// `draw`): credited to no one (recorded so). The kinds a chain cannot carry (Bitcoin: more
    /// than its 80-byte OP_RETURN; Monero: two pushes) fall back to random bytes.
    pub fn malformed_deposit(&mut self, keys: &GroupKeys, amount: u64, how: Malformed, draw: u64) -> Option<[u8; 32]> {
        use rand_chacha::rand_core::{RngCore, SeedableRng};
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(draw);
        let mut account = [0u8; 32];
        rng.fill_bytes(&mut account);
        let valid = encode_instruction(&InInstruction { account });
        let bitcoin = matches!(self.mock, Mock::Bitcoin(..));
        let limit = if bitcoin { processor_core::chain::instruction::MAX_INSTRUCTION_BYTES } else { 254 };
        let random_length = |rng: &mut rand_chacha::ChaCha20Rng| loop {
            // Every length but an instruction's, so random bytes never decode as one.
            let length = rng.next_u64() as usize % (processor_core::chain::instruction::MAX_INSTRUCTION_BYTES + 1);
            if length != valid.len() {
                return length;
            }
        };
        let how = match how {
            Malformed::TwoPushes if !bitcoin => Malformed::RandomBytes,
            Malformed::Oversized if bitcoin => Malformed::RandomBytes,
            how => how,
        };
        let data = match how {
            Malformed::Truncated => valid[..1 + rng.next_u64() as usize % (valid.len() - 1)].to_vec(),
            Malformed::OtherVersion => {
                let mut data = valid.clone();
                data[0] = 2 + (rng.next_u64() % 254) as u8;
                data
            }
            Malformed::TrailingBytes => {
                let mut data = valid.clone();
                let extra = 1 + rng.next_u64() as usize
                    % (processor_core::chain::instruction::MAX_INSTRUCTION_BYTES - valid.len());
                data.extend((0..extra).map(|_| rng.next_u64() as u8));
                data
            }
            Malformed::RandomBytes => {
                let length = random_length(&mut rng);
                (0..length).map(|_| rng.next_u64() as u8).collect()
            }
            Malformed::TwoPushes => valid.clone(),
            Malformed::Oversized => {
                let length = processor_core::chain::instruction::MAX_INSTRUCTION_BYTES
                    + 1
                    + rng.next_u64() as usize % (limit - 80);
                let mut data = valid.clone();
                data.resize(length, 0);
                data
            }
        };
        let accepted = match (&mut self.mock, keys.chain) {
            (Mock::Bitcoin(chain, depositor), ChainPublicKey::Bitcoin { internal_key }) => {
                let script = processor_core::chain::bitcoin::group_script(&internal_key).ok()?;
                let data_script = if let Malformed::TwoPushes = how {
                    let (first, second) = data.split_at(1 + rng.next_u64() as usize % (data.len() - 1));
                    bitcoin::script::Builder::new()
                        .push_opcode(bitcoin::opcodes::all::OP_RETURN)
                        .push_slice(bitcoin::script::PushBytesBuf::try_from(first.to_vec()).ok()?)
                        .push_slice(bitcoin::script::PushBytesBuf::try_from(second.to_vec()).ok()?)
                        .into_script()
                } else {
                    bitcoin::ScriptBuf::new_op_return(bitcoin::script::PushBytesBuf::try_from(data).ok()?)
                };
                let outputs = vec![
                    bitcoin::TxOut { value: bitcoin::Amount::from_sat(amount), script_pubkey: script },
                    bitcoin::TxOut { value: bitcoin::Amount::ZERO, script_pubkey: data_script },
                ];
                {
                    let built = depositor.pay(chain, outputs).ok()?;
                    submit_bitcoin(chain, depositor, built)
                }
            }
            (Mock::Monero(chain, depositor), ChainPublicKey::Monero { spend_key }) => {
                let address = group_address(&spend_key, monero_wallet::address::Network::Mainnet).ok()?;
                {
                    let built = depositor.deposit(chain, &address, amount, Some(&data)).ok()?;
                    submit_monero(chain, depositor, built)
                }
            }
            _ => None,
        };
        self.deposits += u64::from(accepted.is_some());
        self.hostile.counts.malformed += u64::from(accepted.is_some());
        self.record_uncredited(accepted)
    }

    fn record_uncredited(&mut self, accepted: Option<[u8; 32]>) -> Option<[u8; 32]> {
        if let Some(id) = accepted {
            self.hostile.uncredited.insert(id);
        }
        accepted
    }

    /// A Bitcoin Burn near its destination's dust limit: a P2PKH, P2SH or P2WPKH script (from
    /// `draw`) and an amount from 50 sat below its limit to 1,500 above. `None` on Monero, whose
    /// amounts are hidden and whose dust is one threshold.
    pub fn near_dust_burn(&self, draw: u64) -> Option<(Vec<u8>, u64)> {
        use bitcoin::hashes::Hash;
        if !matches!(self.mock, Mock::Bitcoin(..)) {
            return None;
        }
        let mut hash = [0u8; 20];
        hash[..8].copy_from_slice(&draw.to_le_bytes());
        let script = match draw % 3 {
            0 => bitcoin::ScriptBuf::new_p2pkh(&bitcoin::PubkeyHash::from_byte_array(hash)),
            1 => bitcoin::ScriptBuf::new_p2sh(&bitcoin::ScriptHash::from_byte_array(hash)),
            _ => bitcoin::ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_byte_array(hash)),
        };
        let limit = script.minimal_non_dust().to_sat();
        let amount = limit - 50 + (draw >> 8) % 1_550;
        Some((script.to_bytes(), amount))
    }
}

fn submit_bitcoin(
    chain: &mut MockBitcoin,
    depositor: &mut BitcoinDepositor,
    transaction: bitcoin::Transaction,
) -> Option<[u8; 32]> {
    use bitcoin::hashes::Hash;
    match chain.submit(transaction.clone()) {
        Ok(txid) => Some(txid.to_byte_array()),
        Err(_) => {
            depositor.release(&transaction);
            None
        }
    }
}

fn submit_monero(
    chain: &mut MockMonero,
    depositor: &mut MoneroDepositor,
    transaction: monero_wallet::transaction::Transaction,
) -> Option<[u8; 32]> {
    // The simulation's depositor only: the processor's transactions come through `publish`.
    let accepted = chain.submit_with_stand_in_range_proof(transaction).ok();
    if accepted.is_none() {
        depositor.forget_pending();
    }
    accepted
}
