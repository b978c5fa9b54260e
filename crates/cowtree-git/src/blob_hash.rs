//! A file's git blob id, for the evidence that a reused file holds the target's bytes (see
//! [`crate::trust::Verdict::Hash`]): read through a descriptor, hashed as git hashes a blob,
//! with git's SHA-1 collision detection.

use cowtree_fs::sys::AsFd;

use gix::ObjectId;

/// How much is read at once.
const CHUNK: usize = 256 * 1024;

/// Whether the first `size` bytes of the file open as `fd` (read from offset 0), and nothing
/// after them, hash to `want` as a git blob. A file of another length, or one that trips
/// git's SHA-1 collision detection, does not.
pub fn holds_blob(fd: impl AsFd, size: u64, want: &ObjectId) -> std::io::Result<bool> {
    let fd = fd.as_fd();
    // Windows reads through a handle of its own on the same file (positioned reads move it).
    #[cfg(windows)]
    let file = std::fs::File::from(fd.try_clone_to_owned()?);
    let mut hasher = gix::hash::hasher(want.kind());
    hasher.update(format!("blob {size}\0").as_bytes());
    let mut buf = vec![0u8; CHUNK.min(size as usize + 1).max(1)];
    let mut offset = 0u64;
    loop {
        #[cfg(unix)]
        let n = rustix::io::pread(fd, &mut buf, offset)?;
        #[cfg(windows)]
        let n = match std::os::windows::fs::FileExt::seek_read(&file, &mut buf, offset) {
            Ok(n) => n,
            // Windows' answer to a read at or past the end.
            Err(e) if e.raw_os_error() == Some(38) => 0,
            Err(e) => return Err(e),
        };
        if n == 0 {
            break;
        }
        offset += n as u64;
        if offset > size {
            return Ok(false);
        }
        hasher.update(&buf[..n]);
    }
    if offset != size {
        return Ok(false);
    }
    Ok(hasher.try_finalize().is_ok_and(|id| id == *want))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_holds_the_blob_git_hashes_it_to_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        for data in [&b""[..], b"hello\n", &[7u8; 600_000][..]] {
            std::fs::write(&p, data).unwrap();
            let id = gix::objs::compute_hash(gix::hash::Kind::Sha1, gix::objs::Kind::Blob, data)
                .unwrap();
            let f = std::fs::File::open(&p).unwrap();
            let len = data.len() as u64;
            assert!(holds_blob(&f, len, &id).unwrap(), "{}", data.len());
            // Another length is another blob, even if the bytes read are a prefix.
            if len > 0 {
                assert!(!holds_blob(&f, len - 1, &id).unwrap());
            }
            assert!(!holds_blob(&f, len + 1, &id).unwrap());
            let other = gix::objs::compute_hash(gix::hash::Kind::Sha1, gix::objs::Kind::Blob, b"x")
                .unwrap();
            assert!(!holds_blob(&f, len, &other).unwrap());
        }
    }
}
