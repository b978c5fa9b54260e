//! Fuzzes the JSON manifest interchange reader: it must never panic, and whatever it accepts
//! must survive a round trip through the writer unchanged.
#![no_main]

use cowtree_store::interchange::{from_json, to_json};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = from_json(data) {
        let text = serde_json::to_vec(&to_json(&m, &m.id())).expect("serialize");
        let again = from_json(&text).expect("our own output must parse");
        assert_eq!(again, m);
    }
});
