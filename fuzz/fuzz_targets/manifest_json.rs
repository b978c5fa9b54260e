//! Fuzzes the JSON manifest interchange reader: it must never panic, and whatever it accepts
//! (of version 1 or 2: the seeds `archive*.json`) must survive a round trip through the
//! writer unchanged, with the same id, and the streamed writer (`show --json`'s) must write
//! the same bytes as the whole value.
#![no_main]

use cowtree_store::interchange::{JsonWriter, from_json, to_json};
use cowtree_store::manifest::EntryRef;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = from_json(data) {
        let text = serde_json::to_vec(&to_json(&m, &m.id())).expect("serialize");
        let again = from_json(&text).expect("our own output must parse");
        assert_eq!(again, m);
        assert_eq!(again.id(), m.id());
        let archive = m.archive();
        let mut w = JsonWriter::start_archive(Vec::new(), m.bytes(), archive.map(|a| a.preserve))
            .expect("writing to a Vec");
        for (i, e) in m.entries().iter().enumerate() {
            w.entry_with(EntryRef::of(e), archive.and_then(|a| a.entries.get(i)));
        }
        let streamed = match archive {
            Some(a) => w.finish_archive(&m.id(), m.files(), &a.extras),
            None => w.finish(&m.id(), m.files()),
        }
        .expect("the streamed JSON of a valid manifest");
        assert_eq!(streamed, text, "streamed and whole JSON differ");
    }
});
