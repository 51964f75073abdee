//! Small readers over automerge values, shared by the team and journal schemas.

use automerge::{ObjId, ReadDoc};

use crate::{Error, Result};

pub(crate) fn get_str<D: ReadDoc>(doc: &D, obj: &ObjId, key: &str) -> Result<Option<String>> {
    Ok(doc
        .get(obj, key)?
        .and_then(|(v, _)| v.as_str().map(str::to_owned)))
}

pub(crate) fn req_str<D: ReadDoc>(doc: &D, obj: &ObjId, key: &str) -> Result<String> {
    get_str(doc, obj, key)?.ok_or_else(|| Error::Malformed(format!("missing `{key}`")))
}

pub(crate) fn get_i64<D: ReadDoc>(doc: &D, obj: &ObjId, key: &str) -> Result<Option<i64>> {
    Ok(doc.get(obj, key)?.and_then(|(v, _)| v.as_i64()))
}

pub(crate) fn get_bool<D: ReadDoc>(doc: &D, obj: &ObjId, key: &str) -> Result<bool> {
    Ok(doc
        .get(obj, key)?
        .and_then(|(v, _)| v.as_bool())
        .unwrap_or(false))
}

/// The ids of the child maps stored at root keys starting with `prefix`.
pub(crate) fn children<D: ReadDoc>(doc: &D, prefix: &str) -> Result<Vec<(String, ObjId)>> {
    let mut out = Vec::new();
    for key in doc.keys(automerge::ROOT) {
        if let Some(rest) = key.strip_prefix(prefix)
            && let Some((_, obj)) = doc.get(automerge::ROOT, key.as_str())?
        {
            out.push((rest.to_owned(), obj));
        }
    }
    Ok(out)
}
