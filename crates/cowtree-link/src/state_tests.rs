use super::*;

const FS: Failure = Failure::Clone(UnsupportedCause::Filesystem);
const XDEV: Failure = Failure::Clone(UnsupportedCause::CrossDevice);
const BUSY: Failure = Failure::Clone(UnsupportedCause::Busy);
const EPERM_CLONE: Failure = Failure::Clone(UnsupportedCause::NotPermitted);
const LINK_XDEV: Failure = Failure::Hardlink(HardlinkRefusal::CrossDevice);
const LINK_PERM: Failure = Failure::Hardlink(HardlinkRefusal::NotPermitted);
const MLINK: Failure = Failure::Hardlink(HardlinkRefusal::TooManyLinks);

fn moved(attempt: Attempt) -> Decision {
    Decision::Fallback {
        attempt,
        batch_moved: true,
    }
}
fn this_file(attempt: Attempt) -> Decision {
    Decision::Fallback {
        attempt,
        batch_moved: false,
    }
}

#[test]
fn starting_method_per_mode() {
    let table = [
        (LinkMode::Auto, Attempt::Clone),
        (LinkMode::Clone, Attempt::Clone),
        (LinkMode::Copy, Attempt::Copy),
        (LinkMode::Hardlink, Attempt::Hardlink),
        (LinkMode::Symlink, Attempt::Symlink),
    ];
    for (mode, want) in table {
        assert_eq!(LinkState::new(mode, false).attempt(), want, "{mode:?}");
    }
}

#[test]
fn first_pair_wide_failure_moves_the_batch_once() {
    // (mode, failure, decision, attempt afterwards)
    let table = [
        (LinkMode::Auto, FS, moved(Attempt::Copy), Attempt::Copy),
        (LinkMode::Auto, XDEV, moved(Attempt::Copy), Attempt::Copy),
        (LinkMode::Clone, FS, moved(Attempt::Copy), Attempt::Copy),
        (
            LinkMode::Hardlink,
            LINK_XDEV,
            moved(Attempt::Copy),
            Attempt::Copy,
        ),
        (
            LinkMode::Hardlink,
            LINK_PERM,
            moved(Attempt::Copy),
            Attempt::Copy,
        ),
    ];
    for (mode, failure, want, after) in table {
        let mut s = LinkState::new(mode, false);
        let tried = s.attempt();
        assert_eq!(s.failed(tried, failure), want, "{mode:?} {failure:?}");
        assert_eq!(s.attempt(), after);
        // A second report of the same failure from a worker that raced does not move it again.
        assert_eq!(
            s.failed(tried, failure),
            this_file(after),
            "{mode:?} repeat"
        );
    }
}

#[test]
fn per_file_failures_fall_back_for_that_file_only() {
    let table = [
        (LinkMode::Auto, Failure::SourceVanished),
        (LinkMode::Auto, BUSY),
        (LinkMode::Auto, EPERM_CLONE),
        (LinkMode::Hardlink, MLINK),
        (LinkMode::Hardlink, Failure::SourceVanished),
    ];
    for (mode, failure) in table {
        let mut s = LinkState::new(mode, false);
        let start = s.attempt();
        assert_eq!(
            s.failed(start, failure),
            this_file(Attempt::Copy),
            "{mode:?} {failure:?}"
        );
        assert_eq!(
            s.attempt(),
            start,
            "{mode:?} {failure:?}: batch must keep its method"
        );
        // Still per-file after the method has worked.
        s.succeeded(start);
        assert_eq!(s.failed(start, failure), this_file(Attempt::Copy));
    }
}

#[test]
fn pair_wide_failure_after_the_method_worked_is_an_error() {
    let mut s = LinkState::new(LinkMode::Auto, false);
    s.succeeded(Attempt::Clone);
    assert!(s.has_worked());
    assert_eq!(s.failed(Attempt::Clone, FS), Decision::Fail);
    let mut h = LinkState::new(LinkMode::Hardlink, false);
    h.succeeded(Attempt::Hardlink);
    assert_eq!(h.failed(Attempt::Hardlink, LINK_XDEV), Decision::Fail);
}

#[test]
fn strict_turns_every_fallback_into_an_error() {
    for failure in [FS, XDEV, BUSY, EPERM_CLONE, Failure::SourceVanished] {
        let mut s = LinkState::new(LinkMode::Auto, true);
        assert_eq!(
            s.failed(Attempt::Clone, failure),
            Decision::Fail,
            "{failure:?}"
        );
        assert_eq!(s.attempt(), Attempt::Clone);
    }
    let mut h = LinkState::new(LinkMode::Hardlink, true);
    assert_eq!(h.failed(Attempt::Hardlink, MLINK), Decision::Fail);
}

#[test]
fn copy_and_symlink_have_no_fallback() {
    let mut c = LinkState::new(LinkMode::Copy, false);
    assert_eq!(
        c.failed(Attempt::Copy, Failure::SourceVanished),
        Decision::Fail
    );
    let mut s = LinkState::new(LinkMode::Symlink, false);
    assert_eq!(s.failed(Attempt::Symlink, FS), Decision::Fail);
}

#[test]
fn mismatched_failure_kind_is_an_error() {
    // A hardlink refusal reported for a clone attempt is a caller bug; never guess.
    let mut s = LinkState::new(LinkMode::Auto, false);
    assert_eq!(s.failed(Attempt::Clone, LINK_XDEV), Decision::Fail);
}
