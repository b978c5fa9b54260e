use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fs;
use std::os::unix::ffi::OsStrExt;

use rustix::fs::FileType;

use super::*;

/// Counts what it sees and records, for each directory visited, its path and the depth
/// its parent passed down.
#[derive(Default)]
struct Census {
    dirs: BTreeMap<Vec<u8>, u32>,
    files: u64,
    symlinks: u64,
    failed: Vec<(Vec<u8>, io::ErrorKind)>,
}

/// A walk's shared state with no roots, `max_held` handles allowed.
fn shared_for_test<'a>(dirs: &'a [&'a Dir], max_held: usize, progress: &'a Progress) -> Shared<'a> {
    Shared {
        roots: dirs,
        held: AtomicUsize::new(0),
        max_held,
        stop: AtomicBool::new(false),
        progress,
    }
}

impl Visitor for Census {
    type Ctx = u32;
    type Job = Infallible;
    type Error = io::Error;

    fn visit_dir(&mut self, d: &mut DirVisit<'_, u32, Infallible>, depth: u32) -> io::Result<()> {
        self.dirs.insert(d.rel().to_vec(), depth);
        for e in d.entries()? {
            match e.file_type {
                FileType::Directory => d.descend(&e.name, depth + 1),
                FileType::Symlink => self.symlinks += 1,
                _ => self.files += 1,
            }
        }
        Ok(())
    }

    fn visit_job(&mut self, _: &JobVisit<'_>, job: Infallible) -> io::Result<()> {
        match job {}
    }

    fn open_failed(&mut self, at: &Failed<'_>, _: u32, e: io::Error) -> io::Result<()> {
        self.failed.push((at.rel.to_vec(), e.kind()));
        Ok(())
    }
}

/// `width` directories per level, `depth` levels, 3 files in each directory, and a
/// symlink to the root's first subdirectory in every directory.
fn make_tree(root: &Path, width: usize, depth: usize) -> (usize, usize) {
    let (mut dirs, mut files) = (1, 0);
    let mut level = vec![root.to_path_buf()];
    for d in 0..=depth {
        let mut next = Vec::new();
        for dir in &level {
            for f in 0..3 {
                fs::write(dir.join(format!("f{f}")), b"x").unwrap();
                files += 1;
            }
            std::os::unix::fs::symlink(root.join("d0"), dir.join("link")).unwrap();
            if d < depth {
                for w in 0..width {
                    let sub = dir.join(format!("d{w}"));
                    fs::create_dir(&sub).unwrap();
                    dirs += 1;
                    next.push(sub);
                }
            }
        }
        level = next;
    }
    (dirs, files)
}

fn merged(visitors: Vec<Census>) -> Census {
    let mut all = Census::default();
    for v in visitors {
        for (rel, depth) in v.dirs {
            assert!(
                all.dirs.insert(rel.clone(), depth).is_none(),
                "{rel:?} twice"
            );
        }
        all.files += v.files;
        all.symlinks += v.symlinks;
        all.failed.extend(v.failed);
    }
    all
}

#[test]
fn every_directory_is_visited_once_with_its_parents_value_and_symlinks_are_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let (dirs, files) = make_tree(tmp.path(), 4, 3);
    let root = Dir::open(tmp.path()).unwrap();
    let pool = Pool::new(3, "walk-test");
    for walk in [
        Walk::new(1),
        Walk::new(4),
        Walk::on(&pool),
        Walk::on(&pool).jobs(2),
    ] {
        let visitors = walk.run(vec![(&root, 0)], Census::default).unwrap();
        let all = merged(visitors);
        assert_eq!(all.dirs.len(), dirs);
        assert_eq!(all.files as usize, files);
        assert_eq!(
            all.symlinks as usize, dirs,
            "one symlink per directory, none followed"
        );
        assert!(all.failed.is_empty());
        for (rel, depth) in &all.dirs {
            let components = if rel.is_empty() {
                0
            } else {
                rel.split(|&b| b == b'/').count() as u32
            };
            assert_eq!(*depth, components, "{rel:?}");
        }
    }
}

#[test]
fn several_roots_are_walked_in_one_pass_each_with_its_own_value() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    make_tree(a.path(), 2, 2);
    make_tree(b.path(), 3, 1);
    let (ra, rb) = (Dir::open(a.path()).unwrap(), Dir::open(b.path()).unwrap());

    #[derive(Default)]
    struct PerRoot(BTreeMap<usize, (u64, u32)>);
    impl Visitor for PerRoot {
        type Ctx = u32;
        type Job = Infallible;
        type Error = io::Error;
        fn visit_dir(&mut self, d: &mut DirVisit<'_, u32, Infallible>, tag: u32) -> io::Result<()> {
            let slot = self.0.entry(d.root()).or_insert((0, tag));
            slot.0 += 1;
            assert_eq!(slot.1, tag);
            for e in d.entries()? {
                if e.file_type == FileType::Directory {
                    d.descend(&e.name, tag);
                }
            }
            Ok(())
        }
        fn visit_job(&mut self, _: &JobVisit<'_>, job: Infallible) -> io::Result<()> {
            match job {}
        }
        fn open_failed(&mut self, _: &Failed<'_>, _: u32, e: io::Error) -> io::Result<()> {
            Err(e)
        }
    }
    let visitors = Walk::new(2)
        .run(vec![(&ra, 10), (&rb, 20)], PerRoot::default)
        .unwrap();
    let mut per_root: BTreeMap<usize, (u64, u32)> = BTreeMap::new();
    for v in visitors {
        for (root, (n, tag)) in v.0 {
            let slot = per_root.entry(root).or_insert((0, tag));
            slot.0 += n;
            assert_eq!(slot.1, tag);
        }
    }
    assert_eq!(per_root[&0], (1 + 2 + 4, 10));
    assert_eq!(per_root[&1], (1 + 3, 20));
}

#[test]
fn a_symlink_descended_into_is_refused_at_open_and_reported_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir(tmp.path().join("real")).unwrap();
    fs::write(tmp.path().join("real/secret"), b"x").unwrap();
    std::os::unix::fs::symlink(tmp.path().join("real"), tmp.path().join("link")).unwrap();

    #[derive(Default)]
    struct Everything(Census);
    impl Visitor for Everything {
        type Ctx = u32;
        type Job = Infallible;
        type Error = io::Error;
        fn visit_dir(&mut self, d: &mut DirVisit<'_, u32, Infallible>, n: u32) -> io::Result<()> {
            self.0.dirs.insert(d.rel().to_vec(), n);
            for e in d.entries()? {
                if e.file_type != FileType::RegularFile {
                    // Directories and symlinks alike: the walk must refuse the symlink.
                    d.descend(&e.name, n + 1);
                }
            }
            Ok(())
        }
        fn visit_job(&mut self, _: &JobVisit<'_>, job: Infallible) -> io::Result<()> {
            match job {}
        }
        fn open_failed(&mut self, at: &Failed<'_>, c: u32, e: io::Error) -> io::Result<()> {
            self.0.open_failed(at, c, e)
        }
    }
    let root = Dir::open(tmp.path()).unwrap();
    for jobs in [1, 3] {
        let all = merged(
            Walk::new(jobs)
                .run(vec![(&root, 0)], Everything::default)
                .unwrap()
                .into_iter()
                .map(|e| e.0)
                .collect(),
        );
        let seen: Vec<&[u8]> = all.dirs.keys().map(|k| k.as_slice()).collect();
        assert_eq!(seen, [&b""[..], b"real"]);
        assert_eq!(all.failed.len(), 1);
        assert_eq!(all.failed[0].0, b"link");
        assert_ne!(all.failed[0].1, io::ErrorKind::NotFound);
    }
}

#[test]
fn the_first_error_stops_the_walk_and_is_returned() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(tmp.path(), 6, 3);
    let root = Dir::open(tmp.path()).unwrap();
    let visited = AtomicUsize::new(0);

    struct FailAt<'a>(&'a AtomicUsize);
    impl Visitor for FailAt<'_> {
        type Ctx = ();
        type Job = Infallible;
        type Error = String;
        fn visit_dir(&mut self, d: &mut DirVisit<'_, (), Infallible>, _: ()) -> Result<(), String> {
            self.0.fetch_add(1, Ordering::Relaxed);
            if d.rel() == b"d2/d3" {
                return Err("failed in d2/d3".into());
            }
            for e in d.entries().map_err(|e| e.to_string())? {
                if e.file_type == FileType::Directory {
                    d.descend(&e.name, ());
                }
            }
            Ok(())
        }
        fn visit_job(&mut self, _: &JobVisit<'_>, job: Infallible) -> Result<(), String> {
            match job {}
        }
        fn open_failed(&mut self, _: &Failed<'_>, _: (), e: io::Error) -> Result<(), String> {
            Err(e.to_string())
        }
    }
    // 1 + 6 + 36 + 216 directories.
    for jobs in [1, 4] {
        visited.store(0, Ordering::Relaxed);
        let err = Walk::new(jobs)
            .run(vec![(&root, ())], || FailAt(&visited))
            .err();
        assert_eq!(err.as_deref(), Some("failed in d2/d3"), "jobs {jobs}");
        assert!(visited.load(Ordering::Relaxed) < 259, "jobs {jobs}");
    }
}

#[test]
fn spawned_jobs_run_once_each_with_the_directorys_handle_even_past_the_held_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let (dirs, files) = make_tree(tmp.path(), 5, 2);
    let root = Dir::open(tmp.path()).unwrap();

    /// Lists each directory and spawns one job per file (far more than the walk may hold
    /// handles for); each job stats its file through the job's handle.
    #[derive(Default)]
    struct PerFile {
        stat: u64,
        dirs: u64,
    }
    impl Visitor for PerFile {
        type Ctx = ();
        type Job = std::ffi::OsString;
        type Error = io::Error;
        fn visit_dir(&mut self, d: &mut DirVisit<'_, (), Self::Job>, _: ()) -> io::Result<()> {
            self.dirs += 1;
            for e in d.entries()? {
                match e.file_type {
                    FileType::Directory => d.descend(&e.name, ()),
                    FileType::RegularFile => d.spawn(e.name),
                    _ => {}
                }
            }
            Ok(())
        }
        fn visit_job(&mut self, d: &JobVisit<'_>, name: Self::Job) -> io::Result<()> {
            let st = d.dir().stat(&name)?;
            assert_eq!(st.st_size, 1, "{:?}", d.child_rel(name.as_bytes()));
            self.stat += 1;
            Ok(())
        }
        fn open_failed(&mut self, _: &Failed<'_>, _: (), e: io::Error) -> io::Result<()> {
            Err(e)
        }
    }
    for jobs in [1, 2, 4] {
        let visitors = Walk::new(jobs)
            .run(vec![(&root, ())], PerFile::default)
            .unwrap();
        assert_eq!(visitors.iter().map(|v| v.stat).sum::<u64>() as usize, files);
        assert_eq!(visitors.iter().map(|v| v.dirs).sum::<u64>() as usize, dirs);
    }
}

#[test]
fn a_visitor_panicking_on_one_file_among_many_makes_the_walk_panic_not_hang() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(tmp.path(), 3, 3);
    for i in 0..500 {
        fs::write(tmp.path().join(format!("f{i}")), b"x").unwrap();
    }
    let root = Dir::open(tmp.path()).unwrap();

    #[derive(Default)]
    struct PanicAt;
    impl Visitor for PanicAt {
        type Ctx = ();
        type Job = std::ffi::OsString;
        type Error = io::Error;
        fn visit_dir(&mut self, d: &mut DirVisit<'_, (), Self::Job>, _: ()) -> io::Result<()> {
            for e in d.entries()? {
                match e.file_type {
                    FileType::Directory => d.descend(&e.name, ()),
                    FileType::RegularFile => d.spawn(e.name),
                    _ => {}
                }
            }
            Ok(())
        }
        fn visit_job(&mut self, _: &JobVisit<'_>, name: Self::Job) -> io::Result<()> {
            if name == "f250" {
                panic!("visitor panics on f250");
            }
            Ok(())
        }
        fn open_failed(&mut self, _: &Failed<'_>, _: (), e: io::Error) -> io::Result<()> {
            Err(e)
        }
    }
    let pool = Pool::new(4, "walk-test");
    for walk in [Walk::new(4), Walk::on(&pool)] {
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            walk.run(vec![(&root, ())], PanicAt::default)
        }));
        let panic = caught.err().expect("the walk panics");
        assert_eq!(
            panic.downcast_ref::<&str>(),
            Some(&"visitor panics on f250")
        );
    }
}

#[test]
fn a_big_flat_directory_queues_all_its_chunks_on_one_held_handle() {
    let tmp = tempfile::tempdir().unwrap();
    for i in 0..4000 {
        fs::write(tmp.path().join(format!("f{i}")), b"x").unwrap();
    }
    for i in 0..20 {
        fs::create_dir(tmp.path().join(format!("d{i}"))).unwrap();
    }
    let root = Dir::open(tmp.path()).unwrap();

    /// Spawns one job per 10 files; each job stats its files and notes which worker ran
    /// it.
    #[derive(Default)]
    struct Chunks {
        workers: Vec<usize>,
        files: u64,
        dirs: u64,
    }
    impl Visitor for Chunks {
        type Ctx = ();
        type Job = Vec<std::ffi::OsString>;
        type Error = io::Error;
        fn visit_dir(&mut self, d: &mut DirVisit<'_, (), Self::Job>, _: ()) -> io::Result<()> {
            self.dirs += 1;
            let mut names = Vec::new();
            for e in d.entries()? {
                match e.file_type {
                    FileType::Directory => d.descend(&e.name, ()),
                    _ => names.push(e.name),
                }
            }
            for chunk in names.chunks(10) {
                d.spawn(chunk.to_vec());
            }
            Ok(())
        }
        fn visit_job(&mut self, d: &JobVisit<'_>, names: Self::Job) -> io::Result<()> {
            for name in &names {
                d.dir().stat(name)?;
                self.files += 1;
            }
            self.workers
                .push(crate::workers::worker_index().expect("on a worker"));
            // Each job takes a while and gives up its core, so that idle workers get to take
            // queued chunks even on a loaded machine: without it, on two busy cores, the
            // lister could run all 400 before another worker was scheduled (a CI run did).
            std::thread::sleep(std::time::Duration::from_millis(2));
            Ok(())
        }
        fn open_failed(&mut self, _: &Failed<'_>, _: (), e: io::Error) -> io::Result<()> {
            Err(e)
        }
    }
    let pool = Pool::new(4, "walk-test");
    for walk in [Walk::new(4), Walk::on(&pool)] {
        // Before handles were counted per directory, all but the first 24 (4 workers x
        // HELD_PER_WORKER) of the root's 400 chunks ran on the worker that listed it.
        let visitors = walk.run(vec![(&root, ())], Chunks::default).unwrap();
        assert_eq!(visitors.iter().map(|v| v.files).sum::<u64>(), 4000);
        assert_eq!(visitors.iter().map(|v| v.dirs).sum::<u64>(), 21);
        let mut workers: Vec<usize> = visitors
            .iter()
            .flat_map(|v| v.workers.iter().copied())
            .collect();
        assert_eq!(workers.len(), 400);
        workers.sort_unstable();
        workers.dedup();
        assert!(
            workers.len() > 1,
            "all 400 chunks ran on worker {workers:?}"
        );
    }
}

#[test]
fn one_visit_holds_one_handle_for_everything_it_queues() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs: Vec<&Dir> = Vec::new();
    let progress = Progress::default();
    let shared = shared_for_test(&dirs, 2, &progress);
    let mut visit: DirVisit<'_, (), u32> = DirVisit {
        shared: &shared,
        root: 0,
        rel: Arc::from(&b""[..]),
        dir: Arc::new(Dir::open(tmp.path()).unwrap()),
        path_only: false,
        held: None,
        pushed: Vec::new(),
        inline_jobs: Vec::new(),
    };
    for job in 0..100 {
        visit.spawn(job);
    }
    for i in 0..10 {
        visit.descend(OsStr::new(&format!("d{i}")), ());
    }
    assert!(visit.inline_jobs.is_empty(), "no job runs inline");
    assert_eq!(visit.pushed.len(), 110);
    assert!(visit.pushed.iter().all(|item| match item {
        Item::Dir { parent, .. } => parent.is_some(),
        Item::Job { .. } => true,
    }));
    assert_eq!(
        shared.held.load(Ordering::Relaxed),
        1,
        "one descriptor held"
    );
    drop(visit);
    assert_eq!(shared.held.load(Ordering::Relaxed), 0);
}

#[test]
fn a_directory_reached_path_only_can_still_be_listed() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir_all(tmp.path().join("a/b")).unwrap();
    fs::write(tmp.path().join("a/b/f"), b"x").unwrap();

    #[derive(Default)]
    struct PathOnly(Vec<Vec<u8>>);
    impl Visitor for PathOnly {
        type Ctx = ();
        type Job = Infallible;
        type Error = io::Error;
        fn visit_dir(&mut self, d: &mut DirVisit<'_, (), Infallible>, _: ()) -> io::Result<()> {
            // A path-only handle can stat entries before it is listed.
            if !d.rel().is_empty() {
                d.dir().stat_self()?;
            }
            for e in d.entries()? {
                self.0.push(d.child_rel(e.name.as_bytes()));
                if e.file_type == FileType::Directory {
                    d.descend_path_only(&e.name, ());
                }
            }
            Ok(())
        }
        fn visit_job(&mut self, _: &JobVisit<'_>, job: Infallible) -> io::Result<()> {
            match job {}
        }
        fn open_failed(&mut self, _: &Failed<'_>, _: (), e: io::Error) -> io::Result<()> {
            Err(e)
        }
    }
    let root = Dir::open(tmp.path()).unwrap();
    let mut seen: Vec<Vec<u8>> = Walk::new(2)
        .run(vec![(&root, ())], PathOnly::default)
        .unwrap()
        .into_iter()
        .flat_map(|v| v.0)
        .collect();
    seen.sort();
    assert_eq!(seen, [b"a".to_vec(), b"a/b".to_vec(), b"a/b/f".to_vec()]);
}

#[test]
fn queued_work_holds_no_more_parent_handles_than_the_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs: Vec<&Dir> = Vec::new();
    let progress = Progress::default();
    let shared = shared_for_test(&dirs, 2, &progress);
    let dir = Arc::new(Dir::open(tmp.path()).unwrap());
    let a = shared.hold(&dir).expect("first of two");
    let b = shared.hold(&dir).expect("second of two");
    assert!(shared.hold(&dir).is_none(), "a third is over the bound");
    drop(a);
    let c = shared.hold(&dir).expect("room again once one is dropped");
    drop((b, c));
    assert_eq!(shared.held.load(Ordering::Relaxed), 0);
    assert_eq!(Arc::strong_count(&dir), 1);
}
