//! A client of the previous version keeps syncing with this server: the requests `cairn` sent
//! at 2c958b8 (tests/fixtures/compat/v1-2c958b8.json, with that version's response types as
//! shapes), replayed against a real `cairn-server` beside members on today's `cairn`: its join,
//! its syncs of the team's log and the organisation's (without `org_docs`), a push in its shape,
//! `GET /v1/org` and a wait. Every answer must decode as that version's types would decode it
//! (unknown fields ignored, as serde does), and an old client reads only the documents of the
//! organisation's log it knows.

use cairn_e2e::{Home, Server, feed_all, http};
use cairn_protocol::{Bytes, ORG_DOC, SyncRequest, SyncResponse};
use serde_json::{Value, json};

/// The recorded requests and the previous version's response shapes.
const RECORDED: &str = include_str!("../fixtures/compat/v1-2c958b8.json");

/// The previous version's client, as recorded.
struct OldClient {
    fixture: Value,
    url: String,
}

impl OldClient {
    fn new(server: &Server) -> OldClient {
        OldClient {
            fixture: serde_json::from_str(RECORDED).expect("the fixture parses"),
            url: server.url.clone(),
        }
    }

    /// Sends the recorded request `name`, its `{placeholders}` filled from `vars`, with `token`;
    /// returns the status and the body, checked against `shape` when the status is `ok`, and
    /// against the old `ErrorBody` otherwise.
    fn send(
        &self,
        name: &str,
        token: Option<&str>,
        vars: &[(&str, Value)],
        shape: &str,
    ) -> (u16, Value) {
        let req = &self.fixture["requests"][name];
        let Value::String(path) = fill(&req["path"], vars) else {
            panic!("{name} has a path");
        };
        let agent = http::agent();
        let url = format!("{}{path}", self.url);
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut resp = match req["method"].as_str() {
            Some("GET") => {
                let mut r = agent.get(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            Some("POST") => {
                let mut r = agent.post(&url).content_type("application/json");
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.send(serde_json::to_vec(&fill(&req["body"], vars)).unwrap())
            }
            other => panic!("{name}: method {other:?}"),
        }
        .expect("the server answers");
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        if status == 204 {
            return (status, Value::Null);
        }
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{name}: {status} {text:?} is no JSON: {e}"));
        let shape = if status < 300 { shape } else { "ErrorBody" };
        if let Err(e) = self.conforms(shape, &body) {
            panic!("{name}: the previous version cannot read {shape} {body}: {e}");
        }
        (status, body)
    }

    /// Whether `v` decodes as the previous version's type `ty` (a shape of the fixture, a list
    /// `[T]`, `T|null`, or a scalar).
    fn conforms(&self, ty: &str, v: &Value) -> Result<(), String> {
        if let Some(inner) = ty.strip_suffix("|null") {
            return if v.is_null() {
                Ok(())
            } else {
                self.conforms(inner, v)
            };
        }
        if let Some(inner) = ty.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            let items = v.as_array().ok_or(format!("{v} is no list"))?;
            return items.iter().try_for_each(|i| self.conforms(inner, i));
        }
        let fits = match ty {
            "string" => v.is_string(),
            "bool" => v.is_boolean(),
            "u64" => v.is_u64(),
            "u32" => v.as_u64().is_some_and(|n| u32::try_from(n).is_ok()),
            "base64" => v.as_str().is_some_and(|s| {
                s.len() % 4 == 0
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
            }),
            _ => match &self.fixture["shapes"][ty] {
                Value::Array(names) => names.contains(v),
                Value::Object(fields) => {
                    let obj = v.as_object().ok_or(format!("{v} is no {ty}"))?;
                    for (field, fty) in fields {
                        let fty = fty.as_str().expect("a type");
                        match (
                            field.strip_suffix('?'),
                            obj.get(field.trim_end_matches('?')),
                        ) {
                            (_, Some(value)) => self
                                .conforms(fty, value)
                                .map_err(|e| format!("{ty}.{field}: {e}"))?,
                            (Some(_), None) => {}
                            (None, None) => return Err(format!("{ty} lacks {field}")),
                        }
                    }
                    true
                }
                _ => panic!("no shape {ty} in the fixture"),
            },
        };
        if fits {
            Ok(())
        } else {
            Err(format!("{v} is no {ty}"))
        }
    }

    /// Syncs a log from `cursor` as the previous version did, page after page, pushing `push`
    /// first; returns the cursor reached, every answer, and how many changes were acknowledged.
    fn sync(
        &self,
        request: &str,
        token: &str,
        org: &str,
        mut cursor: u64,
        push: Value,
    ) -> (u64, Vec<Value>, u64) {
        let mut pages = Vec::new();
        let mut acked = 0;
        let mut push = push;
        loop {
            let vars = [
                ("cursor", json!(cursor)),
                ("push", std::mem::replace(&mut push, json!([]))),
                ("org", json!(org)),
            ];
            let (status, page) = self.send(request, Some(token), &vars, "SyncResponse");
            assert_eq!(status, 200, "{page}");
            acked += page["acked"].as_u64().unwrap();
            cursor = page["cursor"].as_u64().unwrap();
            let more = page["more"].as_bool().unwrap_or(false);
            pages.push(page);
            if !more {
                return (cursor, pages, acked);
            }
        }
    }
}

/// `template` with every string `"{name}"` replaced by the value `vars` gives it, and every
/// `{name}` inside another string by its text.
fn fill(template: &Value, vars: &[(&str, Value)]) -> Value {
    match template {
        Value::String(s) => {
            if let Some((_, v)) = vars.iter().find(|(k, _)| *s == format!("{{{k}}}")) {
                return v.clone();
            }
            let mut s = s.clone();
            for (k, v) in vars {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                s = s.replace(&format!("{{{k}}}"), &text);
            }
            assert!(!s.contains('{'), "{s} is left unfilled");
            Value::String(s)
        }
        Value::Array(items) => Value::Array(items.iter().map(|i| fill(i, vars)).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), fill(v, vars)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The documents the pages of a sync brought: pulled changes and whole documents.
fn docs_of(pages: &[Value]) -> Vec<String> {
    let mut docs = Vec::new();
    for page in pages {
        for key in ["pulled", "docs"] {
            for item in page[key].as_array().into_iter().flatten() {
                docs.push(item["doc"].as_str().unwrap().to_owned());
            }
        }
    }
    docs
}

#[test]
fn a_client_of_the_previous_version_keeps_syncing() {
    let server = Server::start();
    let org = server.create_org("Acme");
    let (platform, ana) = server.found_team("Platform", Some("Acme"), "Ana");
    let (_, cy) = server.found_team("Mobile", Some("Acme"), "Cy");
    server
        .admin(&["org", "steward", "add", "Acme", "--member", "Platform:@ana"])
        .ok();
    ana.run(&["sync"]).ok();
    ana.run(&["log", "Wrote the onboarding notes"]).ok();
    ana.run(&["org", "add", "Ship daily", "--why", "speed"])
        .ok();
    ana.run(&["sync"]).ok();
    cy.run(&["sync"]).ok();
    // Cy thanks Ana across teams: a document of the organisation's log older clients never knew.
    cy.run(&["kudos", "@ana@platform", "Thanks for the review"])
        .ok();
    cy.run(&["sync"]).ok();

    let old = OldClient::new(&server);
    let (status, info) = old.send("info", None, &[], "Info");
    assert_eq!(
        (status, info["protocol"].as_u64()),
        (200, Some(1)),
        "{info}"
    );

    // Bo joins with the previous version, and reads the team's log and the organisation's.
    let invite = server.invite(&platform, 1);
    let (status, joined) = old.send("join", None, &[("invite", json!(invite))], "JoinResponse");
    assert_eq!(status, 200, "{joined}");
    assert_eq!(joined["org"]["id"], json!(org), "{joined}");
    let token = joined["token"].as_str().unwrap().to_owned();
    let (cursor, pages, _) = old.sync("sync", &token, "", 0, json!([]));
    let docs = docs_of(&pages);
    assert!(docs.iter().any(|d| d == "team"), "{docs:?}");
    assert!(
        docs.iter().any(|d| d.starts_with("j/")),
        "Ana's act: {docs:?}"
    );

    let (status, said) = old.send("org", Some(&token), &[], "OrgResponse");
    assert_eq!(status, 200, "{said}");
    assert_eq!(said["org"]["id"], json!(org), "{said}");
    let (_, pages, _) = old.sync("org_sync", &token, &org, 0, json!([]));
    let docs = docs_of(&pages);
    assert!(
        !docs.is_empty() && docs.iter().all(|d| d == ORG_DOC),
        "only the organisation's own document: {docs:?}"
    );
    // (Today's clients, asking for them, get the kudos across teams too.)
    let (status, body) = http::post(
        &server.url,
        &format!("/v1/sync?org={org}"),
        Some(&token),
        &serde_json::to_vec(&SyncRequest {
            org_docs: true,
            ..SyncRequest::default()
        })
        .unwrap(),
    );
    assert_eq!(status, 200, "{body}");
    let new: SyncResponse = serde_json::from_str(&body).unwrap();
    assert!(
        new.pulled
            .iter()
            .map(|p| &p.doc)
            .chain(new.docs.iter().map(|d| &d.doc))
            .any(|d| d.starts_with("x/")),
        "{body}"
    );

    // A push in the previous version's shape: Ana's next act, written by today's cairn.
    ana.run(&["log", "Reviewed the runbook"]).ok();
    let outbox = ana.outbox();
    let mut push: Vec<Value> = Vec::new();
    for (doc, change) in &outbox {
        let change = serde_json::to_value(Bytes(change.clone())).unwrap();
        match push.iter_mut().find(|p| p["doc"] == json!(doc)) {
            Some(p) => p["changes"].as_array_mut().unwrap().push(change),
            None => push.push(json!({ "doc": doc, "changes": [change] })),
        }
    }
    let (_, _, acked) = old.sync("sync", &ana.meta("token"), "", cursor, json!(push));
    assert_eq!(acked, outbox.len() as u64);

    // Bo, waiting from where he was, hears of it at once and pulls it.
    let (status, news) = old.send(
        "wait",
        Some(&token),
        &[("after", json!(cursor))],
        "WaitResponse",
    );
    assert_eq!(status, 200, "{news}");
    assert!(news["head"].as_u64().unwrap() > cursor, "{news}");
    let (_, pages, _) = old.sync("sync", &token, "", cursor, json!([]));
    let docs = docs_of(&pages);
    assert!(outbox.iter().all(|(doc, _)| docs.contains(doc)), "{docs:?}");

    // Refused, the previous version reads the error too.
    let (status, _) = old.send("org", Some("not-a-token"), &[], "OrgResponse");
    assert_eq!(status, 401);

    // Today's cairn, syncing after, has its act once: the server took it as its own.
    ana.run(&["sync"]).ok();
    let dee = Home::joined(&server, &server.invite(&platform, 1), &["--name", "Dee"]);
    let runbook = feed_all(&dee, &[])
        .iter()
        .filter(|e| e["text"] == "Reviewed the runbook")
        .count();
    assert_eq!(runbook, 1);
}
