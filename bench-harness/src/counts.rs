//! Message accounting of a produce/consume run: how many were sent, acknowledged and
//! received, and the shortfall when some acknowledged records never arrived.

use serde_json::{json, Value};

/// Counts of one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub sent: u64,
    pub acked: u64,
    pub received: u64,
}

impl Counts {
    /// Sent records that were never acknowledged.
    pub fn unacked(&self) -> u64 {
        self.sent.saturating_sub(self.acked)
    }

    /// Acknowledged records that were never received.
    pub fn lost(&self) -> u64 {
        self.acked.saturating_sub(self.received)
    }

    /// True when every sent record was acknowledged and received.
    pub fn complete(&self) -> bool {
        self.unacked() == 0 && self.lost() == 0
    }

    /// A warning for the user when the counts do not match; `None` when they do.
    pub fn shortfall(&self) -> Option<String> {
        let mut parts = Vec::new();
        if self.unacked() > 0 {
            parts.push(format!(
                "{} sent records were not acknowledged",
                self.unacked()
            ));
        }
        if self.lost() > 0 {
            parts.push(format!(
                "{} acknowledged records were not received",
                self.lost()
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// JSON form.
    pub fn to_json(&self) -> Value {
        json!({
            "sent": self.sent,
            "acked": self.acked,
            "received": self.received,
            "unacked": self.unacked(),
            "lost": self.lost(),
        })
    }
}
