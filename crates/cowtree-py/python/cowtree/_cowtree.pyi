"""Typed stubs of the native module `cowtree._cowtree` (re-exported by `cowtree`).

Paths are accepted as `str`, `bytes` or `os.PathLike`, and returned as `str` (decoded as
`os.fsdecode` does: `os.fsencode(p)` gives a name's bytes back, non-UTF-8 included).
Every call runs with the interpreter released: other Python threads go on meanwhile.
"""

import os
from typing import Iterable, Iterator, Literal, Optional, Sequence, Tuple, Union, overload

__version__: str

StrPath = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
Mode = Literal["auto", "clone", "copy", "hardlink", "symlink"]
OnExisting = Literal["fail", "overwrite", "skip"]
HashName = Literal["sha256", "blake3"]
PreserveName = Literal["ownership", "xattr", "acl", "links", "special", "all", "mode", "timestamps"]

class Fallback:
    """Files copied instead of cloned or hardlinked, for one cause."""

    reason: str
    """A short stable name: `cross-device`, `filesystem-cannot-reflink`, `source-vanished`, ..."""
    description: str
    """A sentence saying what happened."""
    per_file: bool
    """True when the cause holds for each file alone, false for a whole filesystem pair."""
    count: int
    bytes: int
    example: str
    """The first source file affected."""

class Collision:
    """Two sources of one call gave an entry at the same destination path."""

    path: str
    """Relative to the destination."""
    sources: Tuple[str, str]
    """The earlier source's entry, then the later one's."""
    action: Literal["replaced", "kept"]

class RecordEntry:
    """One entry a call wrote (with `record=True` or a `hash`)."""

    path: str
    """Relative to the destination."""
    kind: Literal["file", "dir", "symlink"]
    """What is at the path now (a file linked in symlink mode is a symlink)."""
    size: Optional[int]
    """Bytes of a file or of a symlink's target; 0 for a directory; None only for a
    hardlinked file with `hardlink_sizes=False`."""
    method: Optional[Literal["clone", "copy", "hardlink", "symlink"]]
    """How a file's data got there; None for directories and symlinks from the source."""
    hash: Optional[bytes]
    """The raw digest of a regular file, when a `hash` was asked for."""
    hash_algo: Optional[HashName]
    source: int
    """Index of the source (or file entry) in the call's list."""
    from_path: Optional[str]
    """Where it came from, relative to its source tree, before any mapping (the path given,
    for a file source or entry); None for directories."""
    def __eq__(self, other: object) -> bool:
        """Equal when every attribute is (each read of a Record makes a new object)."""
    def __hash__(self) -> int: ...

class Record(Sequence[RecordEntry]):
    """The entries a call wrote, sorted by path: a read-only sequence of RecordEntry. The
    entries stay in Rust; each RecordEntry is made when it is read (indexing, iterating), so
    a record that is only split and passed on to `record_lines` costs no Python object per
    entry. A slice is a Record too."""

    def __len__(self) -> int: ...
    @overload
    def __getitem__(self, index: int) -> RecordEntry: ...
    @overload
    def __getitem__(self, index: slice) -> Record: ...
    def __iter__(self) -> Iterator[RecordEntry]: ...
    def __contains__(self, value: object) -> bool: ...
    def index(self, value: object, start: int = 0, stop: int = ...) -> int: ...
    def count(self, value: object) -> int: ...
    def by_source(self) -> list[Record]:
        """The entries of each source (or file entry), in the order the call was given them:
        one Record per source, empty where a source wrote nothing; a directory belongs to the
        first source that has it."""

class Report:
    """What a call did. Counts are of source entries; `cloned + copied + hardlinked +
    symlinked == files`."""

    destination: str
    files: int
    dirs: int
    symlinks: int
    cloned: int
    copied: int
    hardlinked: int
    symlinked: int
    bytes: int
    bytes_cloned: int
    bytes_copied: int
    fallbacks: list[Fallback]
    """One entry per cause, sorted by reason: the report tells the truth about what ran."""
    skipped: int
    """Source entries not linked because something was there (on_existing="skip")."""
    special: int
    """Special files skipped (skip_special=True)."""
    special_made: int
    """Special files (FIFOs, sockets, devices as root) made again (preserve "special")."""
    hardlinks: int
    """Names made as hardlinks of an earlier name of the same source file (preserve
    "links"); not counted in `files`."""
    not_kept: dict[str, int]
    """Entries of which something `preserve` asked for could not be kept (not permitted,
    not supported by the destination), per kind: "ownership", "xattr", "acl", "links",
    "special", each present (0 when all was kept). Never an error: as `cowtree clone
    --json`'s "not_kept"."""
    vanished: int
    dropped: int
    """Entries a mapping left out."""
    replaced: int
    collisions: list[Collision]
    record: Record
    """Every entry written, sorted by path (empty unless `record=True` or a `hash`)."""
    elapsed: float
    """Seconds."""

class Source:
    """A tree or file to link, with optional mapping rules.

    `map` is a sequence of `(prefix, target)` rules. A rule applies to an entry whose path
    relative to the source is `prefix` or beneath it (whole components; `""` matches every
    entry). The entry goes to `target` joined with the rest of its path, or is left out with
    everything beneath it when `target` is None. The first rule that applies decides; no
    rule keeps the path; an entry mapped to `""` (the destination itself) is left out, its
    entries still linked. The rules run in the Linker's threads, not in Python.
    """

    path: str
    def __init__(
        self, path: StrPath, map: Optional[Iterable[Tuple[StrPath, Optional[StrPath]]]] = None
    ) -> None: ...

class Linker:
    """A linking session: options chosen once, fallback decisions kept across calls (one
    failed clone per pair of filesystems, not one per call).

    mode: "auto" clones and copies where the filesystems cannot; "clone" likewise, as a
      request; "copy"; "hardlink" (writes through the destination reach the source: only
      where nothing writes; copies where hardlinks are impossible); "symlink".
    on_existing: "fail" refuses an existing destination before any work; "overwrite" merges,
      replacing entries (linked beside them, then renamed over: an existing inode is never
      written through); "skip" merges, keeping what is there. A merge is a transaction: on
      any error the destination is put back as it was.
    strict: any fallback raises StrictFallbackError instead (nothing is created).
    record / hash: fill `Report.record` (with each file's "sha256" or "blake3" digest).
    jobs: worker threads (0: one per core).
    preserve_times: give entries the source's access and modification times.
    skip_special: skip FIFOs, sockets and devices instead of refusing the tree.
    sync: make what was written durable before it is published.
    hardlink_sizes: stat each hardlinked file for its size (False: size None, faster).
    wait: a merge into an existing destination holds a lock on it (an exclusive flock on the
      directory) until it is done, so that two merges into one destination (two installs
      into one environment, in this process or another) run one after the other; with
      wait=True a merge that finds it held waits (Ctrl-C or cancel() end the wait), with
      False it raises DestinationBusyError at once, changing nothing.
    preserve: what is kept beyond data, permission bits and times, as `cp --preserve` (and
      `cowtree clone --preserve`) names it: a string of comma-separated items or an
      iterable of them: "ownership" (owner and group; set-ID bits where both were kept),
      "xattr" (extended attributes), "acl" (POSIX ACLs), "links" (hardlinks between files of
      the source stay hardlinks), "special" (FIFOs, sockets, device nodes as root are made
      again), "all"; "mode" and "timestamps" change nothing. An unknown item raises
      ValueError naming it. What cannot be kept (not root, no support) is counted in
      `Report.not_kept`, never raised.
    archive: everything (`cp -a`, `cowtree clone --archive`): preserve="all".
    """

    mode: Mode
    on_existing: OnExisting
    strict: bool
    jobs: int
    wait: bool
    preserve: Tuple[str, ...]
    """The items kept (`preserve`, `archive`), each by name ("all" as its five items)."""
    def __init__(
        self,
        mode: Mode = "auto",
        on_existing: OnExisting = "fail",
        strict: bool = False,
        *,
        record: bool = False,
        hash: Optional[HashName] = None,
        jobs: int = 0,
        preserve_times: bool = True,
        skip_special: bool = False,
        sync: bool = False,
        hardlink_sizes: bool = True,
        wait: bool = True,
        preserve: Union[str, Iterable[PreserveName], None] = None,
        archive: bool = False,
    ) -> None: ...
    def link_tree(self, src: StrPath, dst: StrPath) -> Report:
        """Links the tree (or file) `src` to `dst`."""
    def link_trees(self, sources: Iterable[Union[StrPath, Source]], dst: StrPath) -> Report:
        """Links several trees (or files) into `dst` in one pass; two sources with an entry
        at one path are a collision, decided by `on_existing` and listed in the report."""
    def link_files(
        self,
        entries: Iterable[Union[Tuple[StrPath, StrPath], Tuple[StrPath, StrPath, Optional[int]]]],
        dst: StrPath,
    ) -> Report:
        """Links `(src, dst_relative[, mode])` files into `dst`, making parent directories;
        `mode` sets a cloned or copied file's permission bits (None: the source's)."""
    cancelled: bool
    """True once the session was cancelled (by `cancel()` or Ctrl-C during a call)."""
    def cancel(self) -> None:
        """Stops the session's running and later calls, from another thread (or a timer): a
        running call stops soon, undoes its work (a new destination does not appear, a merge
        is rolled back) and raises CancelledError; later calls raise it at once. Ctrl-C
        during a call does the same, and the call raises KeyboardInterrupt."""
    def recover(self, dst: StrPath) -> int:
        """Finishes merges into `dst` that a killed process left half done; returns how many."""

def link_tree(
    src: StrPath,
    dst: StrPath,
    mode: Mode = "auto",
    on_existing: OnExisting = "fail",
    strict: bool = False,
    *,
    record: bool = False,
    hash: Optional[HashName] = None,
    jobs: int = 0,
    preserve_times: bool = True,
    skip_special: bool = False,
    sync: bool = False,
    wait: bool = True,
    preserve: Union[str, Iterable[PreserveName], None] = None,
    archive: bool = False,
) -> Report:
    """Links the tree (or file) `src` to `dst` with a one-call Linker."""

def record_lines(
    entries: Record,
    relative_to: Optional[StrPath] = None,
    *,
    known: Optional[StrPath] = None,
    changed: Iterable[StrPath] = (),
) -> str:
    """The lines of an installed package's RECORD file (`path,sha256=<digest>,size`, each
    ending in a newline) for the files and symlinks of `entries`, in their order (directories
    get no line), made in Rust with the interpreter released (threads may write several
    packages' RECORDs at once).

    relative_to: the directory the paths are written relative to, given relative to the
      destination (site-packages, where the .dist-info directory is): a path beneath it loses
      it, any other gets one `../` per component of it. A path holding a comma, a quote or a
      line break is quoted as the `csv` module quotes.
    known: the package's own RECORD file (verified when the package entered the cache); a
      file's digest and size are taken from its line for the path the file came from
      (`RecordEntry.from_path`), as pip and uv do, instead of reading the file.
    changed: paths (relative to the destination, as in the record) of files changed since
      they were linked, such as scripts whose `#!python` line was rewritten: read again.

    A file's SHA-256 and size come from, in this order: the file itself if it is in
    `changed`; the Linker's own (hash="sha256"; the size is always the Linker's when it has
    one); `known`; the file, read beneath the destination without following symlinks.
    Symlinks get `path,,`. Raises OSError (with the file name) when a file cannot be read,
    ValueError for a `relative_to` that is absolute or holds `..`."""

class LinkError(OSError):
    """A link call failed. Each subclass is one cause; the attributes carry its facts."""

    kind: str
    """The cause in snake case, e.g. "destination_exists" (one per subclass)."""
    path: Optional[str]
    """The path the error is about."""
    src: str
    """The source entry, where the cause names two paths."""
    dst: str
    """The destination entry, where the cause names two paths."""
    errno: Optional[int]
    """The OS error number where one is behind the cause (IoError, LinkIoError, and
    UndoFailedError after one); str() is then "[Errno N] message"."""
    destination_unchanged: bool
    """False only when a failed merge could not be undone (UndoFailedError)."""

class SourceMissingError(LinkError):
    """The source does not exist (`path`)."""

class SourceNotLinkableError(LinkError):
    """The source is neither a directory nor a regular file (`path`)."""

class SameSourceAndDestinationError(LinkError):
    """Source and destination are the same (`path`)."""

class DestinationInsideSourceError(LinkError):
    """The destination (`path`, `dst`) lies inside the source (`src`)."""

class SourceInsideDestinationError(LinkError):
    """The source (`path`, `src`) lies inside the destination merged into (`dst`)."""

class DestinationExistsError(LinkError):
    """The destination exists and on_existing is "fail"; nothing was changed (`path`)."""

class DestinationNotDirectoryError(LinkError):
    """The destination exists and is not a directory (`path`)."""

class DestinationIsSymlinkError(LinkError):
    """The destination is a symlink, never followed (`path`)."""

class InvalidDestinationError(LinkError):
    """The destination path has no final name (`path`)."""

class SpecialFilesError(LinkError):
    """The source (`path`) holds FIFOs, sockets or devices (`paths`); see skip_special."""

    paths: list[str]

class StrictFallbackError(LinkError):
    """strict=True refused to fall back from `attempt` for `src` -> `dst` (`path` is `src`)."""

    attempt: Literal["clone", "copy", "hardlink", "symlink"]
    reason: str
    """The fallback's stable name, as in `Fallback.reason`."""

class FailedAfterSuccessError(LinkError):
    """A method that had worked failed for a whole filesystem pair (`src`, `dst`)."""

    attempt: Literal["clone", "copy", "hardlink", "symlink"]
    reason: str

class InvalidDestinationPathError(LinkError):
    """A mapping or file entry gave `path`, not a valid relative path, for `src` (`why`)."""

    why: str

class CollisionError(LinkError):
    """Two sources (`sources`) give one `path` and on_existing is "fail"."""

    sources: Tuple[str, str]

class UndoFailedError(LinkError):
    """A merge into `path` failed (`cause`, also `__cause__`) and undoing it failed too
    (`undo_error`): part of it may be there; `errno` is the cause's."""

    cause: LinkError
    undo_error: str

class CancelledError(LinkError):
    """The session was cancelled (Linker.cancel()); nothing changed at `path`, the
    destination."""

class DestinationBusyError(LinkError):
    """Another merge (in this process or another) holds the lock on the existing destination
    `path`; nothing changed there."""

class UnsupportedError(LinkError):
    """The call asks for what this platform cannot do (on Windows: a merge into an existing
    destination, whole_tree, symlink mode, the preserve items); nothing was changed. `path`
    is None."""

class IoError(LinkError):
    """An OS error (`errno`) while doing `op` on `path`."""

    op: str

class LinkIoError(LinkError):
    """An OS error (`errno`) while doing `op` from `src` to `dst`."""

    op: str
