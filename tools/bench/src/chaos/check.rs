//! The checks after each fault, against what the users recorded: the history read through
//! every edge, the live streams, the unread counts.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::{anyhow, bail};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio::time::{sleep, Instant};

use super::client::Record;

/// Longest time one history page may keep failing (503 while a node restarts, ...).
const PAGE_PATIENCE: Duration = Duration::from_secs(60);

/// One history entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Its message id, a decimal string.
    pub message_id: String,
    /// CHAT, INVITE or LEAVE.
    #[serde(rename = "type")]
    pub kind: String,
    /// The sender's `clientMessageId`.
    pub client_message_id: Option<String>,
    /// Members who have not read it (CHAT only).
    pub unread_count: Option<u64>,
}

/// One history page.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    messages: Vec<Entry>,
    next_before: Option<String>,
}

/// A room's history after message id `after`, oldest first, and how often a page was not in
/// newest-first order (each entry older than the one before it).
pub struct History {
    /// The entries, by ascending message id as the edge returned them (reversed).
    pub entries: Vec<(u64, Entry)>,
    /// Places where the edge's order was not strictly descending.
    pub misordered: usize,
}

/// Reads the history of `room` newer than `after` through `base` (an edge), as `token`'s user.
pub async fn history(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    room: &str,
    after: u64,
) -> anyhow::Result<History> {
    let mut entries = Vec::new();
    let mut misordered = 0;
    let mut before: Option<String> = None;
    loop {
        let mut url = format!("{base}/api/rooms/{room}/messages?limit=100");
        if let Some(cursor) = &before {
            url.push_str(&format!("&before={cursor}"));
        }
        let page: Page = get_json(http, &url, token).await?;
        let mut reached = false;
        for entry in page.messages {
            let id: u64 = entry
                .message_id
                .parse()
                .map_err(|_| anyhow!("{url}: message id {:?}", entry.message_id))?;
            if id <= after {
                reached = true;
                continue;
            }
            if entries.last().is_some_and(|(last, _)| id >= *last) {
                misordered += 1;
            }
            entries.push((id, entry));
        }
        match page.next_before {
            Some(next) if !reached => before = Some(next),
            _ => break,
        }
    }
    entries.reverse();
    Ok(History {
        entries,
        misordered,
    })
}

/// A JSON document read with `token`, retried while the edge answers an error.
pub async fn get_json<T: DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    token: &str,
) -> anyhow::Result<T> {
    let began = Instant::now();
    loop {
        let error = match http.get(url).bearer_auth(token).send().await {
            Ok(response) if response.status().is_success() => match response.json().await {
                Ok(value) => return Ok(value),
                Err(e) => format!("undecodable answer: {e}"),
            },
            Ok(response) => format!("HTTP {}", response.status()),
            Err(e) => e.to_string(),
        };
        if began.elapsed() > PAGE_PATIENCE {
            bail!("GET {url}: {error}");
        }
        sleep(Duration::from_millis(500)).await;
    }
}

/// What one check found.
#[derive(Debug, Default, Clone)]
pub struct Findings {
    /// CHATs sent in the checked windows.
    pub sent: usize,
    /// Of them, with a RECEIPT.
    pub acked: usize,
    /// Of them, refused by an ERROR for good.
    pub refused: usize,
    /// Of them, neither acknowledged nor refused.
    pub unacked: usize,
    /// Of the unacknowledged, those stored anyway.
    pub stored_unacked: usize,
    /// Acknowledged but missing from the history: `clientMessageId`s.
    pub lost: Vec<String>,
    /// `clientMessageId`s stored more than once, with their message ids.
    pub duplicated: Vec<String>,
    /// Places where the history was out of order, or one sender's messages in a room were
    /// stored out of their send order.
    pub misordered: usize,
    /// One sender's messages stored out of their send order, described.
    pub send_order_swaps: Vec<String>,
    /// Rooms whose history differed between edges.
    pub edges_disagree: Vec<String>,
    /// Live deliveries missing from a client's stream.
    pub live_lost: usize,
    /// Live deliveries a client got more than once.
    pub live_repeated: usize,
    /// Live deliveries out of log order.
    pub live_misordered: usize,
    /// Unread counts that did not converge, described.
    pub unread: Vec<String>,
    /// How long after the check began the history held every acknowledged message on every
    /// edge (it follows the log through the projector); `None`: not within the patience.
    pub history_complete: Option<Duration>,
    /// How long the unread counts took to converge.
    pub unread_converged: Option<Duration>,
    /// (CHAT, device token) pairs that got no push.
    pub push_missing: usize,
    /// (CHAT, device token) pairs pushed more than once without the `resent` mark, described:
    /// repeats the app cannot tell apart.
    pub push_repeated: Vec<String>,
    /// Pushes marked `resent` to a (CHAT, device token) pair that already had one: the notifier
    /// could not know FCM took the first (it died, or the answer never came).
    pub push_resent: usize,
    /// How long after the check began every push had arrived; `None`: not within the patience.
    pub pushes_complete: Option<Duration>,
}

/// Compares the history (newer than `after` per room, the same from every edge) with what the
/// users sent in `windows` and what each member of each room (`members`, user indexes)
/// received live.
pub fn compare(
    record: &Record,
    members: &[Vec<usize>],
    windows: &HashSet<usize>,
    after: &[u64],
    histories: &[History],
) -> Findings {
    let mut findings = Findings::default();
    let mut stored: HashMap<&str, Vec<u64>> = HashMap::new();
    for history in histories {
        findings.misordered += history.misordered;
        for (id, entry) in &history.entries {
            if let (Some(cmid), "CHAT") = (&entry.client_message_id, entry.kind.as_str()) {
                stored.entry(cmid.as_str()).or_default().push(*id);
            }
        }
    }
    for (cmid, ids) in &stored {
        if ids.len() > 1 {
            findings.duplicated.push(format!("{cmid} as {ids:?}"));
        }
    }
    findings.duplicated.sort();

    let mut by_sender: HashMap<(usize, usize), Vec<(u64, u64)>> = HashMap::new();
    for sent in record.sent.iter().filter(|s| windows.contains(&s.window)) {
        findings.sent += 1;
        let ids = stored.get(sent.client_message_id.as_str());
        if let Some(ids) = ids {
            by_sender
                .entry((sent.user, sent.room))
                .or_default()
                .push((sent.seq, ids[0]));
        }
        if sent.refused.is_some() {
            findings.refused += 1;
        } else if sent.acked_at.is_some() {
            findings.acked += 1;
            if ids.is_none() {
                findings.lost.push(sent.client_message_id.clone());
            }
        } else {
            findings.unacked += 1;
            if ids.is_some() {
                findings.stored_unacked += 1;
            }
        }
    }
    for ((user, room), stored) in &mut by_sender {
        stored.sort_unstable();
        for pair in stored.windows(2).filter(|w| w[1].1 <= w[0].1) {
            findings.misordered += 1;
            findings.send_order_swaps.push(format!(
                "user {user} room {room}: its #{} stored as {} before its #{} as {}",
                pair[1].0, pair[1].1, pair[0].0, pair[0].1
            ));
        }
    }
    findings.send_order_swaps.sort();

    for (room, history) in histories.iter().enumerate() {
        let expected: Vec<u64> = history
            .entries
            .iter()
            .filter(|(_, e)| e.kind == "CHAT")
            .map(|(id, _)| *id)
            .collect();
        let newest = history.entries.last().map_or(after[room], |(id, _)| *id);
        for &user in &members[room] {
            let seen: Vec<u64> = record
                .received
                .get(&(user, room))
                .into_iter()
                .flatten()
                .copied()
                .filter(|id| *id > after[room] && *id <= newest)
                .collect();
            let distinct: HashSet<u64> = seen.iter().copied().collect();
            findings.live_repeated += seen.len() - distinct.len();
            findings.live_lost += expected.iter().filter(|id| !distinct.contains(id)).count();
            findings.live_misordered += seen.windows(2).filter(|w| w[1] <= w[0]).count();
        }
    }
    findings
}

/// The newest message id per room in `histories`, or `after` where a room has nothing newer.
pub fn newest(after: &[u64], histories: &[History]) -> Vec<u64> {
    histories
        .iter()
        .zip(after)
        .map(|(h, after)| h.entries.last().map_or(*after, |(id, _)| *id))
        .collect()
}

/// Whether two edges returned the same entries (ids, types, `clientMessageId`s).
pub fn same(a: &History, b: &History) -> bool {
    a.entries.len() == b.entries.len()
        && a.entries
            .iter()
            .zip(&b.entries)
            .all(|((ia, ea), (ib, eb))| {
                ia == ib && ea.kind == eb.kind && ea.client_message_id == eb.client_message_id
            })
}
