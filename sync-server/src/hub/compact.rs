//! Compaction: a document's snapshot kept as of the log's latest committed entry.

use cairn_protocol::{Bytes, DocState};

use super::Hub;
use crate::Result;
use crate::docs;

impl Hub {
    /// Compacts `doc` into a snapshot as of the latest committed entry, keeps it, and gives it
    /// whole; `None` when it could not be kept (a withdrawal came meanwhile).
    pub(super) async fn compact(
        &self,
        team: &str,
        doc: &str,
        withdrawals: i64,
    ) -> Result<Option<DocState>> {
        let loaded = self
            .docs
            .take(team, doc, withdrawals)
            .catch_up(&*self.store, team, doc)
            .await?;
        let (loaded, kept) = docs::keep_snapshot(&*self.store, team, doc, loaded).await;
        // Only committed entries were folded in: the document can go back as it is.
        self.docs.put(team, doc, loaded);
        Ok(kept.map(|data| DocState {
            doc: doc.to_owned(),
            snapshot: Bytes(data),
            changes: Vec::new(),
        }))
    }
}
