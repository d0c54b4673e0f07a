//! The values that cross the store boundary: what callers hand in (`Incoming`,
//! `Settlement`, `Delivery`, `Flags`) and what they get back (`QueuedMessage`,
//! `MailEntry`, `FolderInfo`, ...). Plain data only: no SQL, no I/O here.
//!
//! All times are Unix milliseconds.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A mail box entry id. Never reused, even after the entry is deleted.
pub type MessageId = i64;

/// What kind of message a mail box entry is: a Delivery Failure Report about a
/// report is never sent (it becomes Dead), so the router must know which is which.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    #[default]
    Normal,
    Report,
}

impl MessageKind {
    pub(crate) fn code(self) -> i64 {
        match self {
            MessageKind::Normal => 0,
            MessageKind::Report => 1,
        }
    }

    pub(crate) fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(MessageKind::Normal),
            1 => Some(MessageKind::Report),
            _ => None,
        }
    }
}

/// One server a message passed before it reached this one, and when it
/// left it: Domino's `RouteServers` / `RouteTimes`, one entry a hop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hop {
    pub server: String,
    pub time: i64,
}

/// A message's priority (Domino's `DeliveryPriority`): low-priority mail may
/// wait for the low-priority window; high priority never waits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
}

impl Priority {
    pub(crate) fn code(self) -> i64 {
        match self {
            Priority::Low => 0,
            Priority::Normal => 1,
            Priority::High => 2,
        }
    }

    pub(crate) fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(Priority::Low),
            1 => Some(Priority::Normal),
            2 => Some(Priority::High),
            _ => None,
        }
    }

    /// The word used on the wire and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
        }
    }

    /// The inverse of [`Priority::as_str`].
    pub fn parse(word: &str) -> Option<Priority> {
        match word.trim().to_ascii_lowercase().as_str() {
            "low" => Some(Priority::Low),
            "normal" => Some(Priority::Normal),
            "high" => Some(Priority::High),
            _ => None,
        }
    }
}

/// Where a message handed over by the native protocol came from: the
/// sending server and its mail box id. With each recipient's address it
/// names one recipient row of the sender, so that a resend after a crash
/// is recognised and not delivered twice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferOrigin {
    /// The sending server and its store's identity (`Mail/Acme#8123...`):
    /// a store made anew, whose ids start again, is another origin.
    pub server: String,
    pub message: MessageId,
}

/// A message handed to the mail box (by SMTP, by the native protocol, by
/// the router for reports and forwarded copies).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Incoming {
    /// Reverse path; `""` is the null reverse path `<>`.
    pub from: String,
    pub recipients: Vec<String>,
    pub data: Vec<u8>,
    pub received_at: i64,
    pub kind: MessageKind,
    pub hop_count: u32,
    /// Where it came from, for administrators: `smtp 127.0.0.1 helo=x auth=jdoe`, `report about 42`.
    pub origin: String,
    /// Message-ID header without `<>`, if known.
    pub message_id: Option<String>,
    pub subject: Option<String>,
    /// The servers it passed before this one (empty for mail from outside the domain).
    pub route: Vec<Hop>,
    pub priority: Priority,
    /// Put in the mail box Held, for this reason (a server mail rule), not
    /// Pending: the router leaves it until an administrator releases it.
    pub held: Option<String>,
    /// Recipients a server mail rule added (`copy-to`): (address, the rule
    /// that added it), rows with that parent after the original ones.
    pub derived: Vec<(String, String)>,
}

/// Pending, Held or Dead (SPEC §5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageState {
    #[default]
    Pending,
    Held,
    Dead,
}

impl MessageState {
    pub(crate) fn code(self) -> i64 {
        match self {
            MessageState::Pending => 0,
            MessageState::Held => 1,
            MessageState::Dead => 2,
        }
    }

    pub(crate) fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(MessageState::Pending),
            1 => Some(MessageState::Held),
            2 => Some(MessageState::Dead),
            _ => None,
        }
    }
}

impl fmt::Display for MessageState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MessageState::Pending => "Pending",
            MessageState::Held => "Held",
            MessageState::Dead => "Dead",
        })
    }
}

/// Where one recipient row stands. `Pending` (to be routed) and `Waiting`
/// (handed to an outbound queue, its transfer not yet settled) are open;
/// every other status is final. A row only moves forward: open → final, or
/// Pending → Waiting; see [`RecipientStatus::may_become`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecipientStatus {
    #[default]
    Pending,
    /// In an outbound queue (`QueuedRecipient::queue`), waiting for a transfer.
    Waiting,
    Delivered,
    Transferred,
    Failed,
    Expanded,
    Forwarded,
    Dropped,
}

impl RecipientStatus {
    pub fn is_final(self) -> bool {
        !self.is_open()
    }

    /// Pending or Waiting: the message stays in the mail box while one row is open.
    pub fn is_open(self) -> bool {
        matches!(self, RecipientStatus::Pending | RecipientStatus::Waiting)
    }

    /// The one transition rule of a recipient row: a final row never changes;
    /// a Waiting row never goes back to Pending (only a release of Held or
    /// Dead mail, an administrator's act, resets rows).
    pub fn may_become(self, next: RecipientStatus) -> bool {
        match self {
            RecipientStatus::Pending => true,
            RecipientStatus::Waiting => next != RecipientStatus::Pending,
            _ => false,
        }
    }

    pub(crate) fn code(self) -> i64 {
        match self {
            RecipientStatus::Pending => 0,
            RecipientStatus::Delivered => 1,
            RecipientStatus::Transferred => 2,
            RecipientStatus::Failed => 3,
            RecipientStatus::Expanded => 4,
            RecipientStatus::Forwarded => 5,
            RecipientStatus::Dropped => 6,
            RecipientStatus::Waiting => 7,
        }
    }

    pub(crate) fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            0 => RecipientStatus::Pending,
            1 => RecipientStatus::Delivered,
            2 => RecipientStatus::Transferred,
            3 => RecipientStatus::Failed,
            4 => RecipientStatus::Expanded,
            5 => RecipientStatus::Forwarded,
            6 => RecipientStatus::Dropped,
            7 => RecipientStatus::Waiting,
            _ => return None,
        })
    }
}

/// A mail box entry as the router sees it: no body (read it with
/// `Store::message_data` where the bytes are needed), so what the router, its
/// channel and its queues hold stays small.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedMessage {
    pub id: MessageId,
    pub from: String,
    /// The body's size in bytes.
    pub size: u64,
    pub received_at: i64,
    pub kind: MessageKind,
    pub hop_count: u32,
    pub state: MessageState,
    pub message_id: Option<String>,
    pub subject: Option<String>,
    /// The servers it passed before this one.
    pub route: Vec<Hop>,
    pub priority: Priority,
    pub recipients: Vec<QueuedRecipient>,
}

/// One recipient of a mail box entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedRecipient {
    pub address: String,
    pub status: RecipientStatus,
    /// Failed attempts so far (each `RecipientUpdate::Retry` counts one).
    pub attempts: u32,
    /// When to try again (set by `Retry`).
    pub next_attempt: Option<i64>,
    /// The last error (`Retry`), the failure reason (`Final`) or the wait reason (`Waiting`).
    pub last_error: Option<String>,
    /// The destination queue name the router gave it.
    pub queue: Option<String>,
    /// The recipient it was derived from: the group that expanded to it, or
    /// the person whose `forward_to` named it. `None` for an original recipient.
    pub parent: Option<String>,
    /// How a Waiting recipient leaves (`RecipientUpdate::Queued::via`), so a
    /// restart rebuilds its queue from the row alone.
    pub via: Option<String>,
}

/// What the router records about one message in one step, atomically.
///
/// Settling is conditional, so it happens once: an outcome is applied only
/// if its row may make that move ([`RecipientStatus::may_become`]) at the
/// moment the transaction runs; a delivery, a routing event or the report
/// about a recipient whose outcome was not applied is not recorded either.
/// A second settlement of the same work (a message routed twice) therefore
/// changes nothing. `SettleOutcome::skipped` lists what was not applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settlement {
    pub message: MessageId,
    /// Recipients derived in this step, `(address, parent)`: group members
    /// and forward targets, written as rows (Pending, with their parent)
    /// before the outcomes apply. An address that already is a row of the
    /// message is not added again (each address once). A derived row is
    /// added only while its parent is open, or was itself added here.
    pub derived: Vec<(String, String)>,
    /// Outcomes keyed by recipient address (case-insensitive). An address
    /// that is no row of the message yet is added as an original recipient.
    pub outcomes: Vec<(String, RecipientUpdate)>,
    /// Into mail files, in the same transaction as the outcomes; each only
    /// if the outcome of its `recipient` was applied.
    pub deliveries: Vec<Delivery>,
    /// Reports (DFR), forwarded copies: accepted in the same transaction,
    /// unless an outcome of this settlement was skipped (then the work was
    /// done before, reports included).
    pub new_messages: Vec<Incoming>,
    /// Recorded unless the event's recipient is a row whose outcome here was skipped.
    pub events: Vec<RoutingEvent>,
    /// Held / Dead with its reason (FailureReason / DeadFailureReason);
    /// applied unless every outcome was skipped.
    pub state: Option<(MessageState, Option<String>)>,
}

/// The new situation of one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecipientUpdate {
    /// Done: delivered, transferred, failed, ...
    Final {
        status: RecipientStatus,
        reason: Option<String>,
    },
    /// Try again at `next_attempt` (row → Waiting); counts one attempt.
    /// `queue: None` keeps the queue it had.
    Retry {
        error: String,
        next_attempt: i64,
        queue: Option<String>,
    },
    /// Handed to the outbound queue `queue` (row → Waiting): committed before
    /// the queue is given the recipient, so a restart rebuilds the queue from
    /// the rows. `via` says how it leaves (relay host or MX).
    Queued { queue: String, via: String },
    /// A Waiting row moves to another outbound queue (the next hop failed
    /// and its raised cost makes another path cheaper): committed before the
    /// new queue is given it, as `Queued` is. Only a Waiting row moves.
    Moved {
        queue: String,
        via: String,
        reason: String,
    },
    /// Stays (or goes back to) Pending with a reason, no attempt counted:
    /// Held or Dead mail, a transfer not possible yet. `queue: None` keeps
    /// the queue it had.
    Pending {
        reason: String,
        queue: Option<String>,
    },
}

/// One copy of a message put into a mail file folder. Its body is the settled
/// message's, shared: the entry refers to the body the mail box stored, which
/// is neither read nor copied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    /// The recipient whose outcome this delivery belongs to: it is made only
    /// if that outcome is applied in the same transaction.
    pub recipient: String,
    pub mail_file: String,
    /// Created if missing; normally `"Inbox"`.
    pub folder: String,
    pub internal_date: i64,
    pub route_servers: Vec<String>,
    pub route_times: Vec<i64>,
    pub flags: Flags,
}

/// What `Store::settle` did with one `Settlement`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettleOutcome {
    pub message: MessageId,
    /// Every recipient final and not Held/Dead → the entry was deleted from the mail box.
    pub removed: bool,
    /// The message was no longer in the mail box (an administrator deleted it):
    /// nothing of the settlement was recorded. `removed` is true too.
    pub gone: bool,
    /// `(mail file, uid)` of each delivery, in order.
    pub delivered: Vec<(String, u32)>,
    /// The accepted reports / copies, for the router.
    pub new_messages: Vec<QueuedMessage>,
    /// Outcomes not applied because their row had moved on (already settled).
    pub skipped: Vec<String>,
}

/// A mail box entry as the console lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSummary {
    pub id: MessageId,
    pub from: String,
    pub recipients: Vec<String>,
    pub state: MessageState,
    pub reason: Option<String>,
    pub received_at: i64,
    pub size: u64,
    pub subject: Option<String>,
    pub message_id: Option<String>,
    pub kind: MessageKind,
    pub origin: String,
}

/// Mail box gauges for `show stat` / `show server`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailBoxCounts {
    /// Messages in state Pending.
    pub pending: u64,
    pub held: u64,
    pub dead: u64,
    /// Pending recipients of Pending messages.
    pub waiting_recipients: u64,
    /// Every message in the mail box (Mail.TotalPending includes Dead and Held).
    pub total: u64,
}

/// IMAP special-use attribute of a folder (RFC 6154).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SpecialUse {
    Sent,
    Drafts,
    Trash,
    Junk,
    Archive,
}

impl SpecialUse {
    pub(crate) fn code(self) -> i64 {
        match self {
            SpecialUse::Sent => 1,
            SpecialUse::Drafts => 2,
            SpecialUse::Trash => 3,
            SpecialUse::Junk => 4,
            SpecialUse::Archive => 5,
        }
    }

    pub(crate) fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            1 => SpecialUse::Sent,
            2 => SpecialUse::Drafts,
            3 => SpecialUse::Trash,
            4 => SpecialUse::Junk,
            5 => SpecialUse::Archive,
            _ => return None,
        })
    }

    /// The IMAP attribute, e.g. `\Sent`.
    pub fn attribute(self) -> &'static str {
        match self {
            SpecialUse::Sent => "\\Sent",
            SpecialUse::Drafts => "\\Drafts",
            SpecialUse::Trash => "\\Trash",
            SpecialUse::Junk => "\\Junk",
            SpecialUse::Archive => "\\Archive",
        }
    }
}

/// A folder of a mail file with its IMAP counters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderInfo {
    pub name: String,
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub exists: u32,
    pub unseen: u32,
    pub recent: u32,
    pub subscribed: bool,
    pub special_use: Option<SpecialUse>,
}

/// One destination queue as the mail box records it (`tell router show queues`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueSummary {
    pub queue: String,
    /// Messages with recipients waiting for this queue.
    pub messages: u64,
    /// The most failed attempts of any of them.
    pub attempts: u32,
    pub last_error: Option<String>,
    /// The soonest retry, unix milliseconds.
    pub next_attempt: Option<i64>,
}

/// What a mail client's message list needs of a message: no header field, no body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryMeta {
    pub uid: u32,
    pub size: u64,
    pub internal_date: i64,
    pub flags: Flags,
}

/// A message in a mail file folder, without its body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailEntry {
    pub uid: u32,
    pub size: u64,
    pub internal_date: i64,
    pub flags: Flags,
    /// Message-ID header without `<>`.
    pub message_id: Option<String>,
    /// The From header, decoded: `Name <address>`.
    pub from: String,
    pub subject: String,
    /// The Date header.
    pub date: Option<i64>,
    pub route_servers: Vec<String>,
    pub route_times: Vec<i64>,
}

/// IMAP system flags and keywords of a mail file message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flags {
    pub seen: bool,
    pub answered: bool,
    pub flagged: bool,
    pub deleted: bool,
    pub draft: bool,
    pub recent: bool,
    /// Keywords (no spaces), each once (case-insensitive).
    pub keywords: Vec<String>,
}

const SEEN: i64 = 1;
const ANSWERED: i64 = 2;
const FLAGGED: i64 = 4;
const DELETED: i64 = 8;
const DRAFT: i64 = 16;
const RECENT: i64 = 32;

/// The bit of `\Seen` in the stored flags column.
pub(crate) const SEEN_BIT: i64 = SEEN;
/// The bit of `\Deleted` in the stored flags column.
pub(crate) const DELETED_BIT: i64 = DELETED;
/// The bit of `\Recent` in the stored flags column.
pub(crate) const RECENT_BIT: i64 = RECENT;

impl Flags {
    /// Parses IMAP flag names (`\Seen`, `\Deleted`, case-insensitive); any other
    /// name is a keyword.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Flags {
        let mut flags = Flags::default();
        for name in names {
            match name.to_ascii_lowercase().as_str() {
                "\\seen" => flags.seen = true,
                "\\answered" => flags.answered = true,
                "\\flagged" => flags.flagged = true,
                "\\deleted" => flags.deleted = true,
                "\\draft" => flags.draft = true,
                "\\recent" => flags.recent = true,
                _ => flags.add_keyword(name),
            }
        }
        flags
    }

    /// IMAP names: system flags first (`\Seen`, ...), then keywords.
    pub fn names(&self) -> Vec<String> {
        let system = [
            (self.seen, "\\Seen"),
            (self.answered, "\\Answered"),
            (self.flagged, "\\Flagged"),
            (self.deleted, "\\Deleted"),
            (self.draft, "\\Draft"),
            (self.recent, "\\Recent"),
        ];
        system
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, name)| (*name).to_owned())
            .chain(self.keywords.iter().cloned())
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.bits() == 0 && self.keywords.is_empty()
    }

    pub fn has_keyword(&self, keyword: &str) -> bool {
        self.keywords
            .iter()
            .any(|k| k.eq_ignore_ascii_case(keyword))
    }

    /// Adds a keyword unless it is already there (case-insensitive).
    pub fn add_keyword(&mut self, keyword: &str) {
        if !self.has_keyword(keyword) {
            self.keywords.push(keyword.to_owned());
        }
    }

    /// IMAP STORE: `Set` replaces, `Add` adds, `Remove` removes `other`'s flags.
    pub fn apply(&mut self, op: FlagOp, other: &Flags) {
        match op {
            FlagOp::Set => *self = other.clone(),
            FlagOp::Add => {
                *self = Flags::from_bits(
                    self.bits() | other.bits(),
                    std::mem::take(&mut self.keywords),
                );
                for keyword in &other.keywords {
                    self.add_keyword(keyword);
                }
            }
            FlagOp::Remove => {
                let keywords = std::mem::take(&mut self.keywords)
                    .into_iter()
                    .filter(|k| !other.has_keyword(k))
                    .collect();
                *self = Flags::from_bits(self.bits() & !other.bits(), keywords);
            }
        }
    }

    pub(crate) fn bits(&self) -> i64 {
        [
            (self.seen, SEEN),
            (self.answered, ANSWERED),
            (self.flagged, FLAGGED),
            (self.deleted, DELETED),
            (self.draft, DRAFT),
            (self.recent, RECENT),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .fold(0, |acc, (_, bit)| acc | bit)
    }

    pub(crate) fn from_bits(bits: i64, keywords: Vec<String>) -> Flags {
        Flags {
            seen: bits & SEEN != 0,
            answered: bits & ANSWERED != 0,
            flagged: bits & FLAGGED != 0,
            deleted: bits & DELETED != 0,
            draft: bits & DRAFT != 0,
            recent: bits & RECENT != 0,
            keywords,
        }
    }
}

/// Space-separated IMAP names, e.g. `\Seen \Flagged $Label1`.
impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(" "))
    }
}

/// How `Store::set_flags` combines the given flags with a message's flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FlagOp {
    Set,
    Add,
    Remove,
}

/// One line of the routing event log (SPEC §8).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingEvent {
    pub time: i64,
    pub message_id: String,
    pub sender: String,
    pub recipient: String,
    pub server: String,
    /// delivered | transferred | failed | held | dead | forwarded | expanded | retry
    /// | rule (a server mail rule matched) | dropped | moved (what the rule did)
    pub outcome: String,
    pub detail: String,
    pub hop: u32,
    pub size: u64,
}

/// Filters of `Store::events`; every filter given must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventQuery {
    /// Exact message id.
    pub message_id: Option<String>,
    /// Part of the sender, case-insensitive.
    pub sender: Option<String>,
    /// Part of the recipient, case-insensitive.
    pub recipient: Option<String>,
    /// Events at or after this time.
    pub since: Option<i64>,
    /// Only the latest `limit` events (still returned oldest first).
    pub limit: Option<u32>,
}

/// A committed change to a mail file, for IMAP IDLE and open sessions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailFileChange {
    pub mail_file: String,
    pub folder: String,
    pub kind: ChangeKind,
}

/// What changed in a folder. `Folders`: the folder was created, deleted,
/// renamed (one change for the old and one for the new name) or (un)subscribed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Appended { uids: Vec<u32> },
    Flags { uids: Vec<u32> },
    Expunged { uids: Vec<u32> },
    Folders,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn flags_strategy() -> impl Strategy<Value = Flags> {
        (0i64..64, proptest::collection::vec("[a-zA-Z$]{1,6}", 0..4)).prop_map(|(bits, kws)| {
            let mut flags = Flags::from_bits(bits, Vec::new());
            for kw in &kws {
                flags.add_keyword(kw);
            }
            flags
        })
    }

    #[test]
    fn names_round_trip() {
        let flags = Flags::from_names(["\\SEEN", "\\Deleted", "$Label1", "$label1"]);
        assert!(flags.seen && flags.deleted && !flags.flagged);
        assert_eq!(flags.keywords, vec!["$Label1".to_owned()]);
        assert_eq!(flags.to_string(), "\\Seen \\Deleted $Label1");
        assert_eq!(
            Flags::from_names(flags.names().iter().map(String::as_str)),
            flags
        );
    }

    proptest! {
        #[test]
        fn bits_round_trip(flags in flags_strategy()) {
            prop_assert_eq!(Flags::from_bits(flags.bits(), flags.keywords.clone()), flags);
        }

        #[test]
        fn add_then_remove(base in flags_strategy(), other in flags_strategy()) {
            let mut added = base.clone();
            added.apply(FlagOp::Add, &other);
            prop_assert_eq!(added.bits(), base.bits() | other.bits());
            for kw in base.keywords.iter().chain(&other.keywords) {
                prop_assert!(added.has_keyword(kw));
            }
            added.apply(FlagOp::Remove, &other);
            prop_assert_eq!(added.bits() & other.bits(), 0);
            prop_assert!(other.keywords.iter().all(|kw| !added.has_keyword(kw)));
            let mut set = base;
            set.apply(FlagOp::Set, &other);
            prop_assert_eq!(set, other);
        }
    }
}
