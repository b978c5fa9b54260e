//! With `COWTREE_TIMING` set in the environment, how long each step of an add took, printed on
//! stderr when it ends (`timing: steps: ...`): where the time goes, measured in the run itself.

use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Steps {
    last: Instant,
    done: Vec<(&'static str, Duration)>,
}

static STEPS: Mutex<Option<Steps>> = Mutex::new(None);

fn on() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("COWTREE_TIMING").is_some())
}

/// Starts counting (when `COWTREE_TIMING` is set).
pub fn start() {
    if on() {
        *STEPS.lock().unwrap_or_else(|p| p.into_inner()) = Some(Steps {
            last: Instant::now(),
            done: Vec::new(),
        });
    }
}

/// The step `what` ended now.
pub fn mark(what: &'static str) {
    if !on() {
        return;
    }
    if let Some(s) = STEPS.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        let now = Instant::now();
        s.done.push((what, now - s.last));
        s.last = now;
    }
}

/// Prints the steps counted since [`start`].
pub fn print() {
    if !on() {
        return;
    }
    if let Some(s) = STEPS.lock().unwrap_or_else(|p| p.into_inner()).take() {
        let parts: Vec<String> = s
            .done
            .iter()
            .map(|(w, d)| format!("{w} {:.1} ms", d.as_secs_f64() * 1e3))
            .collect();
        eprintln!("timing: steps: {}", parts.join(", "));
    }
}
