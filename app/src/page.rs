//! Cursor pagination: newest first, by `(time, id)`, so a page never repeats or skips an
//! item however many are added meanwhile.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{AppError, Result};

/// Most items in one page.
pub const MAX_LIMIT: u32 = 100;
/// Items in a page unless asked otherwise.
pub const DEFAULT_LIMIT: u32 = 20;

/// Which page to read.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The `next` of the previous page; absent for the first page.
    #[param(max_length = 64)]
    pub cursor: Option<String>,
    /// Items per page, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// A page of items.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next: Option<String>,
}

/// A decoded cursor: items strictly older than `(at, id)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub(crate) at: i64,
    pub(crate) id: String,
}

impl PageQuery {
    pub(crate) fn limit(&self) -> Result<u32> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(_) => Err(AppError::invalid("limit", "1–100")),
        }
    }

    pub(crate) fn cursor(&self) -> Result<Option<Cursor>> {
        let Some(c) = self.cursor.as_deref().filter(|c| !c.is_empty()) else {
            return Ok(None);
        };
        let bad = || AppError::invalid("cursor", "not a cursor from a previous page");
        if c.len() > 64 {
            return Err(bad());
        }
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(c)
            .map_err(|_| bad())?;
        let s = String::from_utf8(raw).map_err(|_| bad())?;
        let (at, id) = s.split_once('.').ok_or_else(bad)?;
        Ok(Some(Cursor {
            at: at.parse().map_err(|_| bad())?,
            id: id.to_string(),
        }))
    }
}

pub(crate) fn encode(at: i64, id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{at}.{id}"))
}

/// Build a page from up to `limit + 1` rows (the extra one says whether there is more).
pub(crate) fn page<T>(mut rows: Vec<T>, limit: u32, key: impl Fn(&T) -> (i64, &str)) -> Page<T> {
    let limit = limit as usize;
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|t| {
            let (at, id) = key(t);
            encode(at, id)
        })
    } else {
        None
    };
    Page { items: rows, next }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any cursor text from the wire: an error or a cursor, never a panic; what we
        /// encode decodes back.
        #[test]
        fn cursors_from_the_wire_never_panic(raw in ".{0,80}", at in any::<i64>(), id in "[A-Za-z0-9_-]{1,20}") {
            let q = PageQuery { cursor: Some(raw), limit: None };
            let _ = q.cursor();
            let q = PageQuery { cursor: Some(encode(at, &id)), limit: None };
            prop_assert_eq!(q.cursor().unwrap(), Some(Cursor { at, id }));
        }
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let q = PageQuery {
            cursor: Some(encode(1_700_000_000_000, "abc_DEF-123")),
            limit: None,
        };
        assert_eq!(
            q.cursor().unwrap(),
            Some(Cursor {
                at: 1_700_000_000_000,
                id: "abc_DEF-123".into()
            })
        );
        for bad in ["%%%", "bm90LWEtY3Vyc29y", &"A".repeat(65)] {
            let q = PageQuery {
                cursor: Some(bad.into()),
                limit: None,
            };
            assert!(q.cursor().is_err(), "{bad}");
        }
        let q = PageQuery {
            cursor: None,
            limit: Some(0),
        };
        assert!(q.limit().is_err());
        let p = page(vec![(3, "c"), (2, "b"), (1, "a")], 2, |t| (t.0, t.1));
        assert_eq!(p.items.len(), 2);
        assert_eq!(p.next, Some(encode(2, "b")));
    }
}
