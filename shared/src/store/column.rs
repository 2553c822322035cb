//! Text columns that hold one of a few values (a `CHECK (state IN (...))`), read and written as
//! enums, so that a state is matched by the compiler rather than compared as a string.

/// Implements, for a fieldless enum with an `as_str` that spells each value as its column does:
/// `ALL`, `from_text`, `Display`, `Serialize` (as that text, so JSON shows what the table holds),
/// and `FromSql`/`ToSql` for `text`. A value the enum does not know fails the read with a
/// conversion error instead of being guessed.
macro_rules! text_column {
    ($name:ident: $($variant:ident),+ $(,)?) => {
        impl $name {
            /// Every value, in the schema's order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value a column's text spells, if it is one of ours.
            pub fn from_text(text: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.as_str() == text)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'a> tokio_postgres::types::FromSql<'a> for $name {
            fn from_sql(
                ty: &tokio_postgres::types::Type,
                raw: &'a [u8],
            ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
                let text = <&str as tokio_postgres::types::FromSql>::from_sql(ty, raw)?;
                Self::from_text(text).ok_or_else(|| {
                    format!("{text:?} is not a known {}", stringify!($name)).into()
                })
            }

            fn accepts(ty: &tokio_postgres::types::Type) -> bool {
                <&str as tokio_postgres::types::FromSql>::accepts(ty)
            }
        }

        impl tokio_postgres::types::ToSql for $name {
            fn to_sql(
                &self,
                ty: &tokio_postgres::types::Type,
                out: &mut bytes::BytesMut,
            ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>>
            {
                self.as_str().to_sql(ty, out)
            }

            fn accepts(ty: &tokio_postgres::types::Type) -> bool {
                <&str as tokio_postgres::types::ToSql>::accepts(ty)
            }

            tokio_postgres::types::to_sql_checked!();
        }
    };
}

pub(crate) use text_column;

/// PostgreSQL's `jsonb` and `text` refuse the NUL character, which a vendor answer or a producer field
/// may carry: a value to be stored has each NUL replaced by U+FFFD, and is copied only when it has one.
pub fn storable(value: &serde_json::Value) -> std::borrow::Cow<'_, serde_json::Value> {
    if has_nul(value) {
        let mut copy = value.clone();
        scrub(&mut copy);
        std::borrow::Cow::Owned(copy)
    } else {
        std::borrow::Cow::Borrowed(value)
    }
}

/// [`storable`] for a value the caller owns: cleaned in place, never copied.
pub fn into_storable(mut value: serde_json::Value) -> serde_json::Value {
    if has_nul(&value) {
        scrub(&mut value);
    }
    value
}

/// `text` with each NUL replaced by U+FFFD, copied only when it has one.
pub fn storable_text(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

fn has_nul(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

fn scrub(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{FFFD}"),
        Value::Array(items) => items.iter_mut().for_each(scrub),
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (k, mut v) in entries {
                scrub(&mut v);
                map.insert(storable_text(&k).into_owned(), v);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_nul_anywhere_becomes_a_replacement_character_and_nothing_else_is_copied() {
        let clean = json!({ "a": ["b", 1, { "c": null }] });
        assert!(matches!(storable(&clean), std::borrow::Cow::Borrowed(_)));
        let poison = json!({ "a\u{0}": ["b\u{0}c", { "d": "\u{0}" }], "n": 2 });
        let stored = storable(&poison).into_owned();
        assert_eq!(
            stored,
            json!({ "a\u{FFFD}": ["b\u{FFFD}c", { "d": "\u{FFFD}" }], "n": 2 })
        );
        assert_eq!(storable_text("x\0y"), "x\u{FFFD}y");
    }
}
