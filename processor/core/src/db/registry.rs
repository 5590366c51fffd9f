//! Every table of the processor, gathered at link time from the modules that declare them with
//! `db::tables!`: the registry is generated, so the layout checks below cover
//! every table by construction, and no module can declare one without it being checked.

pub use linkme;

use super::{Db, DbError, Read, Txn};
use crate::ids::SchemaVersion;

/// A declared table: its name, the module owning it and its key prefix.
#[derive(Clone, Copy, Debug)]
pub struct TableInfo {
    /// The constant's name.
    pub name: &'static str,
    /// The module that declares (and alone reads and writes) it.
    pub module: &'static str,
    /// Its key prefix.
    pub prefix: &'static [u8],
}

/// Filled by `db::tables!`.
#[linkme::distributed_slice]
pub static TABLES: [TableInfo];

/// The layout this code reads and writes. Bump it with any change to a table's key or value
/// encoding, and say in `ARCHITECTURE.md` how an older database is migrated.
pub const SCHEMA_VERSION: SchemaVersion = SchemaVersion(3);

crate::db::tables! {
    /// The layout version the database was written with.
    STORED_SCHEMA_VERSION: Table<(), SchemaVersion> = b"db/schema_version/";
}

/// Checks the database is in the layout this code reads, migrating an older one step by step in
/// one transaction (`migrate(txn, v)` takes the database from version `v` to `v + 1`) and
/// stamping it. A database without a stamp is a new one or one from before stamping, whose
/// layout is version 1's: it is migrated from version 1 (each step is a no-op on an empty
/// database). A database of a newer version is refused with a clear error rather than misread.
pub fn open_schema<D: Db>(
    db: &D,
    migrate: impl Fn(&mut Txn<'_, D>, SchemaVersion) -> Result<(), DbError>,
) -> Result<(), DbError> {
    let found = STORED_SCHEMA_VERSION.get(db, &())?.unwrap_or(SchemaVersion(1));
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    if found > SCHEMA_VERSION {
        return Err(DbError::UnknownSchema { found, supported: SCHEMA_VERSION });
    }
    let mut txn = db.txn();
    for version in found.0..SCHEMA_VERSION.0 {
        migrate(&mut txn, SchemaVersion(version))?;
    }
    STORED_SCHEMA_VERSION.set(&mut txn, &(), &SCHEMA_VERSION);
    txn.commit()
}

/// The stored layout version, if any (for inspection).
pub fn stored_schema_version(reader: &impl Read) -> Result<Option<SchemaVersion>, DbError> {
    STORED_SCHEMA_VERSION.get(reader, &())
}

/// Every registered table, sorted by prefix.
pub fn tables() -> Vec<TableInfo> {
    let mut tables: Vec<TableInfo> = TABLES.iter().copied().collect();
    tables.sort_by_key(|table| table.prefix);
    tables
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_is_registered_and_no_prefix_is_a_prefix_of_another() {
        let tables = tables();
        // The modules that own state each registered theirs (a table declared without the
        // macro would be missing here, and could shadow another unnoticed).
        for module in
            ["core", "keygen", "scanner", "batch", "sign", "scheduler", "payments", "plan", "transaction", "db"]
        {
            assert!(
                tables.iter().any(|t| t.module.split("::").any(|part| part == module)),
                "no table registered by {module}: {tables:?}"
            );
        }
        for (i, a) in tables.iter().enumerate() {
            assert!(a.prefix.ends_with(b"/"), "{} does not end in /", a.name);
            for (j, b) in tables.iter().enumerate() {
                if i != j {
                    assert!(
                        !b.prefix.starts_with(a.prefix),
                        "{} ({}) shadows {} ({})",
                        a.name,
                        a.module,
                        b.name,
                        b.module
                    );
                }
            }
        }
    }

    #[test]
    fn a_database_of_another_layout_is_refused() {
        let db = crate::db::MemDb::new();
        let no_migration = |_: &mut Txn<'_, crate::db::MemDb>, _| -> Result<(), DbError> { Ok(()) };
        open_schema(&db, no_migration).unwrap();
        assert_eq!(stored_schema_version(&db).unwrap(), Some(SCHEMA_VERSION));
        open_schema(&db, no_migration).unwrap();
        let mut txn = crate::db::Db::txn(&db);
        STORED_SCHEMA_VERSION.set(&mut txn, &(), &SchemaVersion(SCHEMA_VERSION.0 + 1));
        txn.commit().unwrap();
        let error = open_schema(&db, no_migration).unwrap_err();
        assert!(matches!(error, DbError::UnknownSchema { .. }), "{error}");
        assert!(error.to_string().contains(&format!("schema {}", SCHEMA_VERSION.0 + 1)), "{error}");
    }

    #[test]
    fn an_older_or_unstamped_database_is_migrated_step_by_step_once() {
        // Unstamped (from before stamping): migrated from version 1.
        let db = crate::db::MemDb::new();
        let steps = std::cell::RefCell::new(Vec::new());
        let record = |_: &mut Txn<'_, crate::db::MemDb>, from: SchemaVersion| -> Result<(), DbError> {
            steps.borrow_mut().push(from.0);
            Ok(())
        };
        open_schema(&db, record).unwrap();
        open_schema(&db, record).unwrap();
        assert_eq!(*steps.borrow(), (1..SCHEMA_VERSION.0).collect::<Vec<_>>());
        assert_eq!(stored_schema_version(&db).unwrap(), Some(SCHEMA_VERSION));
    }
}
