//! The results of a chaos run: one markdown table row per fault, printed and put between the
//! markers `<!-- chaos:begin -->` and `<!-- chaos:end -->` of a document, so the rest of the
//! document stays whoever else's.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};

use super::check::Findings;
use super::options::Options;

/// Where the results start in the document.
const BEGIN: &str = "<!-- chaos:begin -->";

/// Where they end.
const END: &str = "<!-- chaos:end -->";

/// What one fault did.
#[derive(Debug, Clone)]
pub struct Row {
    /// The fault's name.
    pub fault: String,
    /// The node it hit.
    pub node: String,
    /// The check that followed.
    pub findings: Findings,
    /// Longest time one user waited for a RECEIPT.
    pub receipt_gap: Duration,
    /// Longest time one user got no live CHAT.
    pub live_stall: Duration,
    /// How long the node was down or frozen.
    pub down: Duration,
    /// From the restart (or SIGCONT) until `scripts/cluster start` found the node ready.
    pub node_ready: Option<Duration>,
    /// From the restart (or SIGCONT) until every edge was ready and every user served again.
    pub recovered: Option<Duration>,
    /// Anything else worth saying.
    pub notes: Vec<String>,
}

impl Row {
    /// A row without outage times.
    pub fn new(
        fault: &str,
        node: &str,
        findings: Findings,
        receipt_gap: Duration,
        live_stall: Duration,
    ) -> Self {
        Self {
            fault: fault.to_owned(),
            node: node.to_owned(),
            findings,
            receipt_gap,
            live_stall,
            down: Duration::ZERO,
            node_ready: None,
            recovered: None,
            notes: Vec::new(),
        }
    }

    /// Whether the row shows a broken guarantee.
    pub fn is_bad(&self) -> bool {
        let f = &self.findings;
        !f.lost.is_empty()
            || !f.duplicated.is_empty()
            || f.misordered > 0
            || !f.edges_disagree.is_empty()
            || f.live_lost > 0
            || f.live_repeated > 0
            || f.live_misordered > 0
            || f.push_missing > 0
            || !f.push_repeated.is_empty()
    }

    /// The notes column: what the numbers do not show.
    fn remarks(&self) -> String {
        let f = &self.findings;
        let mut remarks = self.notes.clone();
        if f.unacked > 0 {
            remarks.push(format!(
                "{} without RECEIPT ({} stored)",
                f.unacked, f.stored_unacked
            ));
        }
        if f.refused > 0 {
            remarks.push(format!("{} refused by an ERROR", f.refused));
        }
        if f.misordered > 0 {
            remarks.push(format!("{} out of log order", f.misordered));
        }
        if !f.send_order_swaps.is_empty() {
            remarks.push(format!(
                "stored out of send order: {}",
                sample(&f.send_order_swaps)
            ));
        }
        if f.live_misordered > 0 {
            remarks.push(format!("{} live out of order", f.live_misordered));
        }
        remarks.extend(f.edges_disagree.iter().cloned());
        if !f.lost.is_empty() {
            remarks.push(format!("lost: {}", sample(&f.lost)));
        }
        if !f.duplicated.is_empty() {
            remarks.push(format!("duplicated: {}", sample(&f.duplicated)));
        }
        if let Some(after) = f.history_complete.filter(|d| *d > Duration::from_secs(1)) {
            remarks.push(format!(
                "history complete on every edge only {} after the RECEIPTs",
                secs(after)
            ));
        }
        if !f.push_repeated.is_empty() {
            remarks.push(format!(
                "pushed more than once: {}",
                sample(&f.push_repeated)
            ));
        }
        if let Some(after) = f.pushes_complete.filter(|d| *d > Duration::from_secs(1)) {
            remarks.push(format!("every push arrived after {}", secs(after)));
        }
        match f.unread_converged {
            Some(after) if after > Duration::from_millis(500) => {
                remarks.push(format!("unread counts converged after {}", secs(after)));
            }
            Some(_) => {}
            None => remarks.push(format!("unread counts wrong: {}", f.unread.join("; "))),
        }
        remarks.join("; ")
    }
}

/// The first few items of a list, and how many there are.
fn sample(items: &[String]) -> String {
    let shown: Vec<&str> = items.iter().take(3).map(String::as_str).collect();
    if items.len() > shown.len() {
        format!("{} (of {})", shown.join(", "), items.len())
    } else {
        shown.join(", ")
    }
}

/// Seconds with one decimal.
fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// One line for the console while the run goes on.
pub fn line(row: &Row) -> String {
    let f = &row.findings;
    format!(
        "  {} {}: sent {} acked {} lost {} duplicated {} live lost {} repeated {} pushes missing {} repeated {} resent {}; RECEIPT gap {}, live stall {}, recovered {}; {}",
        row.fault,
        row.node,
        f.sent,
        f.acked,
        f.lost.len(),
        f.duplicated.len(),
        f.live_lost,
        f.live_repeated,
        f.push_missing,
        f.push_repeated.len(),
        f.push_resent,
        secs(row.receipt_gap),
        secs(row.live_stall),
        row.recovered.map_or("-".to_owned(), secs),
        row.remarks()
    )
}

/// The markdown of the results: settings, date, table, connection drops.
pub fn table(rows: &[Row], options: &Options, tag: &str, drops: &HashMap<String, usize>) -> String {
    let date = time::OffsetDateTime::now_utc().date();
    let mut out = format!(
        "Last run {date} (run `chaos{tag}`, `scripts/chaos`): {} users over 3 edges, each in 2 of {} \
         GROUP rooms, a CHAT every {} ms each over STOMP SEND with `receipt`, every CHAT pushed to two \
         device tokens; killed nodes down {} s, frozen ones {} s.\n\n",
        options.users,
        options.rooms,
        options.interval.as_millis(),
        options.down.as_secs(),
        options.freeze.as_secs()
    );
    out.push_str(
        "| Fault | Node | Sent | Acked | Lost | Duplicated | Live lost / repeated | Pushes missing / repeated / resent | Longest RECEIPT gap | Longest live stall | Node ready | Recovered | Notes |\n\
         |---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n",
    );
    for row in rows {
        let f = &row.findings;
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} / {} | {} / {} / {} | {} | {} | {} | {} | {} |\n",
            row.fault,
            row.node,
            f.sent,
            f.acked,
            f.lost.len(),
            f.duplicated.len(),
            f.live_lost,
            f.live_repeated,
            f.push_missing,
            f.push_repeated.len(),
            f.push_resent,
            if row.receipt_gap.is_zero() {
                "-".to_owned()
            } else {
                secs(row.receipt_gap)
            },
            if row.live_stall.is_zero() {
                "-".to_owned()
            } else {
                secs(row.live_stall)
            },
            row.node_ready.map_or("-".to_owned(), secs),
            row.recovered.map_or("-".to_owned(), secs),
            row.remarks().replace('|', "\\|")
        ));
    }
    let mut drops: Vec<_> = drops.iter().collect();
    drops.sort_by(|a, b| b.1.cmp(a.1));
    if !drops.is_empty() {
        out.push_str("\nConnections that ended, by reason: ");
        let reasons: Vec<String> = drops
            .iter()
            .map(|(reason, n)| format!("{n} × `{reason}`"))
            .collect();
        out.push_str(&reasons.join(", "));
        out.push('\n');
    }
    out
}

/// Puts `table` between the markers of `doc`, replacing what was there.
pub fn write(doc: &Path, table: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(doc).with_context(|| format!("read {}", doc.display()))?;
    let (Some(begin), Some(end)) = (text.find(BEGIN), text.find(END)) else {
        bail!("{} has no {BEGIN} ... {END} markers", doc.display());
    };
    if end < begin {
        bail!("{}: {END} comes before {BEGIN}", doc.display());
    }
    let text = format!("{}{BEGIN}\n{table}{}", &text[..begin], &text[end..]);
    std::fs::write(doc, text).with_context(|| format!("write {}", doc.display()))
}
