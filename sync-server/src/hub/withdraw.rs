//! Withdrawals: stored changes taken out of a team's log and, through notices, out of every
//! replica.

use std::collections::HashSet;

use automerge::{Automerge, Change};
use cairn_core::change;
use sha2::{Digest, Sha256};

use super::{Hub, MAX_ATTEMPTS, cpu, hex, unhex};
use crate::store::{Append, Entry, Kind};
use crate::{Error, Result};

impl Hub {
    /// Withdraws stored changes of `team` by their hashes (hex, a unique prefix of 8 or more
    /// digits), with every stored change that depends on them: their content is dropped, they
    /// are never sent again, and one notice per document in the log tells devices to drop them
    /// too. Returns what was withdrawn: (document, hash in hex), the named changes first.
    pub async fn withdraw(
        &self,
        team: &str,
        hashes: &[String],
        now_ms: i64,
    ) -> Result<Vec<(String, String)>> {
        let _turn = self.turn(team).await;
        let store_turn = self.store.turn(team).await?;
        let mut out = Err(Error::busy("the team's log kept moving; try again"));
        for _ in 0..MAX_ATTEMPTS {
            match self.withdraw_once(team, hashes, now_ms).await {
                // Another writer came first: plan again.
                Ok(None) => continue,
                other => {
                    out = other.map(Option::unwrap_or_default);
                    break;
                }
            }
        }
        store_turn.release().await;
        out
    }

    /// One attempt at [`Hub::withdraw`]; `None` when another writer came first.
    async fn withdraw_once(
        &self,
        team: &str,
        hashes: &[String],
        now_ms: i64,
    ) -> Result<Option<Vec<(String, String)>>> {
        let log = self.store.team_log(team).await?;
        let mut wanted = HashSet::new();
        let mut docs: Vec<String> = Vec::new();
        for h in hashes {
            let h = h.trim().to_ascii_lowercase();
            if h.len() < 8 || h.len() > 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::BadRequest(format!(
                    "`{h}` is not a change hash (8 to 64 hex digits)"
                )));
            }
            let found = self.store.find_changes(team, &h, 2).await?;
            match found.as_slice() {
                [] => {
                    return Err(Error::NotFound(format!("team {team} holds no change {h}")));
                }
                [_, _, ..] => {
                    return Err(Error::BadRequest(format!(
                        "`{h}` names more than one change; give more of it"
                    )));
                }
                [f] if f.withdrawn => {}
                [f] => {
                    wanted.insert(f.hash.clone());
                    if !docs.contains(&f.doc) {
                        docs.push(f.doc.clone());
                    }
                }
            }
        }
        let mut append = Append {
            base_head: log.head,
            withdrawn_ms: now_ms,
            stored_ms: now_ms,
            ..Append::default()
        };
        let mut out = Vec::new();
        for doc in &docs {
            // Every change of the document (its snapshot holds those pruned from the log), in
            // an order where each comes after its dependencies: a change goes if it is named
            // or depends on one that goes. The document without them is its new snapshot.
            // First the document, which holds everything (what was pruned from the log too), in
            // an order where each change comes after its dependencies: a change goes if it is
            // named or depends on one that goes. The document without them is its new snapshot.
            let loaded = self
                .docs
                .take(team, doc, log.withdrawals)
                .catch_up(&*self.store, team, doc)
                .await?;
            let named = wanted.clone();
            let (gone, rebuilt) = cpu(move || -> Result<(Vec<Vec<u8>>, Vec<u8>)> {
                let broken = |p: &str| Error::Internal(format!("cannot rebuild a document: {p}"));
                let all = change::quietly(|| loaded.doc.get_changes(&[])).map_err(broken)?;
                let mut gone_set: HashSet<Vec<u8>> = HashSet::new();
                let mut gone = Vec::new();
                let mut keep = Vec::with_capacity(all.len());
                for c in all {
                    let h = c.hash().0.to_vec();
                    if named.contains(&h) || c.deps().iter().any(|d| gone_set.contains(&d.0[..])) {
                        gone_set.insert(h.clone());
                        gone.push(h);
                    } else {
                        keep.push(c);
                    }
                }
                let mut doc = Automerge::new();
                change::quietly(|| doc.apply_changes(keep))
                    .map_err(broken)?
                    .map_err(|e| broken(&e.to_string()))?;
                let saved = change::quietly(|| doc.save()).map_err(broken)?;
                Ok((gone, saved))
            })
            .await??;
            // Then the log, in its order: every entry of what goes loses its content, and so
            // does a change stored by an older server that never applied to the document (only
            // the log has it) with what was made on it.
            let mut named: HashSet<Vec<u8>> = wanted.clone();
            named.extend(gone.iter().cloned());
            let mut noticed: HashSet<Vec<u8>> = gone.iter().cloned().collect();
            let mut all_gone = gone;
            for (seq, data) in self.store.doc_changes(team, doc, 0).await? {
                let Ok(change) = Change::from_bytes(data) else {
                    continue;
                };
                let h = change.hash().0.to_vec();
                if named.contains(&h) || change.deps().iter().any(|d| named.contains(&d.0[..])) {
                    append.withdraw.push(seq);
                    named.insert(h.clone());
                    if noticed.insert(h.clone()) {
                        all_gone.push(h);
                    }
                }
            }
            let mut notice = Vec::with_capacity(all_gone.len() * 32);
            for h in &all_gone {
                notice.extend_from_slice(h);
                out.push((doc.clone(), hex(h)));
            }
            let seq = log.head + 1 + append.entries.len() as i64;
            append.entries.push(Entry {
                doc: doc.clone(),
                hash: Sha256::digest([b"withdraw:".as_slice(), &notice].concat()).to_vec(),
                actor: Vec::new(),
                actor_seq: seq,
                device: String::new(),
                data: notice,
                withdrawn_ms: None,
                kind: Kind::Notice,
            });
            append.snapshots.push((doc.clone(), rebuilt));
        }
        append.withdrawals = out.len() as i64;
        if !append.entries.is_empty() {
            match self.store.append(team, &append).await {
                Ok(_) => {}
                Err(e) if e.is_race() => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        for doc in &docs {
            self.docs.forget(team, doc);
        }
        out.sort_by_key(|(_, h)| !wanted.contains(&unhex(h).unwrap_or_default()));
        Ok(Some(out))
    }
}
