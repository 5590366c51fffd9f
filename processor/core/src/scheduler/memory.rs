//! The funds in memory: for tests, benchmarks and inspection.

use super::{spending_order, FeeModel, Funds, Payment, Scheduled, Utxo};
use std::collections::VecDeque;
use std::convert::Infallible;

/// The group's outputs, queue and agreed fee rate held in memory, with the same policy as the
/// stored funds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemFunds {
    /// Available outputs, in spending order.
    utxos: Vec<Utxo>,
    queue: VecDeque<Payment>,
    fee_rate: u64,
}

impl MemFunds {
    /// Funds from their parts (outputs in any order, the queue oldest first).
    pub fn from_parts(utxos: Vec<Utxo>, queue: Vec<Payment>, fee_rate: u64) -> MemFunds {
        let mut funds = MemFunds { utxos: Vec::with_capacity(utxos.len()), queue: queue.into(), fee_rate };
        for utxo in utxos {
            funds.add_output(utxo);
        }
        funds
    }

    /// Adds an output unless it is already known (a redelivered report must not add twice).
    pub fn add_output(&mut self, utxo: Utxo) {
        if let Err(position) = self.utxos.binary_search_by(|probe| spending_order(probe, &utxo)) {
            self.utxos.insert(position, utxo);
        }
    }

    /// The fee rate last agreed by the validator set.
    pub fn fee_rate(&self) -> u64 {
        self.fee_rate
    }

    /// Replaces the agreed fee rate.
    pub fn set_fee_rate(&mut self, fee_rate: u64) {
        self.fee_rate = fee_rate;
    }

    /// Appends a payment to the end of the queue (first in, first out).
    pub fn queue_payment(&mut self, payment: Payment) {
        self.queue.push_back(payment);
    }

    /// The spendable outputs, largest first.
    pub fn available(&self) -> &[Utxo] {
        &self.utxos
    }

    /// The payments waiting to be planned, oldest first.
    pub fn queued(&self) -> impl Iterator<Item = &Payment> {
        self.queue.iter()
    }

    /// Plans as many queued payments as the outputs allow (see the module docs).
    pub fn schedule(&mut self, fee_rate: u64, model: &FeeModel) -> Scheduled {
        match super::schedule(self, fee_rate, model) {
            Ok(scheduled) => scheduled,
            Err(never) => match never {},
        }
    }
}

impl Funds for MemFunds {
    type Error = Infallible;

    fn output_count(&self) -> u64 {
        self.utxos.len() as u64
    }

    fn holdings(&self) -> u128 {
        self.utxos.iter().map(|u| u.amount.0 as u128).sum()
    }

    fn output(&mut self, index: usize) -> Result<Option<Utxo>, Infallible> {
        Ok(self.utxos.get(index).cloned())
    }

    fn take_outputs(&mut self, count: usize) -> Result<Vec<Utxo>, Infallible> {
        Ok(self.utxos.drain(..count.min(self.utxos.len())).collect())
    }

    fn queue_len(&self) -> u64 {
        self.queue.len() as u64
    }

    fn payment(&mut self, index: usize) -> Result<Option<Payment>, Infallible> {
        Ok(self.queue.get(index).cloned())
    }

    fn remove_payment(&mut self, index: usize) -> Result<Option<Payment>, Infallible> {
        Ok(self.queue.remove(index))
    }

    fn take_payments(&mut self, count: usize) -> Result<Vec<Payment>, Infallible> {
        Ok(self.queue.drain(..count.min(self.queue.len())).collect())
    }
}
