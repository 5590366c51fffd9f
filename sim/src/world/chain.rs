//! The external chain of a simulated run and the workload on it: blocks, deposits with and
//! without InInstructions, and reorganisations.

use mock_chains::bitcoin::{Depositor, MockBitcoin};
use processor::chain::instruction::encode_instruction;
use processor::messages::{ChainPublicKey, GroupKeys, InInstruction};

/// A simulated chain, as processors read it and as the workload drives it.
pub(crate) struct SimChain {
    bitcoin: MockBitcoin,
    depositor: Depositor,
    pub deposits: u64,
    pub reorgs: u64,
}

impl SimChain {
    pub fn bitcoin(seed: u64) -> SimChain {
        let mut bitcoin = MockBitcoin::new(seed);
        bitcoin.set_coinbase_maturity(1);
        let depositor = Depositor::new(seed ^ 0x5eed);
        for _ in 0 .. 20 {
            bitcoin.mine_to(depositor.script_pubkey());
        }
        SimChain { bitcoin, depositor, deposits: 0, reorgs: 0 }
    }

    pub fn tip(&self) -> u64 {
        self.bitcoin.tip_height()
    }

    /// The id of the block at `height` on the best chain (cheap: no encoding).
    pub fn block_id(&self, height: u64) -> Option<[u8; 32]> {
        use bitcoin::hashes::Hash;
        self.bitcoin.block_hash(height).map(|hash| hash.to_byte_array())
    }

    pub fn block_bytes(&self, height: u64) -> Option<Vec<u8>> {
        self.bitcoin.block_bytes(height)
    }

    /// Mines a block; every tenth pays the depositor so it never runs dry.
    pub fn mine(&mut self) {
        if self.bitcoin.tip_height() % 10 == 0 {
            let script = self.depositor.script_pubkey().to_owned();
            self.bitcoin.mine_to(&script);
        } else {
            self.bitcoin.mine();
        }
    }

    /// Pays `amount` to the group's key, with an InInstruction crediting `account` if given.
    pub fn deposit(&mut self, keys: &GroupKeys, amount: u64, account: Option<[u8; 32]>) -> bool {
        let ChainPublicKey::Bitcoin { internal_key } = keys.chain else { return false };
        let Ok(key) = bitcoin::key::XOnlyPublicKey::from_slice(&internal_key) else { return false };
        let script = mock_chains::bitcoin::p2tr_script(key);
        let instruction = account.map(|account| encode_instruction(&InInstruction { account }));
        let built = self.depositor.deposit(&self.bitcoin, &script, bitcoin::Amount::from_sat(amount), instruction.as_deref());
        let Ok(transaction) = built else { return false };
        let accepted = self.bitcoin.submit(transaction.clone()).is_ok();
        if !accepted {
            self.depositor.release(&transaction);
        }
        self.deposits += u64::from(accepted);
        accepted
    }

    pub fn reorg(&mut self, depth: usize) -> bool {
        let done = self.bitcoin.reorg(depth).is_ok();
        self.reorgs += u64::from(done);
        done
    }
}
