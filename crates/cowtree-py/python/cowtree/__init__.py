"""cowtree: link trees into place by copy-on-write clone, copy, hardlink or symlink.

The Linker of the `cowtree` command, for installers written in Python: one call links a
tree (or several, or a list of files) into a destination, clones where the filesystems can
and copies where they cannot, and reports what really ran. The interpreter is released while
the work runs. See `cowtree._cowtree` (and its stubs) for every argument.

    import cowtree
    report = cowtree.link_tree("cache/six-1.17.0", "venv/lib/python3.12/site-packages",
                               on_existing="overwrite")
    print(report.cloned, report.copied, [f.reason for f in report.fallbacks])
"""

from collections.abc import Sequence

from ._cowtree import (
    CancelledError,
    Collision,
    CollisionError,
    DestinationBusyError,
    DestinationExistsError,
    DestinationInsideSourceError,
    DestinationIsSymlinkError,
    DestinationNotDirectoryError,
    FailedAfterSuccessError,
    Fallback,
    InvalidDestinationError,
    InvalidDestinationPathError,
    IoError,
    LinkError,
    Linker,
    LinkIoError,
    Record,
    RecordEntry,
    Report,
    SameSourceAndDestinationError,
    Source,
    SourceInsideDestinationError,
    SourceMissingError,
    SourceNotLinkableError,
    SpecialFilesError,
    StrictFallbackError,
    UndoFailedError,
    UnsupportedError,
    __version__,
    link_tree,
    record_lines,
)

__all__ = [
    "CancelledError",
    "Collision",
    "CollisionError",
    "DestinationBusyError",
    "DestinationExistsError",
    "DestinationInsideSourceError",
    "DestinationIsSymlinkError",
    "DestinationNotDirectoryError",
    "FailedAfterSuccessError",
    "Fallback",
    "InvalidDestinationError",
    "InvalidDestinationPathError",
    "IoError",
    "LinkError",
    "LinkIoError",
    "Linker",
    "Record",
    "RecordEntry",
    "Report",
    "SameSourceAndDestinationError",
    "Source",
    "SourceInsideDestinationError",
    "SourceMissingError",
    "SourceNotLinkableError",
    "SpecialFilesError",
    "StrictFallbackError",
    "UndoFailedError",
    "UnsupportedError",
    "__version__",
    "link_tree",
    "record_lines",
]

# A Record is a read-only sequence of RecordEntry (made in Rust, registered here).
Sequence.register(Record)
