//! A stream sequence that only moves forward, shared through a watch channel: how far the
//! projector applied, how far a log follower read, the highest sequence a writer awaits.

use tokio::sync::watch;

/// Raises `mark` to `seq` when that is higher, waking its watchers only then; whether it rose.
/// Announcements arrive out of order and twice (reconnects, several announcers), so a mark
/// never moves back.
pub fn raise(mark: &watch::Sender<u64>, seq: u64) -> bool {
    mark.send_if_modified(|current| {
        let higher = seq > *current;
        if higher {
            *current = seq;
        }
        higher
    })
}

/// A sequence as said on the progress subjects (`chat.progress.{projector}` and its
/// `.awaited`): decimal ASCII, surrounding whitespace allowed; `None` for anything else.
pub fn parse_said(payload: &[u8]) -> Option<u64> {
    std::str::from_utf8(payload).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_only_rises() {
        let (mark, watcher) = watch::channel(5);
        assert!(!raise(&mark, 3));
        assert!(!raise(&mark, 5));
        assert_eq!(*watcher.borrow(), 5);
        assert!(raise(&mark, 9));
        assert_eq!(*watcher.borrow(), 9);
    }

    #[test]
    fn only_decimal_sequences_are_read() {
        assert_eq!(parse_said(b"42"), Some(42));
        assert_eq!(parse_said(b" 42\n"), Some(42));
        assert_eq!(parse_said(b"-1"), None);
        assert_eq!(parse_said(b"4 2"), None);
        assert_eq!(parse_said(&[0xff, 0x34]), None);
    }
}
