//! The strict JSON parser: never panics; what it accepts round-trips exactly (parse → serialize
//! → parse gives the same value, numbers as written) and nests at most 32 deep; input with a
//! NUL character is refused (lone surrogates cannot even be represented in the parsed value).
//! Its top-level members read without the tree (`Members`) give the same error, or hand the
//! input back, or give every member as the tree has it. Asking whether PostgreSQL's numeric
//! holds any number it accepts never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pg_jwt_core::json::Members;
use pg_jwt_core::Json;

fn depth(v: &Json) -> usize {
    match v {
        Json::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Json::Object(members) => 1 + members.iter().map(|(_, v)| depth(v)).max().unwrap_or(0),
        _ => 0,
    }
}

fn no_nul(v: &Json) -> bool {
    match v {
        Json::String(s) => !s.contains('\0'),
        Json::Array(items) => items.iter().all(no_nul),
        Json::Object(members) => members.iter().all(|(k, v)| !k.contains('\0') && no_nul(v)),
        _ => true,
    }
}

fn no_duplicates(v: &Json) -> bool {
    match v {
        Json::Array(items) => items.iter().all(no_duplicates),
        Json::Object(members) => {
            let mut names: Vec<&str> = members.iter().map(|(k, _)| k.as_ref()).collect();
            names.sort_unstable();
            names.windows(2).all(|w| w[0] != w[1]) && members.iter().all(|(_, v)| no_duplicates(v))
        }
        _ => true,
    }
}

fn members_agree(data: &[u8]) {
    let tree = Json::parse(data);
    match Members::parse(data.to_vec()) {
        Err(e) => assert_eq!(tree, Err(e), "members and tree refuse differently"),
        Ok(Err(back)) => assert_eq!(back, data, "the input handed back changed"),
        Ok(Ok(m)) => {
            let Ok(Json::Object(members)) = &tree else {
                panic!("members of what the tree does not accept as an object")
            };
            // Every member of the tree, and no other (names are unique).
            assert_eq!(m.len(), members.len(), "members counted differently");
            for (name, value) in members {
                assert_eq!(m.get(name).map(|v| v.to_json()), Some(Ok(value.clone())), "a member differs");
            }
            assert_eq!(m.tree().as_ref(), tree.as_ref(), "the tree of the members differs");
        }
    }
}

/// Every number the parser accepts can be asked whether numeric holds it (never panics).
fn numbers_ranged(v: &Json) {
    match v {
        Json::Number(n) => {
            let _ = pg_jwt_core::json::fits_pg_numeric(n);
        }
        Json::Array(items) => items.iter().for_each(numbers_ranged),
        Json::Object(members) => members.iter().for_each(|(_, v)| numbers_ranged(v)),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    members_agree(data);
    let Ok(value) = Json::parse(data) else { return };
    numbers_ranged(&value);
    assert!(depth(&value) <= 32, "accepted a document nested deeper than 32");
    assert!(no_duplicates(&value), "accepted a duplicate member");
    let text = value.to_json_string();
    let again = Json::parse(text.as_bytes()).expect("serialized output must parse");
    assert_eq!(value, again, "round trip changed the value");
    assert!(no_nul(&value), "accepted a NUL character");
});
