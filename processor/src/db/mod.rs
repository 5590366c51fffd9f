//! Storage backends of the core's [`processor_core::db::Db`] trait that do real IO.

mod rocks;

pub use rocks::RocksDb;

#[cfg(test)]
mod tests {
    #[test]
    fn rocks_db_passes_the_backend_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        processor_core::db::conformance::run(|| super::RocksDb::open(dir.path()).unwrap());
    }
}
