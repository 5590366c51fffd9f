//! End-to-end tests of the `processor` daemon: against a real `monerod` and `litecoind` in
//! regtest, a real `nats-server` broker, RocksDB under SIGKILL, and a lying RPC node. They
//! arrive with the daemon; until then the deterministic paths are covered by the processor's
//! own tests and the simulation.
