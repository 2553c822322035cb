//! The shape of a vendor answer that could not be read: its keys and the types of its values, never a
//! value, so that an operator sees what the vendor sent instead of what was expected without a code,
//! a token or a person's data reaching a log or an error message.

use serde_json::Value;

/// Keys shown per object, and the depth shown; the rest is counted.
const MAX_KEYS: usize = 12;
const MAX_DEPTH: usize = 4;
/// Characters kept of a key.
const MAX_KEY_CHARS: usize = 40;

/// The shape of `text`: `{"code": string, "data": {"id": number}}`, `[object ×3]`, or what it is when
/// it is not JSON.
pub fn shape_of(text: &str) -> String {
    if text.trim().is_empty() {
        return "an empty body".into();
    }
    match serde_json::from_str::<Value>(text) {
        Ok(value) => {
            let mut out = String::new();
            describe(&value, 0, &mut out);
            out
        }
        Err(_) => format!("not JSON ({} bytes)", text.len()),
    }
}

fn describe(value: &Value, depth: usize, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(_) => out.push_str("boolean"),
        Value::Number(_) => out.push_str("number"),
        Value::String(_) => out.push_str("string"),
        Value::Array(items) if depth >= MAX_DEPTH => out.push_str(&format!("[… ×{}]", items.len())),
        Value::Array(items) => match items.first() {
            None => out.push_str("[]"),
            Some(first) => {
                out.push('[');
                describe(first, depth + 1, out);
                if items.len() > 1 {
                    out.push_str(&format!(" ×{}", items.len()));
                }
                out.push(']');
            }
        },
        Value::Object(map) if depth >= MAX_DEPTH => {
            out.push_str(&format!("{{… {} keys}}", map.len()))
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, v)) in map.iter().take(MAX_KEYS).enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let key: String = key
                    .chars()
                    .take(MAX_KEY_CHARS)
                    .map(|c| if c.is_control() { '?' } else { c })
                    .collect();
                out.push_str(&format!("{key:?}: "));
                describe(v, depth + 1, out);
            }
            if map.len() > MAX_KEYS {
                out.push_str(&format!(", … {} more", map.len() - MAX_KEYS));
            }
            out.push('}');
        }
    }
}

/// What a serde error says without the values it may quote: its category and position.
pub fn parse_error(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "not valid JSON",
        serde_json::error::Category::Data => "not the documented shape",
        serde_json::error::Category::Eof => "cut short",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shape_names_keys_and_types_and_never_a_value() {
        let text = r#"{"code":"SECRET-7","data":{"token":"abc123","n":42,"ok":true},"items":[{"a":1},{"a":2}]}"#;
        let shape = shape_of(text);
        assert_eq!(
            shape,
            r#"{"code": string, "data": {"n": number, "ok": boolean, "token": string}, "items": [{"a": number} ×2]}"#
        );
        for value in ["SECRET-7", "abc123", "42"] {
            assert!(!shape.contains(value), "{shape}");
        }
        assert_eq!(shape_of("<html>oops</html>"), "not JSON (17 bytes)");
        assert_eq!(shape_of(""), "an empty body");
    }

    #[test]
    fn a_parse_error_keeps_its_position_and_drops_the_value() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Answer {
            code: u32,
        }
        let e = serde_json::from_str::<Answer>(r#"{"code":"SECRET-7"}"#).unwrap_err();
        let said = parse_error(&e);
        assert!(!said.contains("SECRET"), "{said}");
        assert!(
            said.starts_with("not the documented shape at line 1"),
            "{said}"
        );
    }
}
