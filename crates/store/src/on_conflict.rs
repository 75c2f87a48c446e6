//! What an insert shared by an ordinary writer and a tenant restore does when a row with
//! its key is already stored: the ordinary writers create or replace (an upsert), a restore
//! inserts plainly, so that a key repeated in what it is given fails the restore.

/// What an insert does when a row with the same key is already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnConflict {
    /// Fail with the database's unique violation.
    Fail,
    /// Replace the row's other columns with the new values.
    Replace,
}

impl OnConflict {
    /// The SQL to append to an `INSERT` into a table keyed by `key` (its columns, comma
    /// separated) whose other columns are `set`; the same on SQLite and PostgreSQL.
    pub(crate) fn clause(self, key: &str, set: &[&str]) -> String {
        match self {
            OnConflict::Fail => String::new(),
            OnConflict::Replace => {
                let set: Vec<String> = set.iter().map(|c| format!("{c} = excluded.{c}")).collect();
                format!(" ON CONFLICT ({key}) DO UPDATE SET {}", set.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::OnConflict;

    #[test]
    fn replace_sets_every_other_column_and_fail_adds_nothing() {
        assert_eq!(
            OnConflict::Replace.clause("tenant, id", &["name", "geometry"]),
            " ON CONFLICT (tenant, id) DO UPDATE SET name = excluded.name, \
             geometry = excluded.geometry"
        );
        assert_eq!(OnConflict::Fail.clause("tenant, id", &["name"]), "");
    }
}
