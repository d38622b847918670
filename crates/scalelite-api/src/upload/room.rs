//! Room in the spool promised to the uploads a process is receiving.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes the uploads a process is receiving still have to write: room in
/// the spool promised to them that the file system does not count as used
/// yet.
#[derive(Debug, Default)]
pub(crate) struct PendingBytes(AtomicU64);

impl PendingBytes {
    /// Promises `bytes` to an upload; the returned claim gives them back as
    /// they are written, and the rest when it is dropped.
    pub(super) fn claim(&self, bytes: u64) -> (Claim<'_>, u64) {
        let before = self.0.fetch_add(bytes, Ordering::AcqRel);
        (Claim { pending: self, left: bytes }, before)
    }

    /// Bytes promised and not written yet.
    #[cfg(test)]
    pub(super) fn outstanding(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// Room promised to one upload and not written yet.
pub(super) struct Claim<'a> {
    pending: &'a PendingBytes,
    left: u64,
}

impl Claim<'_> {
    /// `bytes` of the upload were written to the spool.
    pub(super) fn written(&mut self, bytes: u64) {
        let bytes = bytes.min(self.left);
        self.left -= bytes;
        self.pending.0.fetch_sub(bytes, Ordering::AcqRel);
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.pending.0.fetch_sub(self.left, Ordering::AcqRel);
    }
}
