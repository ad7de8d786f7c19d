//! The outputs of a command's results behind one trait, as hyperfine's
//! `export` module has them: a table, CSV, JSON, markdown, each an
//! [`Exporter`] of the same results. `bench` (its `Results`) and `analyze`
//! (its analyses) implement it.

/// One output format of `T`.
pub trait Exporter<T: ?Sized> {
    type Error;
    /// The whole output for `what`.
    fn export(&self, what: &T) -> Result<String, Self::Error>;
}
