//! The external chain of a simulated run and the workload on it: blocks, deposits with and
//! without InInstructions, and reorganisations.

use mock_chains::bitcoin::{Depositor as BitcoinDepositor, MockBitcoin};
use mock_chains::monero::{Depositor as MoneroDepositor, MockMonero, MoneroConfig};
use processor_core::chain::instruction::encode_instruction;
use processor_core::chain::monero::{group_address, MoneroBlockData};
use processor_core::ids::ExternalChain;
use processor_core::messages::{ChainPublicKey, GroupKeys, InInstruction};

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
    /// The blocks the last shallow reorganisation replaced, until the node faults take them.
    replaced: Option<ReplacedBlocks>,
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
        SimChain { mock: Mock::Bitcoin(bitcoin, depositor), deposits: 0, reorgs: 0, replaced: None }
    }

    pub fn monero(seed: u64) -> SimChain {
        let mut monero = MockMonero::with_config(seed, MoneroConfig { coinbase_lock: 2, ..MoneroConfig::default() });
        let depositor = MoneroDepositor::new(seed ^ 0x5eed);
        for _ in 0..20 {
            monero.mine_to(&depositor.address());
        }
        SimChain { mock: Mock::Monero(monero, depositor), deposits: 0, reorgs: 0, replaced: None }
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
                let accepted = chain.submit(transaction).is_ok();
                if !accepted {
                    depositor.forget_pending();
                }
                accepted
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
    pub fn publish(&mut self, transaction: &[u8]) -> Result<(), String> {
        match &mut self.mock {
            Mock::Bitcoin(chain, _) => {
                let transaction = bitcoin::consensus::deserialize(transaction).map_err(|e| e.to_string())?;
                chain.submit(transaction).map(|_| ()).map_err(|e| e.to_string())
            }
            Mock::Monero(chain, _) => {
                let transaction =
                    monero_wallet::transaction::Transaction::read(&mut &*transaction).map_err(|e| e.to_string())?;
                chain.submit(transaction).map(|_| ()).map_err(|e| format!("{e:?}"))
            }
        }
    }

    pub fn reorg(&mut self, depth: usize) -> bool {
        let tip = self.tip();
        let first_height = (tip + 1).saturating_sub(depth as u64);
        // Kept for nodes that stay on them; a deeper reorganisation replaces final blocks, which
        // no node keeps serving here.
        let replaced = (depth as u64 <= super::CONFIRMATIONS && first_height > 0).then(|| ReplacedBlocks {
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
