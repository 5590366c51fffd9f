//! The smallest HTTP/1.1 client the nodes' JSON-RPC needs: one POST per connection, a
//! `Content-Length` reply, a deadline on the whole exchange, bounded reply size. Every failure
//! is an [`RpcError`]; nothing a server sends can panic it.

use super::RpcError;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Replies larger than this are refused (a Bitcoin block is at most 4 MB, hex doubles it).
pub const MAX_REPLY_BYTES: usize = 16 * 1024 * 1024;
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Standard base64 (RFC 4648) of `bytes`, for Basic authentication.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// POSTs `body` (JSON) to `http://{address}{path}` and returns the reply body of a 200 reply,
/// or of a 500 reply (JSON-RPC errors come with status 500 from Bitcoin Core).
pub async fn post_json(
    address: &str,
    path: &str,
    authorization: Option<&str>,
    body: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, RpcError> {
    tokio::time::timeout(timeout, exchange(address, path, authorization, body)).await.map_err(|_| RpcError::Timeout)?
}

async fn exchange(address: &str, path: &str, authorization: Option<&str>, body: &[u8]) -> Result<Vec<u8>, RpcError> {
    let mut stream = TcpStream::connect(address).await.map_err(|e| RpcError::Connection(e.to_string()))?;
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(authorization) = authorization {
        request.push_str(&format!("Authorization: Basic {authorization}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.map_err(|e| RpcError::Connection(e.to_string()))?;
    stream.write_all(body).await.map_err(|e| RpcError::Connection(e.to_string()))?;

    // Headers.
    let mut received = Vec::new();
    let header_end = loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        if received.len() > MAX_HEADER_BYTES {
            return Err(RpcError::Malformed("reply headers too long".into()));
        }
        let mut buffer = [0u8; 4096];
        let read = stream.read(&mut buffer).await.map_err(|e| RpcError::Connection(e.to_string()))?;
        if read == 0 {
            return Err(RpcError::Malformed("connection closed before the reply headers ended".into()));
        }
        received.extend_from_slice(&buffer[..read]);
    };
    let headers = std::str::from_utf8(&received[..header_end])
        .map_err(|_| RpcError::Malformed("reply headers are not text".into()))?;
    let mut lines = headers.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| RpcError::Malformed(format!("bad status line {status_line:?}")))?;
    let mut length = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                length =
                    Some(value.trim().parse::<usize>().map_err(|_| RpcError::Malformed("bad Content-Length".into()))?);
            }
        }
    }
    let length = length.ok_or_else(|| RpcError::Malformed("no Content-Length".into()))?;
    if length > MAX_REPLY_BYTES {
        return Err(RpcError::Malformed(format!("a reply of {length} bytes")));
    }
    if status == 401 || status == 403 {
        return Err(RpcError::Unauthorized);
    }
    if status != 200 && status != 500 {
        return Err(RpcError::Malformed(format!("HTTP status {status}")));
    }

    // Body.
    let mut body = received.split_off(header_end + 4);
    while body.len() < length {
        let mut buffer = vec![0u8; (length - body.len()).min(64 * 1024)];
        let read = stream.read(&mut buffer).await.map_err(|e| RpcError::Connection(e.to_string()))?;
        if read == 0 {
            return Err(RpcError::Malformed("connection closed before the reply body ended".into()));
        }
        body.extend_from_slice(&buffer[..read]);
    }
    body.truncate(length);
    Ok(body)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, output) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(super::base64(input.as_bytes()), output);
        }
    }
}
