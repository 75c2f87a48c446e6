//! Pseudonyms: keyed, stable, different across grantees and keys, changed by rotation; the
//! key never prints.

use beffroi_policy::{pseudonym, Grantee, PseudonymKey};

use crate::support::{partner, sensor};

const KEY: [u8; 32] = [0xA7; 32];

#[test]
fn stable_for_one_key_grantee_and_sensor() {
    let key = PseudonymKey::new(KEY, 1);
    let acme = partner("acme");
    let first = pseudonym(&key, &acme, &sensor("s1"));
    assert_eq!(first, pseudonym(&key.clone(), &acme, &sensor("s1")));
    assert!(first.starts_with("p_") && first.len() == 28, "{first}");
    assert!(first[2..]
        .bytes()
        .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)));
    assert_ne!(first, pseudonym(&key, &acme, &sensor("s2")));
}

#[test]
fn different_across_grantees_keys_and_epochs() {
    let key = PseudonymKey::new(KEY, 1);
    let s1 = sensor("s1");
    let base = pseudonym(&key, &partner("acme"), &s1);
    assert_ne!(base, pseudonym(&key, &partner("globex"), &s1));
    assert_ne!(base, pseudonym(&key, &Grantee::Public, &s1));
    let mut other = KEY;
    other[0] ^= 1;
    assert_ne!(
        base,
        pseudonym(&PseudonymKey::new(other, 1), &partner("acme"), &s1)
    );
    // Rotation: a new epoch changes every pseudonym, even with the same bytes.
    assert_ne!(
        base,
        pseudonym(&PseudonymKey::new(KEY, 2), &partner("acme"), &s1)
    );
}

#[test]
fn the_key_never_prints() {
    let key = PseudonymKey::new([0x42; 32], 3);
    for text in [format!("{key:?}"), format!("{key}"), format!("{key:#?}")] {
        assert!(!text.contains("42") && !text.contains("66"), "{text}");
        assert!(text.contains("redacted") && text.contains('3'), "{text}");
    }
    assert_eq!(key.epoch(), 3);
    assert_eq!(key.expose_secret(), &[0x42; 32]);
}
