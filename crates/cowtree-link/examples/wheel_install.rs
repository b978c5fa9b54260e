//! Installs unpacked wheels into a Python virtual environment with one [`Linker`] pass: the
//! job of a package manager's installer, as a proof that the API serves a real one.
//!
//! ```text
//! cargo run --release -p cowtree-link --example wheel_install -- \
//!     [--mode clone|hardlink|copy] [--session-per-package] VENV WHEEL_DIR...
//! ```
//!
//! `--session-per-package` links each wheel with its own one-call session, as a caller of
//! `link_tree` per package would (a new fallback decision and a new walk each time); the
//! benchmark (bench/wheels.sh) compares it with the single pass.
//!
//! Each WHEEL_DIR is an unpacked wheel, as a package manager's cache keeps them
//! (`<name>-<version>.dist-info/` and maybe `<name>-<version>.data/` at its top). Everything
//! is linked in one pass with the wheel layout as a path mapping:
//!
//! | in the wheel | goes to |
//! |---|---|
//! | `<name>.data/scripts/*` | `VENV/bin/` (a `#!python` first line is pointed at the venv's python, by its absolute path) |
//! | `<name>.data/data/*` | `VENV/` |
//! | `<name>.data/headers/*` | `VENV/include/site/python3.X/<name>/` |
//! | `<name>.data/purelib/*`, `<name>.data/platlib/*` | site-packages |
//! | everything else | site-packages |
//! | `<name>.dist-info/RECORD` | left out: rewritten below |
//!
//! Then each package's `.dist-info` gets `INSTALLER` (`cowtree`) and a new `RECORD` listing
//! every file the pass wrote for it (path relative to site-packages, SHA-256, size). As uv
//! and pip do, the SHA-256 (and, in hardlink mode, the size) comes from the wheel's own RECORD
//! (a package manager verifies a wheel against it when the wheel enters its cache): the
//! linker's record says which wheel file each written path came from (`from`), and only a
//! file that is new or changed here (a rewritten script) is hashed, with `--hash-all` hashing
//! every file as it is linked instead (the linker's SHA-256 and size of each destination
//! file).
//! Console-script launchers from `entry_points.txt` are not
//! generated: this installs files, it does not resolve or build.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cowtree_link::{
    EntryKind, HashAlgo, LinkMode, LinkOptions, LinkReport, Linker, OnExisting, RecordEntry, Source,
};

// An installer's allocations are many and small (paths, names, record entries) and made by
// several threads at once, where glibc's malloc spends a tenth of the run; installers ship a
// faster allocator (uv links jemalloc), and so does this one.
// mimalloc asks for transparent huge pages on its arena (madvise MADV_HUGEPAGE), so each first
// touch of a 2 MiB region zeroes all of it: a short-lived process that uses 55 MiB then maps
// 85 MiB, and zeroing pages was a seventh of this installer's CPU in hardlink mode. Installers
// do not use huge pages (uv's jemalloc leaves them to the system, which here gives them only
// where asked): `main` turns them off for the process before the work starts.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One unpacked wheel and where its parts go.
struct Wheel {
    dir: PathBuf,
    /// `<name>-<version>.dist-info`
    dist_info: String,
    /// `<name>-<version>.data`
    data: String,
    /// `<name>-<version>.dist-info/RECORD`
    record: PathBuf,
    /// The distribution name, for headers.
    name: String,
    /// site-packages relative to the venv, e.g. `lib/python3.12/site-packages`.
    site: PathBuf,
    /// `include/site/python3.12`
    include: PathBuf,
}

impl Wheel {
    fn open(dir: &Path, site: &Path, include: &Path) -> Result<Wheel, String> {
        let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let dist_info = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| n.ends_with(".dist-info"))
            .ok_or_else(|| format!("{}: no .dist-info directory", dir.display()))?;
        let stem = dist_info.trim_end_matches(".dist-info");
        let name = stem.split('-').next().unwrap_or(stem).to_string();
        Ok(Wheel {
            dir: dir.to_path_buf(),
            data: format!("{stem}.data"),
            record: Path::new(&dist_info).join("RECORD"),
            dist_info,
            name,
            site: site.to_path_buf(),
            include: include.to_path_buf(),
        })
    }

    /// The wheel layout as a path mapping (see the table in the module doc).
    fn map(&self, rel: &Path, _kind: EntryKind) -> Option<PathBuf> {
        let mut parts = rel.components();
        let first = parts.next()?.as_os_str();
        if first == self.data.as_str() {
            let scheme = parts.next()?.as_os_str().to_str()?;
            let rest = parts.as_path();
            if rest.as_os_str().is_empty() {
                // `<name>.data/<scheme>` itself: nothing to create; its entries are mapped.
                return None;
            }
            return match scheme {
                "scripts" => Some(Path::new("bin").join(rest)),
                "data" => Some(rest.to_path_buf()),
                "headers" => Some(self.include.join(&self.name).join(rest)),
                "purelib" | "platlib" => Some(self.site.join(rest)),
                _ => None,
            };
        }
        if rel == self.record || rel == Path::new(&self.data) {
            return None;
        }
        Some(self.site.join(rel))
    }
}

/// The `sha256=` values of a wheel's RECORD `text` (already URL-safe base64) and the sizes,
/// by path in the wheel, borrowed from the text.
fn wheel_record(text: &str) -> HashMap<&str, (&str, Option<u64>)> {
    let lines = text.lines();
    let mut known = HashMap::with_capacity(lines.size_hint().0);
    for l in lines {
        // A path may itself hold commas (then it is quoted); the hash and size do not.
        let mut fields = l.rsplitn(3, ',');
        let (Some(size), Some(hash), Some(p)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if let Some(h) = hash.strip_prefix("sha256=") {
            known.insert(p.trim_matches('"'), (h, size.trim().parse().ok()));
        }
    }
    known
}

fn sha256_of(path: &Path) -> std::io::Result<Vec<u8>> {
    use sha2::Digest as _;
    Ok(sha2::Sha256::digest(std::fs::read(path)?).to_vec())
}

/// URL-safe base64 without padding, as RECORD files write hashes.
fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |acc, &b| (acc << 8) | b as u32) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Appends `path` (relative to the venv) as RECORD writes it: relative to site-packages.
fn push_record_path(out: &mut String, path: &Path, site: &Path) {
    let (p, s) = (path.as_os_str().as_bytes(), site.as_os_str().as_bytes());
    match p.strip_prefix(s).and_then(|rest| rest.strip_prefix(b"/")) {
        Some(rest) => out.push_str(&String::from_utf8_lossy(rest)),
        None => {
            for _ in site.components() {
                out.push_str("../");
            }
            out.push_str(&String::from_utf8_lossy(p));
        }
    }
}

/// The first line(s) of a script run by `python` (an absolute path), as installers write them
/// (pip, through distlib): `#!PYTHON`, or, where the kernel would not run that line (a space
/// in the path, or a line over 127 bytes, the limit of older kernels), a `/bin/sh` line that
/// execs the interpreter on the script, which Python then reads past as a string.
fn shebang(python: &Path) -> Vec<u8> {
    let path = python.as_os_str().as_bytes();
    if path.len() + 2 <= 127 && !path.iter().any(u8::is_ascii_whitespace) {
        let mut line = b"#!".to_vec();
        line.extend_from_slice(path);
        return line;
    }
    let mut lines = b"#!/bin/sh\n'''exec' \"".to_vec();
    lines.extend_from_slice(path);
    lines.extend_from_slice(b"\" \"$0\" \"$@\"\n' '''");
    lines
}

/// Points a script's `#!python` line at the venv's interpreter `python` (an absolute path:
/// the script then runs from any directory) in a new file renamed over the linked one (the
/// linked inode, shared with the cache, is never written). Returns the new SHA-256 and size.
fn fix_shebang(script: &Path, python: &Path) -> std::io::Result<Option<(Vec<u8>, u64)>> {
    use sha2::Digest as _;
    let bytes = std::fs::read(script)?;
    let Some(rest) = bytes.strip_prefix(b"#!python") else {
        return Ok(None);
    };
    let mut new = shebang(python);
    new.extend_from_slice(rest);
    let mode = std::fs::metadata(script)?.permissions();
    let tmp = script.with_extension("cowtree-shebang");
    std::fs::write(&tmp, &new)?;
    std::fs::set_permissions(&tmp, mode)?;
    std::fs::rename(&tmp, script)?;
    Ok(Some((
        sha2::Sha256::digest(&new).to_vec(),
        new.len() as u64,
    )))
}

/// Writes `INSTALLER` and `RECORD` into the `.dist-info` of wheel `w`, from the entries the
/// link pass wrote for it, pointing the `#!python` line of its scripts at the venv's python.
fn write_record(
    w: &Wheel,
    entries: &[&RecordEntry],
    venv: &Path,
    python: &Path,
) -> Result<(), String> {
    let site = &w.site;
    let info = venv.join(site).join(&w.dist_info);
    let wheel_record_path = w.dir.join(&w.record);
    let text = std::fs::read_to_string(&wheel_record_path)
        .map_err(|e| format!("{}: {e}", wheel_record_path.display()))?;
    let known = wheel_record(&text);
    let mut record = String::with_capacity(text.len() + 4096);
    for e in entries {
        let (mut hash, mut size) = (e.hash.as_ref().map(|d| b64(&d.bytes)), e.size);
        if e.kind == EntryKind::File && (hash.is_none() || size.is_none()) {
            let from = e.from.as_deref().and_then(Path::to_str).unwrap_or_default();
            let listed = known.get(from);
            if hash.is_none() {
                hash = match listed {
                    Some((h, _)) => Some((*h).to_string()),
                    None => Some(b64(
                        &sha256_of(&venv.join(&e.path)).map_err(|e| e.to_string())?
                    )),
                };
            }
            // A hardlink's size was not asked of the linker: the wheel's RECORD has it (the
            // file is the cache's own inode, which the cache verified against that RECORD).
            if size.is_none() {
                size = match listed.and_then(|(_, s)| *s) {
                    Some(s) => Some(s),
                    None => Some(
                        std::fs::symlink_metadata(venv.join(&e.path))
                            .map_err(|e| e.to_string())?
                            .len(),
                    ),
                };
            }
        }
        let path = e.path.as_os_str().as_bytes();
        if e.kind == EntryKind::File
            && (path == b"bin" || path.starts_with(b"bin/"))
            && let Some((h, s)) =
                fix_shebang(&venv.join(&e.path), python).map_err(|err| err.to_string())?
        {
            (hash, size) = (Some(b64(&h)), Some(s));
        }
        push_record_path(&mut record, &e.path, site);
        let _ = match (hash, size) {
            (Some(h), Some(size)) => writeln!(record, ",sha256={h},{size}"),
            _ => writeln!(record, ",,"),
        };
    }
    let _ = writeln!(record, "{}/INSTALLER,,", w.dist_info);
    let _ = writeln!(record, "{}/RECORD,,", w.dist_info);
    std::fs::write(info.join("INSTALLER"), b"cowtree\n").map_err(|e| e.to_string())?;
    std::fs::write(info.join("RECORD"), record).map_err(|e| e.to_string())?;
    Ok(())
}

/// What the command line asks.
struct Args {
    mode: LinkMode,
    per_package: bool,
    hash_all: bool,
    venv: PathBuf,
    wheel_dirs: Vec<String>,
}

fn parse_args(mut args: Vec<String>) -> Result<Args, String> {
    let mut mode = LinkMode::Clone;
    let mut per_package = false;
    let mut hash_all = false;
    loop {
        match args.first().map(String::as_str) {
            Some("--mode") => {
                mode = match args.get(1).map(String::as_str) {
                    Some("clone") => LinkMode::Clone,
                    Some("hardlink") => LinkMode::Hardlink,
                    Some("copy") => LinkMode::Copy,
                    other => return Err(format!("unknown mode {other:?}")),
                };
                args.drain(..2);
            }
            Some("--session-per-package") => {
                per_package = true;
                args.remove(0);
            }
            Some("--hash-all") => {
                hash_all = true;
                args.remove(0);
            }
            _ => break,
        }
    }
    if args.len() < 2 {
        return Err("usage: wheel_install [--mode clone|hardlink|copy] VENV WHEEL_DIR...".into());
    }
    Ok(Args {
        mode,
        per_package,
        hash_all,
        venv: PathBuf::from(&args[0]),
        wheel_dirs: args.split_off(1),
    })
}

/// site-packages and the headers' directory relative to `venv`
/// (`lib/python3.X/site-packages`, `include/site/python3.X`), as the venv was made.
fn venv_layout(venv: &Path) -> Result<(PathBuf, PathBuf), String> {
    let lib = venv.join("lib");
    let pyver = std::fs::read_dir(&lib)
        .map_err(|e| format!("{}: {e} (not a virtual environment?)", lib.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("python3"))
        .ok_or_else(|| format!("{}: no python3.X directory", lib.display()))?;
    let site = Path::new("lib").join(&pyver).join("site-packages");
    let include = Path::new("include/site").join(&pyver);
    Ok((site, include))
}

/// Links every wheel into the venv with the wheel layout as a path mapping: in one pass, or
/// with `--session-per-package` one session per wheel.
fn link_wheels(args: &Args, wheels: &[Wheel]) -> Result<LinkReport, String> {
    let opts = LinkOptions {
        mode: args.mode,
        on_existing: OnExisting::Overwrite,
        record: true,
        hash: args.hash_all.then_some(HashAlgo::Sha256),
        // An installed file's times say when it was installed, as with pip and uv.
        preserve_times: false,
        // Sizes come from each wheel's RECORD, as the hashes do (see `write_record`); with
        // `--hash-all` the hash is the linked file's, and so is the size.
        hardlink_sizes: args.hash_all,
        ..LinkOptions::default()
    };
    let maps: Vec<_> = wheels
        .iter()
        .map(|w| move |rel: &Path, kind: EntryKind| w.map(rel, kind))
        .collect();
    let sources: Vec<Source<'_>> = wheels
        .iter()
        .zip(&maps)
        .map(|(w, m)| Source::mapped(&w.dir, m))
        .collect();
    if !args.per_package {
        return Linker::new(opts)
            .link_sources(&sources, &args.venv)
            .map_err(|e| e.to_string());
    }
    let mut total: Option<LinkReport> = None;
    for (i, source) in sources.iter().enumerate() {
        let mut r = Linker::new(opts.clone())
            .link_sources(std::slice::from_ref(source), &args.venv)
            .map_err(|e| e.to_string())?;
        for e in &mut r.record {
            e.source = i;
        }
        match &mut total {
            None => total = Some(r),
            Some(t) => t.absorb(r),
        }
    }
    total.ok_or_else(|| "no wheels".into())
}

/// Writes RECORD and INSTALLER of every package, from the record of the link: one package
/// at a time per thread, as many threads as cores (each RECORD is read, each script's first
/// line rewritten and each new RECORD written independently of the others).
fn write_records(
    wheels: &[Wheel],
    by_source: &BTreeMap<usize, Vec<&RecordEntry>>,
    venv: &Path,
) -> Result<(), String> {
    // Absolute, as installers write it: a script must run from any directory, whatever VENV
    // was given as (`#!venv/bin/python` would be looked up from the current directory); and
    // without `..` in it.
    let python = std::fs::canonicalize(venv)
        .map_err(|e| format!("{}: {e}", venv.display()))?
        .join("bin/python");
    let next = std::sync::atomic::AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.min(wheels.len()))
            .map(|_| {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(w) = wheels.get(i) else {
                            return Ok::<(), String>(());
                        };
                        let entries = by_source.get(&i).map(Vec::as_slice).unwrap_or_default();
                        write_record(w, entries, venv, &python)?;
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    })
}

fn run(args: Vec<String>) -> Result<(), String> {
    let args = parse_args(args)?;
    let (site, include) = venv_layout(&args.venv)?;
    let wheels: Vec<Wheel> = args
        .wheel_dirs
        .iter()
        .map(|d| Wheel::open(Path::new(d), &site, &include))
        .collect::<Result<_, _>>()?;

    let started = std::time::Instant::now();
    let report = link_wheels(&args, &wheels)?;
    // RECORD and INSTALLER per package, from the record of the one pass.
    let mut by_source: BTreeMap<usize, Vec<&RecordEntry>> = BTreeMap::new();
    for e in &report.record {
        if e.kind != EntryKind::Dir {
            by_source.entry(e.source).or_default().push(e);
        }
    }
    write_records(&wheels, &by_source, &args.venv)?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "installed {} packages: {} files ({} cloned, {} copied, {} hardlinked), {} collisions, in {:.1} ms",
        wheels.len(),
        report.files,
        report.cloned,
        report.copied,
        report.hardlinked,
        report.collisions.len(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    for f in &report.fallbacks {
        let _ = writeln!(out, "warning: {} files copied: {}", f.count, f.description);
    }
    // The process ends here: the record (an entry per file) is left for the kernel to reclaim
    // with the rest of the memory rather than freed entry by entry.
    drop(by_source);
    std::mem::forget(report);
    Ok(())
}

fn main() -> ExitCode {
    // Best effort: a kernel without the flag keeps huge pages, and only speed changes.
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wheel_install: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unpacked wheel with the script `alpha-tool` (`#!python`, printing `sys.prefix`).
    fn wheel_with_a_script(root: &Path) -> PathBuf {
        use sha2::Digest as _;
        use std::os::unix::fs::PermissionsExt as _;
        let w = root.join("alpha-1.0");
        let script = "alpha-1.0.data/scripts/alpha-tool";
        let files: [(&str, &[u8]); 3] = [
            ("alpha/__init__.py", b"A = 1\n"),
            (script, b"#!python\nimport sys\nprint(sys.prefix)\n"),
            (
                "alpha-1.0.dist-info/METADATA",
                b"Name: alpha\nVersion: 1.0\n",
            ),
        ];
        let mut record = String::new();
        for (path, data) in files {
            let p = w.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, data).unwrap();
            let h = b64(&sha2::Sha256::digest(data));
            let _ = writeln!(record, "{path},sha256={h},{}", data.len());
        }
        std::fs::set_permissions(w.join(script), std::fs::Permissions::from_mode(0o755)).unwrap();
        record.push_str("alpha-1.0.dist-info/RECORD,,\n");
        std::fs::write(w.join("alpha-1.0.dist-info/RECORD"), record).unwrap();
        w
    }

    /// `path` (absolute) relative to the current directory, through `..` up to the root.
    fn relative_to_cwd(path: &Path) -> PathBuf {
        let cwd = std::env::current_dir().unwrap();
        let mut rel = PathBuf::new();
        for _ in cwd.components().skip(1) {
            rel.push("..");
        }
        rel.join(path.strip_prefix("/").unwrap())
    }

    #[test]
    fn a_script_installed_into_a_venv_given_as_a_relative_path_runs_from_any_directory() {
        let Some(t) = cowtree_testutil::scratch(cowtree_testutil::Fs::Xfs) else {
            return;
        };
        // The second venv's path has a space: its scripts start with a /bin/sh line.
        for venv_dir in ["envs/venv", "my envs/venv"] {
            let venv = t.path().join(venv_dir);
            std::fs::create_dir_all(venv.parent().unwrap()).unwrap();
            let made = std::process::Command::new("python3")
                .args(["-m", "venv", "--without-pip"])
                .arg(&venv)
                .status()
                .expect("python3 (to make a virtual environment)");
            assert!(made.success(), "python3 -m venv");
            let wheel = wheel_with_a_script(&t.path().join(format!("cache-{}", venv_dir.len())));
            let rel = relative_to_cwd(&venv);
            assert!(rel.is_relative());
            run(vec![
                rel.to_str().unwrap().to_string(),
                wheel.to_str().unwrap().to_string(),
            ])
            .unwrap();
            let script = venv.join("bin/alpha-tool");
            let text = std::fs::read(&script).unwrap();
            assert!(
                text.starts_with(&shebang(
                    &std::fs::canonicalize(&venv).unwrap().join("bin/python")
                )),
                "{venv_dir}: {}",
                String::from_utf8_lossy(&text)
            );
            // Run from other directories than the one VENV was given from (the venv's own
            // bin/, deeper than it, where a relative interpreter path would not resolve).
            for cwd in [venv.join("bin"), PathBuf::from("/")] {
                let out = std::process::Command::new(&script)
                    .current_dir(&cwd)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{venv_dir}, from {}: {}",
                    cwd.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
                let prefix = String::from_utf8(out.stdout).unwrap();
                assert_eq!(
                    std::fs::canonicalize(prefix.trim()).unwrap(),
                    std::fs::canonicalize(&venv).unwrap(),
                    "{venv_dir}"
                );
            }
        }
    }

    #[test]
    fn the_shebang_is_the_interpreter_or_a_sh_line_where_the_kernel_would_not_run_it() {
        assert_eq!(shebang(Path::new("/v/bin/python")), b"#!/v/bin/python");
        let spaced = String::from_utf8(shebang(Path::new("/my v/bin/python"))).unwrap();
        assert_eq!(
            spaced,
            "#!/bin/sh\n'''exec' \"/my v/bin/python\" \"$0\" \"$@\"\n' '''"
        );
        let long = format!("/{}/bin/python", "x".repeat(130));
        assert!(shebang(Path::new(&long)).starts_with(b"#!/bin/sh\n"));
    }

    #[test]
    fn b64_matches_python_urlsafe_b64encode_without_padding() {
        // base64.urlsafe_b64encode(b"...").rstrip(b"=")
        assert_eq!(b64(b""), "");
        assert_eq!(b64(b"f"), "Zg");
        assert_eq!(b64(b"fo"), "Zm8");
        assert_eq!(b64(b"foo"), "Zm9v");
        assert_eq!(b64(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn record_paths_are_relative_to_site_packages() {
        let site = Path::new("lib/python3.12/site-packages");
        let mut out = String::new();
        for p in [
            "lib/python3.12/site-packages/six.py",
            "bin/jp.py",
            "lib/python3.12/site-packages-x/a",
        ] {
            push_record_path(&mut out, Path::new(p), site);
            out.push('|');
        }
        assert_eq!(
            out,
            "six.py|../../../bin/jp.py|../../../lib/python3.12/site-packages-x/a|"
        );
    }

    #[test]
    fn wheel_record_gives_each_path_its_hash_and_size_and_skips_lines_without_a_hash() {
        let text = "a/b.py,sha256=AbC,12\n\"x,y.py\",sha256=Zz_-,3\nc.py,sha256=Q,\n\
                    p.dist-info/RECORD,,\nbad\n";
        let known = wheel_record(text);
        assert_eq!(known.get("a/b.py"), Some(&("AbC", Some(12))));
        assert_eq!(known.get("x,y.py"), Some(&("Zz_-", Some(3))));
        // A hash without a size: the size is found on disk.
        assert_eq!(known.get("c.py"), Some(&("Q", None)));
        assert_eq!(known.len(), 3);
    }
}
