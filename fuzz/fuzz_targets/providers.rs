//! The provider list (`pg_jwt.providers`) and the choice by `iss`: any bytes as a list, and any
//! list's choice and checks for any claims, never panic; a chosen provider's issuer matches the
//! `iss` that chose it (exactly, or its template segment by segment); its checks give the same
//! answer on the claims' tree and on their members (a token from the shared cache's record);
//! and parsing with or without importing pinned keys agrees on everything but the keys.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pg_jwt_core::claims::Body;
use pg_jwt_core::json::Members;
use pg_jwt_core::provider::Issuer;
use pg_jwt_core::{Json, Providers};

fuzz_target!(|data: &[u8]| {
    // The first line is the list, the rest an iss and then claims.
    let (list, rest) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let checked = Providers::parse(list);
    let unchecked = Providers::parse_with(list, false);
    if let Ok(p) = &checked {
        let u = unchecked.as_ref().expect("a list that imports also parses without importing");
        assert_eq!(p.list.len(), u.list.len());
    }
    let Ok(providers) = unchecked else { return };
    let (iss, claims) = match rest.iter().position(|b| *b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let Ok(iss) = std::str::from_utf8(iss) else { return };
    if let Some(chosen) = providers.choose(iss) {
        let p = providers.get(chosen).expect("a chosen provider exists");
        match &p.issuer {
            Issuer::Exact(e) => assert_eq!(e, iss),
            Issuer::Template { segments, at, .. } => {
                let parts: Vec<&str> = iss.split('/').collect();
                assert_eq!(parts.len(), segments.len());
                for (i, (a, b)) in parts.iter().zip(segments).enumerate() {
                    if i == *at {
                        assert!(!a.is_empty());
                    } else {
                        assert_eq!(a, b);
                    }
                }
            }
        }
        if let Ok(tree) = Json::parse(claims) {
            let on_tree = p.check(&Body::Tree(tree));
            if let Ok(Ok(members)) = Members::parse(claims.to_vec()) {
                let on_members = p.check(&Body::Members(members, std::cell::OnceCell::new()));
                assert_eq!(on_tree, on_members, "the members decide as the tree does");
            }
        }
    }
});
