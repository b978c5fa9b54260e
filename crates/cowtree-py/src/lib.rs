//! `cowtree._cowtree`: the native part of the `cowtree` Python module, cowtree-link's
//! [`Linker`](cowtree_link::Linker) for installers written in Python.
//!
//! The Python package (`python/cowtree/__init__.py`) re-exports everything here; its stubs
//! (`python/cowtree/_cowtree.pyi`) are the reference for Python callers. What this crate
//! adds to the Linker is the crossing itself: arguments checked and converted before the
//! work, the interpreter released while it runs (other Python threads go on), and each
//! [`LinkError`](cowtree_link::LinkError) variant raised as its own exception class with
//! the paths and the kind as attributes.

use pyo3::prelude::*;

#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod errors;
mod linker_class;
mod option_names;
mod path_args;
mod record_class;
mod record_file;
mod report_class;
mod sources;

/// The module `cowtree._cowtree`.
#[pymodule]
fn _cowtree(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<linker_class::Linker>()?;
    m.add_class::<sources::Source>()?;
    m.add_class::<report_class::Report>()?;
    m.add_class::<report_class::Fallback>()?;
    m.add_class::<report_class::Collision>()?;
    m.add_class::<record_class::Record>()?;
    m.add_class::<record_class::RecordEntry>()?;
    m.add_function(wrap_pyfunction!(linker_class::link_tree, m)?)?;
    m.add_function(wrap_pyfunction!(record_file::record_lines, m)?)?;
    errors::register(m)?;
    Ok(())
}
