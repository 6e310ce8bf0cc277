//! A member's side of circulation: the loan and hold slots they hold, and their overdue loans.
//!
//! A borrow takes a slot here first (checking the member's limit and blocks under the member's
//! expected version), then asks the book's `Lending` aggregate for a copy, and gives the slot back
//! if that refuses; a return ends the loan there and gives the slot back here. Every step has a
//! command id derived from the loan or hold id, so a step redone after a crash records nothing twice.

use std::collections::BTreeMap;

use crate::ids::{BookId, HoldId, LoanId};
use crate::lending::{HoldRequest, LoanRequest};

/// The member's loan and hold slots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberLending {
    /// Loans taken or open, with their book and whether they went overdue.
    pub(crate) loans: BTreeMap<LoanId, (BookId, bool)>,
    /// Holds taken or active, with their book.
    pub(crate) holds: BTreeMap<HoldId, BookId>,
}

/// Why the member may not take a slot now.
pub(crate) enum SlotRefusal {
    AlreadyBorrowed,
    HoldExists,
    Blocked { overdue: u32 },
    LoanLimit { max: u32 },
    HoldLimit { max: u32 },
}

impl MemberLending {
    /// Loan slots held (open loans and borrows in progress).
    pub fn loans(&self) -> impl Iterator<Item = (LoanId, BookId)> + '_ {
        self.loans.iter().map(|(id, (book, _))| (*id, *book))
    }

    /// Hold slots held.
    pub fn holds(&self) -> impl Iterator<Item = (HoldId, BookId)> + '_ {
        self.holds.iter().map(|(id, book)| (*id, *book))
    }

    /// How many of the member's loans are overdue.
    pub fn overdue(&self) -> u32 {
        let count = self.loans.values().filter(|(_, overdue)| *overdue).count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    fn blocked(&self, block_after_overdue: u32) -> Option<SlotRefusal> {
        let overdue = self.overdue();
        (block_after_overdue > 0 && overdue >= block_after_overdue)
            .then_some(SlotRefusal::Blocked { overdue })
    }

    pub(crate) fn check_loan(
        &self,
        request: &LoanRequest,
        max_loans: u32,
        block_after_overdue: u32,
    ) -> Result<(), SlotRefusal> {
        if self
            .loans
            .values()
            .any(|(book, _)| *book == request.book_id)
        {
            return Err(SlotRefusal::AlreadyBorrowed);
        }
        if let Some(blocked) = self.blocked(block_after_overdue) {
            return Err(blocked);
        }
        if self.loans.len() >= max_loans as usize {
            return Err(SlotRefusal::LoanLimit { max: max_loans });
        }
        Ok(())
    }

    pub(crate) fn check_hold(
        &self,
        request: &HoldRequest,
        max_holds: u32,
        block_after_overdue: u32,
    ) -> Result<(), SlotRefusal> {
        if self.holds.values().any(|book| *book == request.book_id) {
            return Err(SlotRefusal::HoldExists);
        }
        if let Some(blocked) = self.blocked(block_after_overdue) {
            return Err(blocked);
        }
        if self.holds.len() >= max_holds as usize {
            return Err(SlotRefusal::HoldLimit { max: max_holds });
        }
        Ok(())
    }
}
