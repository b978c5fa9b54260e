//! Property tests for name validation: no accepted path can leave the directory it is applied
//! to, the validator agrees with an independent model, and it never panics.

use std::path::{Component, Path};

use cowtree_fs::name::{
    NAME_MAX, NameError, PATH_MAX, check_relative_path, validate_component, validate_relative_path,
};
use proptest::prelude::*;
use std::os::unix::ffi::OsStrExt;

/// An independent statement of the rules, written differently from the validator.
fn model_accepts(path: &[u8]) -> bool {
    if path.is_empty() || path.len() > PATH_MAX || path.contains(&0) {
        return false;
    }
    let text = path;
    if text.first() == Some(&b'/') || text.last() == Some(&b'/') {
        return false;
    }
    if text.windows(2).any(|w| w == b"//") {
        return false;
    }
    text.split(|&b| b == b'/')
        .all(|c| c != b"." && c != b".." && !c.is_empty() && c.len() <= NAME_MAX)
}

/// Bytes biased towards the interesting ones.
fn path_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => Just(b'/'),
        4 => Just(b'.'),
        1 => Just(0u8),
        1 => Just(b'\n'),
        1 => Just(b'\\'),
        1 => Just(0xffu8),
        8 => any::<u8>(),
        8 => prop::char::range('a', 'e').prop_map(|c| c as u8),
    ];
    prop::collection::vec(byte, 0..64)
}

proptest! {
    // Seeded from the binary's base seed (COWTREE_TEST_SEED replays a failure; see
    // cowtree_testutil::seed), not proptest's own random one.
    #![proptest_config(ProptestConfig {
        cases: 1024,
        rng_seed: proptest::test_runner::RngSeed::Fixed(cowtree_testutil::seed::taken()),
        ..ProptestConfig::default()
    })]

    #[test]
    fn validator_agrees_with_the_model(path in path_bytes()) {
        prop_assert_eq!(validate_relative_path(&path).is_ok(), model_accepts(&path));
    }

    #[test]
    fn check_gives_the_error_of_the_first_bad_component(path in path_bytes()) {
        let want: Result<(), NameError> = if path.is_empty() {
            Err(NameError::Empty)
        } else if path.len() > PATH_MAX {
            Err(NameError::PathTooLong(path.len()))
        } else if path[0] == b'/' {
            Err(NameError::Absolute)
        } else {
            path.split(|&b| b == b'/').try_for_each(validate_component)
        };
        prop_assert_eq!(check_relative_path(&path), want);
    }

    #[test]
    fn accepted_paths_stay_beneath_the_root(path in path_bytes()) {
        if let Ok(parts) = validate_relative_path(&path) {
            let p = Path::new(std::ffi::OsStr::from_bytes(&path));
            // Every lexical component is a plain name: no root, no parent, no current dir.
            for c in p.components() {
                prop_assert!(matches!(c, Component::Normal(_)), "{:?} in {:?}", c, p);
            }
            prop_assert_eq!(p.components().count(), parts.len());
            for part in parts {
                prop_assert!(validate_component(part).is_ok());
            }
        }
    }

    #[test]
    fn components_of_valid_names_join_to_a_valid_path(
        names in prop::collection::vec(prop::collection::vec(1u8..=255, 1..20), 1..10)
    ) {
        let names: Vec<Vec<u8>> = names
            .into_iter()
            .map(|n| n.into_iter().filter(|&b| b != b'/').collect::<Vec<u8>>())
            .filter(|n| !n.is_empty() && n != b"." && n != b"..")
            .collect();
        prop_assume!(!names.is_empty());
        let joined = names.join(&b'/');
        let parts = validate_relative_path(&joined).expect("valid components join to a valid path");
        prop_assert_eq!(parts.len(), names.len());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1200)) {
        let _ = validate_relative_path(&bytes);
        let _ = validate_component(&bytes);
    }
}
