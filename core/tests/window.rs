//! The one definition of a token's validity window (`TimeClaims::window`), and that the
//! re-check at every access (`TimeClaims::check`) agrees with it at the edges.

use pg_jwt_core::claims::TimeClaims;

#[test]
fn the_window_is_nbf_minus_leeway_to_exp_plus_leeway_half_open() {
    let t = TimeClaims {
        exp: Some(1000.0),
        nbf: Some(500.0),
    };
    let w = t.window(30);
    assert_eq!((w.from, w.until), (470.0, 1030.0));
    for (now, inside) in [(469, false), (470, true), (1029, true), (1030, false)] {
        assert_eq!(w.contains(now as f64), inside, "now = {now}");
        assert_eq!(t.check(now, 30).is_ok(), inside, "check at now = {now}");
    }
}

#[test]
fn missing_claims_leave_the_window_open_and_negative_leeway_counts_as_zero() {
    let w = TimeClaims::default().window(30);
    assert!(w.contains(f64::MIN) && w.contains(f64::MAX));
    let t = TimeClaims {
        exp: Some(1000.0),
        nbf: None,
    };
    assert_eq!(t.window(-5).until, 1000.0);
    assert!(t.check(999, -5).is_ok() && t.check(1000, -5).is_err());
}
