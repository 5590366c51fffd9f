//! Mock Bitcoin chain (being written).
