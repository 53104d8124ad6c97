//! Backups' summaries, as the process that committed each recorded it:
//! the page and the schedule read five fields here instead of a manifest
//! that lists every file. The repository stays the record of the backups
//! themselves; a summary missing here is read from its manifest.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};

impl Store {
    /// Records a backup's summary (JSON) under its manifest's file name.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn record_backup_summary(&self, file: &str, summary: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT OR REPLACE INTO backup_summaries (file, summary) VALUES (?1, ?2)",
                params![file, summary],
            )?;
            Ok(())
        })
    }

    /// The recorded summaries of `files` that have one: (file, JSON).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn backup_summaries(&self, files: &[&str]) -> Result<Vec<(String, String)>, StoreError> {
        self.read(|tx| {
            let mut stmt =
                tx.prepare_cached("SELECT summary FROM backup_summaries WHERE file = ?1")?;
            let mut found = Vec::new();
            for file in files {
                if let Some(summary) = stmt
                    .query_row([file], |r| r.get::<_, String>(0))
                    .optional()?
                {
                    found.push(((*file).to_owned(), summary));
                }
            }
            Ok(found)
        })
    }

    /// Forgets the summaries of backups no longer in the repository (all
    /// but `files`).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn forget_backup_summaries(&self, files: &[&str]) -> Result<usize, StoreError> {
        let keep = serde_json::to_string(files).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.write(|tx| {
            Ok(tx.execute(
                "DELETE FROM backup_summaries WHERE file NOT IN (SELECT value FROM json_each(?1))",
                [keep],
            )?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_are_found_by_file_and_forgotten_with_their_backups() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("acp.db")).unwrap();
        store
            .record_backup_summary("a.json", "{\"id\":\"a\"}")
            .unwrap();
        store
            .record_backup_summary("b.json", "{\"id\":\"b\"}")
            .unwrap();
        store
            .record_backup_summary("b.json", "{\"id\":\"b2\"}")
            .unwrap();
        assert_eq!(
            store.backup_summaries(&["b.json", "c.json"]).unwrap(),
            [("b.json".to_owned(), "{\"id\":\"b2\"}".to_owned())]
        );
        assert_eq!(store.forget_backup_summaries(&["b.json"]).unwrap(), 1);
        assert!(store.backup_summaries(&["a.json"]).unwrap().is_empty());
        assert_eq!(store.backup_summaries(&["b.json"]).unwrap().len(), 1);
    }
}
