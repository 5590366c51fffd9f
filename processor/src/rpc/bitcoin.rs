//! A Bitcoin Core JSON-RPC client (also Litecoin Core's, the same dialect): the calls a
//! Bitcoin chain source needs, each reply validated. A node that lies or returns garbage
//! produces an [`RpcError`], never a panic or a wrong block: a block is checked to hash to the
//! hash the node gave for its height.

use super::http::{base64, post_json};
use super::RpcError;
use bitcoin::hashes::Hash;
use bitcoin::{Block, BlockHash};
use serde_json::{json, Value};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub struct BitcoinRpc {
    /// `host:port`.
    address: String,
    authorization: Option<String>,
    timeout: Duration,
    next_id: AtomicU64,
}

impl BitcoinRpc {
    pub fn new(address: impl Into<String>, credentials: Option<(&str, &str)>, timeout: Duration) -> BitcoinRpc {
        BitcoinRpc {
            address: address.into(),
            authorization: credentials.map(|(user, password)| base64(format!("{user}:{password}").as_bytes())),
            timeout,
            next_id: AtomicU64::new(1),
        }
    }

    /// One JSON-RPC 1.0 call (Bitcoin Core's dialect): the `result`, or the node's `error`.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({ "jsonrpc": "1.0", "id": id, "method": method, "params": params }).to_string();
        let reply = post_json(&self.address, "/", self.authorization.as_deref(), body.as_bytes(), self.timeout).await?;
        let reply: Value =
            serde_json::from_slice(&reply).map_err(|e| RpcError::Malformed(format!("{method}: not JSON: {e}")))?;
        if reply.get("id") != Some(&json!(id)) {
            return Err(RpcError::Malformed(format!("{method}: reply to another request")));
        }
        match reply.get("error") {
            None | Some(Value::Null) => {}
            Some(error) => {
                return Err(RpcError::Node {
                    code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
                    message: error.get("message").and_then(Value::as_str).unwrap_or("(no message)").to_string(),
                })
            }
        }
        reply.get("result").cloned().ok_or_else(|| RpcError::Malformed(format!("{method}: no result")))
    }

    /// The best chain's height.
    pub async fn block_count(&self) -> Result<u64, RpcError> {
        let count = self.call("getblockcount", json!([])).await?;
        count.as_u64().ok_or_else(|| RpcError::Malformed(format!("getblockcount: {count}")))
    }

    pub async fn block_hash(&self, height: u64) -> Result<BlockHash, RpcError> {
        let hash = self.call("getblockhash", json!([height])).await?;
        let text = hash.as_str().ok_or_else(|| RpcError::Malformed(format!("getblockhash: {hash}")))?;
        BlockHash::from_str(text).map_err(|e| RpcError::Malformed(format!("getblockhash: {e}")))
    }

    /// The block at `height`, consensus encoded, checked to be the block the node names for that
    /// height.
    pub async fn block(&self, height: u64) -> Result<Vec<u8>, RpcError> {
        let hash = self.block_hash(height).await?;
        let hex = self.call("getblock", json!([hash.to_string(), 0])).await?;
        let text = hex.as_str().ok_or_else(|| RpcError::Malformed("getblock: not a string".into()))?;
        let bytes = hex::decode(text).map_err(|e| RpcError::Malformed(format!("getblock: {e}")))?;
        let block: Block =
            bitcoin::consensus::deserialize(&bytes).map_err(|e| RpcError::Malformed(format!("getblock: {e}")))?;
        if block.block_hash() != hash {
            return Err(RpcError::Malformed(format!(
                "getblock {hash}: the node returned block {}",
                block.block_hash()
            )));
        }
        Ok(bytes)
    }

    /// Hands a transaction to the node; returns its txid as the node reports it.
    pub async fn send_raw_transaction(&self, transaction: &[u8]) -> Result<[u8; 32], RpcError> {
        let txid = self.call("sendrawtransaction", json!([hex::encode(transaction)])).await?;
        let text = txid.as_str().ok_or_else(|| RpcError::Malformed(format!("sendrawtransaction: {txid}")))?;
        let txid =
            bitcoin::Txid::from_str(text).map_err(|e| RpcError::Malformed(format!("sendrawtransaction: {e}")))?;
        Ok(txid.to_byte_array())
    }

    /// The node's fee estimate for confirmation within `blocks`, in satoshi per vbyte (rounded
    /// up, at least 1).
    pub async fn estimate_smart_fee(&self, blocks: u16) -> Result<u64, RpcError> {
        let estimate = self.call("estimatesmartfee", json!([blocks])).await?;
        let Some(per_kvb) = estimate.get("feerate").and_then(Value::as_f64) else {
            return Err(RpcError::Node { code: 0, message: format!("no fee estimate: {estimate}") });
        };
        if !per_kvb.is_finite() || per_kvb <= 0.0 || per_kvb > 1.0 {
            return Err(RpcError::Malformed(format!("estimatesmartfee: implausible rate {per_kvb} BTC/kvB")));
        }
        Ok(((per_kvb * 100_000_000.0 / 1000.0).ceil() as u64).max(1))
    }
}
