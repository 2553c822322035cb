//! The JSON Schemas under `docs/schemas/` are the contract types' own: regenerated here and compared,
//! so a field added, renamed or retyped without `make schemas` fails the build. With
//! `PASARELA_WRITE_SCHEMAS=1` the test writes them instead (that is what `make schemas` runs).

use std::collections::BTreeSet;
use std::path::PathBuf;

use pasarela_shared::contract::schemas;

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/schemas")
}

#[test]
fn the_committed_schemas_are_the_types_own() {
    let dir = schema_dir();
    let write = std::env::var_os("PASARELA_WRITE_SCHEMAS").is_some();
    if write {
        std::fs::create_dir_all(&dir).unwrap();
    }
    let mut expected = BTreeSet::new();
    for (name, schema) in schemas::all() {
        let file = format!("{name}.json");
        let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        let path = dir.join(&file);
        if write {
            std::fs::write(&path, &text).unwrap();
        } else {
            let committed = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}; run `make schemas`", path.display()));
            assert!(
                committed == text,
                "docs/schemas/{file} differs from the type it documents; run `make schemas`"
            );
        }
        expected.insert(file);
    }
    let present: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".json"))
        .collect();
    let stale: Vec<&String> = present.difference(&expected).collect();
    assert!(
        stale.is_empty(),
        "docs/schemas holds schemas of nothing: {stale:?}"
    );
}

/// Each message's schema requires what its type cannot do without, and lets the optional be.
#[test]
fn schemas_say_what_is_required() {
    let all = schemas::all();
    let required = |name: &str| -> Vec<String> {
        let (_, schema) = all.iter().find(|(n, _)| *n == name).unwrap();
        let mut fields: Vec<String> = schema
            .get("required")
            .and_then(|r| r.as_array())
            .map(|r| r.iter().map(|v| v.as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        fields.sort();
        fields
    };
    assert_eq!(
        required("otp.send"),
        ["channel", "code", "provider", "request_id", "tenant"]
    );
    assert_eq!(
        required("otp.verify"),
        ["code", "request_id", "verification_id"]
    );
    assert_eq!(
        required("vendor.call"),
        ["call_id", "method", "path", "vendor"]
    );
    assert!(required("otp.send.completed").contains(&"completed_at".to_string()));
    assert_eq!(required("webhook.document"), ["data", "timestamp", "type"]);
}
