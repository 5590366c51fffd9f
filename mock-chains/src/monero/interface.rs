//! monero-interface traits over [`MockMonero`], so monero-wallet (decoy selection, scanning,
//! fee rates, publishing) runs against the mock unchanged.
//!
//! Only the "unvalidated" traits are implemented; monero-interface's blanket impls derive the
//! validated ones (`ProvidesDecoys`, `ProvidesOutputs`, `ProvidesScannableBlocks`, ...) and re-check
//! what the mock returns. Every future is ready on creation: results are computed eagerly.

use core::future::{ready, Future};
use core::ops::{Bound, Range, RangeBounds, RangeInclusive};

use monero_wallet::{
    block::Block,
    ed25519::Point,
    interface::{
        EvaluateUnlocked, FeeError, FeePriority, FeeRate, InterfaceError, ProvidesBlockchainMeta,
        ProvidesUnvalidatedBlockchain, ProvidesUnvalidatedDecoys, ProvidesUnvalidatedFeeRates,
        ProvidesUnvalidatedOutputs, ProvidesUnvalidatedScannableBlocks, ProvidesUnvalidatedTransactions,
        PrunedTransactionWithPrunableHash, PublishTransaction, PublishTransactionError, RingCtOutputInformation,
        TransactionsError, UnvalidatedScannableBlock,
    },
    transaction::{Pruned, Transaction},
};

use super::chain::{BlockRecord, MockMonero};

/// The mock's minimum fee rate (per weight unit, rounded up to a multiple of the mask), roughly
/// mainnet's. `submit` requires at least this; deposits pay exactly this.
pub fn fee_rate() -> FeeRate {
    FeeRate::new(20_000, 10_000).expect("both parts are non-zero")
}

fn not_found(what: &str) -> InterfaceError {
    InterfaceError::InterfaceError(format!("{what} not found"))
}

fn pruned(tx: &Transaction) -> Option<PrunedTransactionWithPrunableHash> {
    PrunedTransactionWithPrunableHash::new(Transaction::<Pruned>::from(tx.clone()), tx.prunable_hash())
}

impl MockMonero {
    fn record_by_number(&self, number: usize) -> Result<&BlockRecord, InterfaceError> {
        self.state().record(number).ok_or_else(|| not_found(&format!("block #{number}")))
    }

    fn record_by_hash(&self, hash: &[u8; 32]) -> Result<&BlockRecord, InterfaceError> {
        self.state()
            .height_of(hash)
            .and_then(|h| self.state().record(h))
            .ok_or_else(|| not_found(&format!("block {}", hex::encode(hash))))
    }

    fn unvalidated_scannable(&self, record: &BlockRecord) -> Result<UnvalidatedScannableBlock, InterfaceError> {
        let transactions = record
            .txs
            .iter()
            .map(|p| pruned(&p.tx))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| InterfaceError::InternalError("a block holds a v1 transaction".to_owned()))?;
        Ok(UnvalidatedScannableBlock {
            block: record.block.clone(),
            transactions,
            output_index_for_first_ringct_output: (record.output_count > 0).then_some(record.first_output),
        })
    }

    fn tx_or_not_found(&self, hash: [u8; 32]) -> Result<Transaction, TransactionsError> {
        self.find_transaction(&hash).ok_or(TransactionsError::TransactionNotFound)
    }

    /// Block numbers covered by `range`; past the tip is an error, as with monerod.
    fn block_range(&self, range: &impl RangeBounds<usize>) -> Result<Range<usize>, InterfaceError> {
        let tip = self.tip_height();
        let start = match range.start_bound() {
            Bound::Included(s) => *s,
            Bound::Excluded(s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(e) => e.saturating_add(1),
            Bound::Excluded(e) => *e,
            Bound::Unbounded => tip + 1,
        };
        if end > tip + 1 {
            return Err(InterfaceError::InterfaceError(format!("block #{} is beyond the tip #{tip}", end - 1)));
        }
        Ok(start..end)
    }
}

impl ProvidesBlockchainMeta for MockMonero {
    fn latest_block_number(&self) -> impl Send + Future<Output = Result<usize, InterfaceError>> {
        ready(Ok(self.tip_height()))
    }
}

impl ProvidesUnvalidatedBlockchain for MockMonero {
    fn contiguous_blocks(
        &self,
        range: RangeInclusive<usize>,
    ) -> impl Send + Future<Output = Result<Vec<Block>, InterfaceError>> {
        ready(range.map(|n| self.record_by_number(n).map(|r| r.block.clone())).collect())
    }

    fn block(&self, hash: [u8; 32]) -> impl Send + Future<Output = Result<Block, InterfaceError>> {
        ready(self.record_by_hash(&hash).map(|r| r.block.clone()))
    }

    fn block_by_number(&self, number: usize) -> impl Send + Future<Output = Result<Block, InterfaceError>> {
        ready(self.record_by_number(number).map(|r| r.block.clone()))
    }

    fn block_hash(&self, number: usize) -> impl Send + Future<Output = Result<[u8; 32], InterfaceError>> {
        ready(self.record_by_number(number).map(|r| r.hash))
    }
}

impl ProvidesUnvalidatedTransactions for MockMonero {
    fn transactions(
        &self,
        hashes: &[[u8; 32]],
    ) -> impl Send + Future<Output = Result<Vec<Transaction>, TransactionsError>> {
        ready(hashes.iter().map(|h| self.tx_or_not_found(*h)).collect())
    }

    fn pruned_transactions(
        &self,
        hashes: &[[u8; 32]],
    ) -> impl Send + Future<Output = Result<Vec<PrunedTransactionWithPrunableHash>, TransactionsError>> {
        ready(
            hashes
                .iter()
                .map(|h| {
                    let tx = self.tx_or_not_found(*h)?;
                    // V1 transactions never enter the mock.
                    pruned(&tx).ok_or(TransactionsError::PrunedTransaction)
                })
                .collect(),
        )
    }

    fn transaction(&self, hash: [u8; 32]) -> impl Send + Future<Output = Result<Transaction, TransactionsError>> {
        ready(self.tx_or_not_found(hash))
    }

    fn pruned_transaction(
        &self,
        hash: [u8; 32],
    ) -> impl Send + Future<Output = Result<PrunedTransactionWithPrunableHash, TransactionsError>> {
        ready(self.tx_or_not_found(hash).and_then(|tx| pruned(&tx).ok_or(TransactionsError::PrunedTransaction)))
    }
}

impl ProvidesUnvalidatedOutputs for MockMonero {
    fn output_indexes(&self, hash: [u8; 32]) -> impl Send + Future<Output = Result<Vec<u64>, InterfaceError>> {
        ready(self.tx_output_indexes(&hash).ok_or_else(|| not_found(&format!("transaction {}", hex::encode(hash)))))
    }

    fn ringct_outputs(
        &self,
        indexes: &[u64],
    ) -> impl Send + Future<Output = Result<Vec<RingCtOutputInformation>, InterfaceError>> {
        let tip = self.tip_height();
        ready(
            indexes
                .iter()
                .map(|i| {
                    let out = self.state().output(*i).ok_or_else(|| not_found(&format!("output {i}")))?;
                    Ok(RingCtOutputInformation {
                        block_number: out.height,
                        unlocked: self.state().unlocked(out, tip, true),
                        key: out.key,
                        commitment: out.commitment,
                        transaction: out.transaction,
                    })
                })
                .collect(),
        )
    }
}

impl ProvidesUnvalidatedDecoys for MockMonero {
    fn ringct_output_distribution(
        &self,
        range: impl Send + RangeBounds<usize>,
    ) -> impl Send + Future<Output = Result<Vec<u64>, InterfaceError>> {
        ready(self.block_range(&range).map(|range| {
            range.filter_map(|h| self.state().record(h)).map(|r| r.first_output + r.output_count).collect()
        }))
    }

    fn unlocked_ringct_outputs(
        &self,
        indexes: &[u64],
        evaluate_unlocked: EvaluateUnlocked,
    ) -> impl Send + Future<Output = Result<Vec<Option<[Point; 2]>>, TransactionsError>> {
        let (tip, time_locks) = match evaluate_unlocked {
            EvaluateUnlocked::Normal => (self.tip_height(), true),
            EvaluateUnlocked::FingerprintableDeterministic { block_number } => (block_number, false),
        };
        ready(
            indexes
                .iter()
                .map(|i| {
                    let out = self
                        .state()
                        .output(*i)
                        .ok_or_else(|| TransactionsError::from(not_found(&format!("output {i}"))))?;
                    Ok(match out.key_point {
                        Some(key) if self.state().unlocked(out, tip, time_locks) => Some([key, out.commitment]),
                        _ => None,
                    })
                })
                .collect(),
        )
    }
}

impl ProvidesUnvalidatedScannableBlocks for MockMonero {
    fn contiguous_scannable_blocks(
        &self,
        range: RangeInclusive<usize>,
    ) -> impl Send + Future<Output = Result<Vec<UnvalidatedScannableBlock>, InterfaceError>> {
        ready(range.map(|n| self.unvalidated_scannable(self.record_by_number(n)?)).collect())
    }

    fn scannable_block(
        &self,
        hash: [u8; 32],
    ) -> impl Send + Future<Output = Result<UnvalidatedScannableBlock, InterfaceError>> {
        ready(self.record_by_hash(&hash).and_then(|r| self.unvalidated_scannable(r)))
    }

    fn scannable_block_by_number(
        &self,
        number: usize,
    ) -> impl Send + Future<Output = Result<UnvalidatedScannableBlock, InterfaceError>> {
        ready(self.record_by_number(number).and_then(|r| self.unvalidated_scannable(r)))
    }
}

impl ProvidesUnvalidatedFeeRates for MockMonero {
    fn fee_rate(&self, priority: FeePriority) -> impl Send + Future<Output = Result<FeeRate, FeeError>> {
        // monerod's multipliers for the four standard priorities.
        let multiplier = match priority.to_u32() {
            0 | 1 => 1,
            2 => 4,
            3 => 20,
            _ => 166,
        };
        let base = fee_rate();
        ready(FeeRate::new(base.per_weight() * multiplier, 10_000).ok_or(FeeError::InvalidFee))
    }
}

impl PublishTransaction for MockMonero {
    fn publish_transaction(
        &self,
        transaction: &Transaction,
    ) -> impl Send + Future<Output = Result<(), PublishTransactionError>> {
        ready(
            self.publish(transaction)
                .map(|_| ())
                .map_err(|e| PublishTransactionError::TransactionRejected(e.to_string())),
        )
    }
}
