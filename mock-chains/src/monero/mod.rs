//! Mock Monero chain (being written).
