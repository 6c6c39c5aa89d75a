//! Deadlines: every request the server holds is answered `timeout`
//! (outcome unknown) once it is past its deadline.
use tokio::time::Instant;

use super::{fail, Core};
use crate::protocol::{Detail, ErrorCode};

impl Core {
    /// Answers `timeout` (outcome unknown) to requests past their deadline.
    pub(super) fn expire(&mut self, now: Instant) {
        let late: Vec<u64> = self
            .writes
            .iter()
            .filter(|(_, w)| w.deadline <= now)
            .map(|(i, _)| *i)
            .collect();
        for i in late {
            if let Some(w) = self.writes.remove(&i) {
                w.responder
                    .answer(fail(w.id, ErrorCode::Timeout, false, Detail::None));
            }
        }
        let late: Vec<u64> = self
            .replicating
            .iter()
            .filter(|(_, (w, _))| w.deadline <= now)
            .map(|(i, _)| *i)
            .collect();
        for i in late {
            if let Some((w, _)) = self.replicating.remove(&i) {
                w.responder
                    .answer(fail(w.id, ErrorCode::Timeout, false, Detail::None));
            }
        }
        let late: Vec<u64> = self
            .reads_unconfirmed
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(c, _)| *c)
            .collect();
        for ctx in late {
            if let Some(r) = self.reads_unconfirmed.remove(&ctx) {
                r.responder
                    .answer(fail(r.id, ErrorCode::Timeout, false, Detail::None));
            }
        }
        let (late, waiting): (Vec<_>, Vec<_>) = self
            .reads_confirmed
            .drain(..)
            .partition(|(_, r)| r.deadline <= now);
        self.reads_confirmed = waiting;
        for (_, r) in late {
            r.responder
                .answer(fail(r.id, ErrorCode::Timeout, false, Detail::None));
        }
    }
}
