//! Ids given by a prefix: the messages and prompts whose ids start with
//! it, read as one range of the table's primary key (see
//! [`crate::model::prefix`]), never a scan of the table.

use rusqlite::params;

use crate::model::prefix::{IdPrefix, LISTED};

use super::{Store, StoreError};

/// The tables whose ids are given by prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdTable {
    Messages,
    Prompts,
}

impl IdTable {
    fn sql(self) -> &'static str {
        match self {
            Self::Messages => {
                "SELECT id FROM messages WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT ?3"
            }
            Self::Prompts => {
                "SELECT id FROM prompts WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT ?3"
            }
        }
    }
}

impl Store {
    /// The ids in `table` starting with `prefix`, in order: at most
    /// [`LISTED`] + 1, enough to pick one or list the candidates.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn ids_with_prefix(
        &self,
        table: IdTable,
        prefix: &IdPrefix,
    ) -> Result<Vec<String>, StoreError> {
        let (from, to) = prefix.range();
        let limit = i64::try_from(LISTED + 1).unwrap_or(i64::MAX);
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(table.sql())?;
            let ids = stmt
                .query_map(params![from, to, limit], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(ids)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::prefix::MESSAGE;

    #[test]
    fn a_prefix_reads_a_range_of_the_primary_key_not_the_table() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("acp.db")).unwrap();
        for table in [IdTable::Messages, IdTable::Prompts] {
            let plan: Vec<String> = store
                .read(|tx| {
                    let mut stmt = tx.prepare(&format!("EXPLAIN QUERY PLAN {}", table.sql()))?;
                    let rows = stmt
                        .query_map(params!["A", "A~", 11], |r| r.get::<_, String>(3))?
                        .collect::<Result<_, _>>()?;
                    Ok(rows)
                })
                .unwrap();
            let plan = plan.join("; ");
            assert!(
                plan.contains("SEARCH") && plan.contains("PRIMARY KEY (id>? AND id<?)"),
                "{table:?}: {plan}"
            );
            assert!(!plan.contains("SCAN"), "{table:?}: {plan}");
        }
        let prefix = IdPrefix::parse("01JDQ3Z5", MESSAGE).unwrap();
        assert!(
            store
                .ids_with_prefix(IdTable::Messages, &prefix)
                .unwrap()
                .is_empty()
        );
    }
}
