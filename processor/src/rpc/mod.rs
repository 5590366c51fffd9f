//! Clients for the nodes' RPC, for the daemon's chain sources (not used by the simulation,
//! whose chains are in memory): every reply is validated, every failure is an [`RpcError`].

pub mod bitcoin;
pub mod http;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    #[error("the node did not answer in time")]
    Timeout,
    #[error("cannot reach the node: {0}")]
    Connection(String),
    #[error("the node refused the credentials")]
    Unauthorized,
    #[error("the node's reply is malformed: {0}")]
    Malformed(String),
    #[error("the node answered with error {code}: {message}")]
    Node { code: i64, message: String },
}
