//! The mock chain served over Bitcoin Core's JSON-RPC dialect (HTTP/1.1, Basic auth), for
//! daemon tests: `getblockcount`, `getblockhash`, `getblock` (verbosity 0),
//! `sendrawtransaction`, `estimatesmartfee`. On command it lies, stalls or answers garbage.

use super::MockBitcoin;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the node answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    Honest,
    /// Replies that are not JSON.
    Garbage,
    /// `getblock` returns the block after the one asked for.
    WrongBlock,
    /// `getblockcount` claims 100 more blocks than exist.
    WrongHeight,
    /// Accepts connections and never answers.
    Stall,
    /// `getblock` returns the block asked for with its header intact but a transaction's
    /// output changed (the header no longer commits to the transactions).
    CorruptBlock,
}

/// A running mock node.
pub struct RpcNode {
    pub address: String,
    behaviour: Arc<Mutex<Behaviour>>,
}

impl RpcNode {
    /// Serves `chain` on a free local port, with these credentials.
    pub async fn start(chain: Arc<Mutex<MockBitcoin>>, user: &str, password: &str) -> std::io::Result<RpcNode> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let behaviour = Arc::new(Mutex::new(Behaviour::Honest));
        let expected = format!("Basic {}", base64(format!("{user}:{password}").as_bytes()));
        let served = behaviour.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (chain, behaviour, expected) = (chain.clone(), served.clone(), expected.clone());
                tokio::spawn(async move {
                    let _ = answer(stream, &chain, &behaviour, &expected).await;
                });
            }
        });
        Ok(RpcNode { address, behaviour })
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap_or_else(PoisonError::into_inner) = behaviour;
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            out.push(if i <= chunk.len() { char::from(ALPHABET[((n >> shift) & 63) as usize]) } else { '=' });
        }
    }
    out
}

async fn answer(
    mut stream: TcpStream,
    chain: &Mutex<MockBitcoin>,
    behaviour: &Mutex<Behaviour>,
    expected: &str,
) -> std::io::Result<()> {
    let mut received = Vec::new();
    let header_end = loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let mut buffer = [0u8; 4096];
        let read = stream.read(&mut buffer).await?;
        if read == 0 || received.len() > 64 * 1024 {
            return Ok(());
        }
        received.extend_from_slice(&buffer[..read]);
    };
    let headers = String::from_utf8_lossy(&received[..header_end]).to_string();
    let header = |name: &str| {
        headers.split("\r\n").find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_string())
        })
    };
    let length: usize = header("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    let mut body = received.split_off(header_end + 4);
    while body.len() < length {
        let mut buffer = vec![0u8; length - body.len()];
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            return Ok(());
        }
        body.extend_from_slice(&buffer[..read]);
    }
    let behaviour = *behaviour.lock().unwrap_or_else(PoisonError::into_inner);
    if behaviour == Behaviour::Stall {
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        return Ok(());
    }
    if header("authorization").as_deref() != Some(expected) {
        return reply(&mut stream, 401, b"").await;
    }
    if behaviour == Behaviour::Garbage {
        return reply(&mut stream, 200, b"\x00not json{").await;
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let method = request.get("method").and_then(Value::as_str).unwrap_or("");
    let params = request.get("params").cloned().unwrap_or(json!([]));
    let result = {
        let mut chain = chain.lock().unwrap_or_else(PoisonError::into_inner);
        respond(&mut chain, behaviour, method, &params)
    };
    let (status, body) = match result {
        Ok(result) => (200, json!({ "result": result, "error": null, "id": id })),
        Err((code, message)) => {
            (500, json!({ "result": null, "error": { "code": code, "message": message }, "id": id }))
        }
    };
    reply(&mut stream, status, body.to_string().as_bytes()).await
}

fn respond(
    chain: &mut MockBitcoin,
    behaviour: Behaviour,
    method: &str,
    params: &Value,
) -> Result<Value, (i64, String)> {
    let param = |index: usize| params.get(index).cloned().unwrap_or(Value::Null);
    match method {
        "getblockcount" => {
            let lie = if behaviour == Behaviour::WrongHeight { 100 } else { 0 };
            Ok(json!(chain.tip_height() + lie))
        }
        "getblockhash" => {
            let height = param(0).as_u64().ok_or((-1, "height expected".to_string()))?;
            let hash = chain.block_hash(height).ok_or((-8, "Block height out of range".to_string()))?;
            Ok(json!(hash.to_string()))
        }
        "getblock" => {
            let text = param(0).as_str().map(str::to_string).ok_or((-1, "hash expected".to_string()))?;
            let hash: bitcoin::BlockHash = text.parse().map_err(|_| (-8, "bad hash".to_string()))?;
            let mut height = chain.height_of(&hash).ok_or((-5, "Block not found".to_string()))?;
            if behaviour == Behaviour::WrongBlock && height < chain.tip_height() {
                height += 1;
            }
            let mut block = chain.block(height).cloned().ok_or((-5, "Block not found".to_string()))?;
            if behaviour == Behaviour::CorruptBlock {
                if let Some(output) = block.txdata.last_mut().and_then(|tx| tx.output.first_mut()) {
                    output.value += bitcoin::Amount::from_sat(1);
                }
            }
            Ok(json!(hex::encode(bitcoin::consensus::serialize(&block))))
        }
        "sendrawtransaction" => {
            let text = param(0).as_str().map(str::to_string).ok_or((-1, "hex expected".to_string()))?;
            let bytes = hex::decode(text).map_err(|_| (-22, "TX decode failed".to_string()))?;
            let tx = bitcoin::consensus::deserialize(&bytes).map_err(|_| (-22, "TX decode failed".to_string()))?;
            let txid = chain.submit(tx).map_err(|e| (-26, e.to_string()))?;
            Ok(json!(txid.to_string()))
        }
        "estimatesmartfee" => {
            Ok(json!({ "feerate": chain.fee_rate_sat_per_vb() as f64 * 1000.0 / 100_000_000.0, "blocks": 2 }))
        }
        _ => Err((-32601, "Method not found".to_string())),
    }
}

async fn reply(stream: &mut TcpStream, status: u16, body: &[u8]) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        _ => "Internal Server Error",
    };
    let head = format!("HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.shutdown().await
}
