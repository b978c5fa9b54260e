//! Hardlinks inside the source kept as hardlinks in the destination
//! ([`crate::Preserve::links`]): the first name of a source inode (device, inode) to be
//! made is linked as any file is, and every later name becomes a hardlink of it.
//!
//! Names of one inode may be made by several workers at once. The first to ask claims the
//! inode ([`Claim::First`]) and says where it made it once the file is complete (data,
//! owner, attributes: a link shares them); a worker that asks meanwhile waits for that. No
//! worker waits while it holds a claim (a claim is settled before its holder makes anything
//! else), so no wait can close a cycle. A claim dropped unsettled (the source vanished, an
//! error) lets the next name claim the inode itself.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use cowtree_fs::sys::Ino;

/// Where the first name of a source inode was made.
#[derive(Debug)]
pub(crate) struct FirstName {
    /// Its directory, relative to the destination root (where it is now: in a merge,
    /// under a temporary name).
    pub open: PathBuf,
    /// Its name there (in a merge, its temporary name).
    pub name: OsString,
    /// Its (device, inode), checked on every link made to it.
    pub id: (u64, Ino),
}

enum Slot {
    /// A worker is making the first name.
    Making,
    Made(Arc<FirstName>),
}

/// The first names made so far, by source (device, inode).
#[derive(Default)]
pub(crate) struct LinkMap {
    slots: Mutex<HashMap<(u64, Ino), Slot>>,
    settled: Condvar,
}

/// What [`LinkMap::claim`] gives.
pub(crate) enum Claim<'m> {
    /// This name is the first: make the file, then [`Making::made`].
    First(Making<'m>),
    /// Link to this first name.
    Link(Arc<FirstName>),
}

/// A claim on a source inode whose first name is being made.
pub(crate) struct Making<'m> {
    map: &'m LinkMap,
    key: (u64, Ino),
    settled: bool,
}

impl LinkMap {
    /// Claims the source inode `key` (device, inode) for the name at hand, or gives its
    /// first name, waiting while another worker is making it.
    pub fn claim(&self, key: (u64, Ino)) -> Claim<'_> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            match slots.get(&key) {
                None => {
                    slots.insert(key, Slot::Making);
                    return Claim::First(Making {
                        map: self,
                        key,
                        settled: false,
                    });
                }
                Some(Slot::Made(first)) => return Claim::Link(first.clone()),
                Some(Slot::Making) => {
                    slots = self
                        .settled
                        .wait(slots)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }

    fn settle(&self, key: (u64, Ino), made: Option<FirstName>) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        match made {
            Some(first) => slots.insert(key, Slot::Made(Arc::new(first))),
            None => slots.remove(&key),
        };
        drop(slots);
        self.settled.notify_all();
    }
}

impl Making<'_> {
    /// The first name is complete at `first`: later names link to it.
    pub fn made(mut self, first: FirstName) {
        self.settled = true;
        self.map.settle(self.key, Some(first));
    }
}

impl Drop for Making<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.map.settle(self.key, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(name: &str) -> FirstName {
        FirstName {
            open: PathBuf::from("d"),
            name: name.into(),
            id: (1, 2),
        }
    }

    #[test]
    fn the_first_claim_makes_and_later_ones_link_to_it() -> Result<(), String> {
        let map = LinkMap::default();
        let Claim::First(making) = map.claim((7, 8)) else {
            return Err("the first claim must make the file".into());
        };
        making.made(first("a"));
        match map.claim((7, 8)) {
            Claim::Link(f) if f.name == "a" => {}
            _ => return Err("a later claim must link to the first name".into()),
        }
        match map.claim((7, 9)) {
            Claim::First(_) => Ok(()),
            Claim::Link(_) => Err("another inode is claimed on its own".into()),
        }
    }

    #[test]
    fn a_claim_dropped_unsettled_lets_the_next_name_make_the_file() -> Result<(), String> {
        let map = LinkMap::default();
        drop(map.claim((1, 1)));
        match map.claim((1, 1)) {
            Claim::First(_) => Ok(()),
            Claim::Link(_) => Err("nothing was made: the next name must make it".into()),
        }
    }

    #[test]
    fn a_claim_waits_for_the_first_name_made_on_another_thread() -> Result<(), String> {
        let map = LinkMap::default();
        let Claim::First(making) = map.claim((3, 4)) else {
            return Err("the first claim must make the file".into());
        };
        std::thread::scope(|s| {
            let waiter = s.spawn(|| match map.claim((3, 4)) {
                Claim::Link(f) => Some(f.name.clone()),
                Claim::First(_) => None,
            });
            // Whether the waiter asks before or after this, it must get the first name.
            making.made(first("x"));
            match waiter.join() {
                Ok(Some(name)) if name == "x" => Ok(()),
                other => Err(format!("the waiter got {other:?}")),
            }
        })
    }
}
