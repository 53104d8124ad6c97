//! How the model's vocabulary is written in SQL: as the names it shows
//! (`queued`, `inbox`, `transient`...), so the file stays readable with the
//! `sqlite3` shell.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::model::{AttemptOutcome, DeliveryState, MethodName};

/// A type stored as one of its names.
macro_rules! as_text {
    ($t:ty) => {
        impl ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $t {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                value
                    .as_str()?
                    .parse()
                    .map_err(|e| FromSqlError::Other(Box::new(e)))
            }
        }
    };
}

as_text!(DeliveryState);
as_text!(MethodName);
as_text!(AttemptOutcome);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_errors() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for state in DeliveryState::ALL {
            let back: DeliveryState = conn.query_row("SELECT ?1", [state], |r| r.get(0)).unwrap();
            assert_eq!(back, state);
        }
        let method: MethodName = conn.query_row("SELECT 'gui'", [], |r| r.get(0)).unwrap();
        assert_eq!(method, MethodName::Gui);
        let bad = conn.query_row("SELECT 'sent'", [], |r| r.get::<_, DeliveryState>(0));
        assert!(bad.is_err());
    }
}
