//! Reading a manifest from a stream a chunk at a time, hashing every byte to the end, each
//! entry handed to a [`Sink`] as it is decoded: the encoding is never held whole.

use crate::hash::Hash;

use super::archive::{Archive, ArchiveCheck, EntryMeta};
use super::check::Checker;
use super::encoding::{Entry, EntryRef, HEADER_LEN, Reader};
use super::error::ManifestError;

/// Bytes [`Manifest::read`] reads at a time.
pub(crate) const READ_CHUNK: usize = 1 << 20;

/// Reads and hashes every byte `src` gives (to the end, even past an error), `chunk` bytes at
/// a time, decoding the entries into `sink` (framed, then nothing after the last one): what
/// [`Manifest::read`], [`crate::compact::CompactManifest::read`] and [`read_each`] share.
/// `size` is the length expected (the file's), which bounds the sink's first allocation.
///
/// A version 2 manifest's archive is checked too (see [`ArchiveCheck`]) and returned: its
/// records, and with `keep` each entry's metadata (else none).
pub(crate) fn read_into(
    src: impl std::io::Read,
    size: u64,
    chunk: usize,
    sink: &mut impl Sink,
    keep: bool,
) -> std::io::Result<(Hash, Result<Option<Archive>, ManifestError>)> {
    let mut s = Stream::new(src, chunk);
    let decoded = s.decode(size, sink, keep)?;
    // The bytes after the last entry (all of them, after an error), read and hashed.
    let rest = s.rest()?;
    let decoded = decoded.and_then(|archive| match rest {
        0 => Ok(archive),
        n => Err(ManifestError::TrailingBytes(n)),
    });
    Ok((s.hash(), decoded))
}

/// Reads the manifest `src` reads as [`Manifest::read`] does (a chunk at a time, every byte
/// hashed to the end), checking each entry as [`validate`] does and handing it to `f` once
/// checked, holding none: what reads a snapshot's entries once (verify's check of the blobs
/// they name). Entries before a refused one, and those of bytes that turn out not to be the
/// snapshot's (the hash returned), have been handed to `f`: discard what it made of them.
pub(crate) fn read_each(
    src: impl std::io::Read,
    size: u64,
    f: &mut dyn FnMut(EntryRef<'_>),
) -> std::io::Result<(Hash, Result<(), ManifestError>)> {
    let (hash, decoded) = read_each_meta(src, size, &mut |e, _| f(e))?;
    Ok((hash, decoded.map(|_| ())))
}

/// [`read_each`], handing `f` what version 2 records of each entry beside it (`None` in
/// version 1), and returning a version 2 manifest's archive: its records, not its entries'
/// metadata (handed to `f` only). The archive's checks of an entry are made after `f` has
/// it (as every [`Sink`] has it), and those of the whole at the end.
pub(crate) fn read_each_meta(
    src: impl std::io::Read,
    size: u64,
    f: &mut dyn FnMut(EntryRef<'_>, Option<&EntryMeta>),
) -> std::io::Result<(Hash, Result<Option<Archive>, ManifestError>)> {
    struct Each<'f> {
        checker: Checker,
        f: &'f mut dyn FnMut(EntryRef<'_>, Option<&EntryMeta>),
    }
    impl Sink for Each<'_> {
        fn reserve(&mut self, _: usize) {}
        fn push(
            &mut self,
            index: u64,
            e: EntryRef<'_>,
            meta: Option<&EntryMeta>,
        ) -> Result<(), ManifestError> {
            // (Decoded entries' data matches their kind.)
            self.checker
                .check(index, e.path, e.kind, e.target(), true)?;
            (self.f)(e, meta);
            Ok(())
        }
    }
    let mut each = Each {
        checker: Checker::default(),
        f,
    };
    read_into(src, size, READ_CHUNK, &mut each, false)
}

/// Where [`Stream::decode`] puts the entries it decodes, one at a time in their order.
pub(crate) trait Sink {
    /// Room for `n` entries (bounded by what the input's size can hold).
    fn reserve(&mut self, n: usize);
    /// Entry `index`, framed and decoded (its data matches its kind), with what version 2
    /// records of it (framed only: checked after this); an error ends the decoding with it.
    fn push(
        &mut self,
        index: u64,
        e: EntryRef<'_>,
        meta: Option<&EntryMeta>,
    ) -> Result<(), ManifestError>;
}

impl Sink for Vec<Entry> {
    fn reserve(&mut self, n: usize) {
        // (A wrong size that no allocation can hold is not a panic: the entries then grow.)
        let _ = self.try_reserve_exact(n);
    }

    fn push(
        &mut self,
        _: u64,
        e: EntryRef<'_>,
        _: Option<&EntryMeta>,
    ) -> Result<(), ManifestError> {
        Vec::push(self, e.to_entry());
        Ok(())
    }
}

/// A manifest being read and hashed a chunk at a time ([`Manifest::read`]).
struct Stream<R> {
    src: R,
    chunk: usize,
    hasher: blake3::Hasher,
    /// Bytes read and not yet decoded, from `start` on.
    buf: Vec<u8>,
    start: usize,
    /// Every byte has been read.
    eof: bool,
    /// The entries are version 2's (set once the header is read).
    v2: bool,
}

impl<R: std::io::Read> Stream<R> {
    /// Reads `src` `chunk` bytes at a time.
    fn new(src: R, chunk: usize) -> Stream<R> {
        Stream {
            src,
            chunk: chunk.max(1),
            hasher: blake3::Hasher::new(),
            buf: Vec::new(),
            start: 0,
            eof: false,
            v2: false,
        }
    }

    /// The hash of the bytes read so far (all of them after [`Stream::rest`]).
    fn hash(&self) -> Hash {
        Hash::from(self.hasher.finalize())
    }

    /// Reads one more chunk after the bytes not yet decoded (dropping those decoded), hashing
    /// it; sets `eof` when the source ends within it.
    fn more(&mut self) -> std::io::Result<()> {
        self.more_by(self.chunk)
    }

    /// [`Stream::more`], reading `n` bytes (at least a chunk).
    fn more_by(&mut self, n: usize) -> std::io::Result<()> {
        use std::io::Read;
        let n = n.max(self.chunk);
        self.buf.drain(..self.start);
        self.start = 0;
        let had = self.buf.len();
        // (Amortised: an entry whose framing claims gigabytes keeps what follows it, as
        // `Manifest::decode` would see it, without a copy of the buffer per chunk.)
        self.buf.reserve(n);
        let got = (&mut self.src).take(n as u64).read_to_end(&mut self.buf)?;
        self.hasher.update(&self.buf[had..]);
        self.eof = got < n;
        Ok(())
    }

    /// Runs `f` on the bytes not yet decoded, reading more while what it reads runs past them
    /// (`Truncated`) and there are more: so it sees what it would see of the whole encoding.
    /// What it decoded is consumed when it succeeds.
    fn parse<T>(
        &mut self,
        mut f: impl FnMut(&mut Reader<'_>) -> Result<T, ManifestError>,
    ) -> std::io::Result<Result<T, ManifestError>> {
        loop {
            let mut r = Reader {
                bytes: &self.buf[self.start..],
                pos: 0,
                v2: self.v2,
            };
            match f(&mut r) {
                // As much again as is waiting: one step that runs past many chunks (version
                // 2's records are one) is parsed a few times, not once per chunk.
                Err(ManifestError::Truncated { .. }) if !self.eof => {
                    self.more_by(self.buf.len() - self.start)?
                }
                got => {
                    if got.is_ok() {
                        self.start += r.pos;
                    }
                    return Ok(got);
                }
            }
        }
    }

    /// The header and every entry, framed and decoded into `sink` ([`Manifest::decode`]
    /// before its check of what follows and its validation).
    fn decode(
        &mut self,
        size: u64,
        sink: &mut impl Sink,
        keep: bool,
    ) -> std::io::Result<Result<Option<Archive>, ManifestError>> {
        // The whole header, or the whole input if shorter.
        self.more()?;
        while self.buf.len() - self.start < HEADER_LEN && !self.eof {
            self.more()?;
        }
        let count = match self.parse(|r| r.header().map(|c| (c, r.v2)))? {
            Ok((count, v2)) => {
                self.v2 = v2;
                count
            }
            Err(e) => return Ok(Err(e)),
        };
        let mut archive = None;
        if self.v2 {
            match self.parse(|r| r.archive_head())? {
                Ok((bits, extras)) => match ArchiveCheck::new(bits, extras, keep) {
                    Ok(a) => archive = Some(a),
                    Err(e) => return Ok(Err(e)),
                },
                Err(e) => return Ok(Err(e)),
            }
        }
        // Each entry takes at least 6 bytes; never trust the count for an allocation.
        let cap = usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(usize::try_from(size.saturating_sub(HEADER_LEN as u64) / 6).unwrap_or(0));
        sink.reserve(cap);
        for index in 0..count {
            let step = self.parse(|r| {
                let (e, meta) = r.entry_full(index)?;
                sink.push(index, e, meta.as_ref())?;
                match (&mut archive, meta) {
                    (Some(a), Some(m)) => a.entry(index, &e, m),
                    _ => Ok(()),
                }
            })?;
            if let Err(e) = step {
                return Ok(Err(e));
            }
        }
        Ok(archive.map_or(Ok(None), ArchiveCheck::finish))
    }

    /// Reads to the end: how many bytes were left after those decoded.
    fn rest(&mut self) -> std::io::Result<usize> {
        let mut n = self.buf.len() - self.start;
        while !self.eof {
            self.start = self.buf.len();
            self.more()?;
            n += self.buf.len();
        }
        Ok(n)
    }
}
