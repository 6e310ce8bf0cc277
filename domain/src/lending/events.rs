//! Lending events and their stored schema, one private payload struct per type and version.

use serde::{Deserialize, Serialize};

use crate::aggregate::{DomainEvent, EventDecodeError};
use crate::ids::{CopyId, HoldId, LoanId, UserId};
use crate::serde_util::{decode_payload, encode_payload};
use crate::values::{Barcode, Timestamp};

/// How a loan ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoanEnd {
    /// The copy came back.
    Returned,
    /// The copy was declared lost while lent.
    Lost,
}

impl LoanEnd {
    /// The name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Returned => "returned",
            Self::Lost => "lost",
        }
    }
}

/// Facts recorded in a book's lending stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LendingEvent {
    /// A copy joined the book's copies; `barcode` is `None` for an implicit copy.
    CopyAdded {
        copy_id: CopyId,
        barcode: Option<Barcode>,
    },
    /// A copy was lent to a member until `due_at`.
    LoanOpened {
        loan_id: LoanId,
        copy_id: CopyId,
        member: UserId,
        at: Timestamp,
        due_at: Timestamp,
    },
    /// A member's hold was satisfied by the loan of the copy held for them.
    HoldFulfilled {
        hold_id: HoldId,
        member: UserId,
        loan_id: LoanId,
    },
    /// A loan ended, by return or loss.
    LoanEnded {
        loan_id: LoanId,
        copy_id: CopyId,
        member: UserId,
        at: Timestamp,
        end: LoanEnd,
    },
    /// A loan was renewed to a new due date.
    LoanRenewed {
        loan_id: LoanId,
        member: UserId,
        at: Timestamp,
        due_at: Timestamp,
        renewals: u32,
    },
    /// A loan passed its due date without being returned.
    LoanOverdue {
        loan_id: LoanId,
        member: UserId,
        due_at: Timestamp,
    },
    /// A member joined the hold queue (queue order is the order of these events).
    HoldPlaced {
        hold_id: HoldId,
        member: UserId,
        at: Timestamp,
    },
    /// A copy was put on the hold shelf for a member until a pickup deadline.
    HoldReady {
        hold_id: HoldId,
        member: UserId,
        copy_id: CopyId,
        pickup_until: Timestamp,
    },
    /// A hold was cancelled by its member or staff.
    HoldCancelled {
        hold_id: HoldId,
        member: UserId,
        at: Timestamp,
    },
    /// A hold's pickup deadline passed.
    HoldExpired {
        hold_id: HoldId,
        member: UserId,
        at: Timestamp,
    },
    /// A copy was declared lost.
    CopyLost { copy_id: CopyId, at: Timestamp },
    /// A copy was taken out of circulation.
    CopyWithdrawn { copy_id: CopyId, at: Timestamp },
}

const COPY_ADDED: &str = "CopyAdded";
const LOAN_OPENED: &str = "LoanOpened";
const HOLD_FULFILLED: &str = "HoldFulfilled";
const LOAN_ENDED: &str = "LoanEnded";
const LOAN_RENEWED: &str = "LoanRenewed";
const LOAN_OVERDUE: &str = "LoanOverdue";
const HOLD_PLACED: &str = "HoldPlaced";
const HOLD_READY: &str = "HoldReady";
const HOLD_CANCELLED: &str = "HoldCancelled";
const HOLD_EXPIRED: &str = "HoldExpired";
const COPY_LOST: &str = "CopyLost";
const COPY_WITHDRAWN: &str = "CopyWithdrawn";

/// `CopyAdded` version 1.
#[derive(Serialize, Deserialize)]
struct CopyAddedV1 {
    copy_id: CopyId,
    #[serde(default)]
    barcode: Option<Barcode>,
}

/// `LoanOpened` version 1.
#[derive(Serialize, Deserialize)]
struct LoanOpenedV1 {
    loan_id: LoanId,
    copy_id: CopyId,
    member: UserId,
    at: Timestamp,
    due_at: Timestamp,
}

/// `HoldFulfilled` version 1.
#[derive(Serialize, Deserialize)]
struct HoldFulfilledV1 {
    hold_id: HoldId,
    member: UserId,
    loan_id: LoanId,
}

/// The stored names of [`LoanEnd`]; a separate enum so renaming the domain's cannot change data.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum LoanEndV1 {
    Returned,
    Lost,
}

/// `LoanEnded` version 1.
#[derive(Serialize, Deserialize)]
struct LoanEndedV1 {
    loan_id: LoanId,
    copy_id: CopyId,
    member: UserId,
    at: Timestamp,
    end: LoanEndV1,
}

/// `LoanRenewed` version 1.
#[derive(Serialize, Deserialize)]
struct LoanRenewedV1 {
    loan_id: LoanId,
    member: UserId,
    at: Timestamp,
    due_at: Timestamp,
    renewals: u32,
}

/// `LoanOverdue` version 1.
#[derive(Serialize, Deserialize)]
struct LoanOverdueV1 {
    loan_id: LoanId,
    member: UserId,
    due_at: Timestamp,
}

/// `HoldPlaced`, `HoldCancelled` and `HoldExpired` version 1.
#[derive(Serialize, Deserialize)]
struct HoldChangeV1 {
    hold_id: HoldId,
    member: UserId,
    at: Timestamp,
}

/// `HoldReady` version 1.
#[derive(Serialize, Deserialize)]
struct HoldReadyV1 {
    hold_id: HoldId,
    member: UserId,
    copy_id: CopyId,
    pickup_until: Timestamp,
}

/// `CopyLost` and `CopyWithdrawn` version 1.
#[derive(Serialize, Deserialize)]
struct CopyChangeV1 {
    copy_id: CopyId,
    at: Timestamp,
}

impl DomainEvent for LendingEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::CopyAdded { .. } => COPY_ADDED,
            Self::LoanOpened { .. } => LOAN_OPENED,
            Self::HoldFulfilled { .. } => HOLD_FULFILLED,
            Self::LoanEnded { .. } => LOAN_ENDED,
            Self::LoanRenewed { .. } => LOAN_RENEWED,
            Self::LoanOverdue { .. } => LOAN_OVERDUE,
            Self::HoldPlaced { .. } => HOLD_PLACED,
            Self::HoldReady { .. } => HOLD_READY,
            Self::HoldCancelled { .. } => HOLD_CANCELLED,
            Self::HoldExpired { .. } => HOLD_EXPIRED,
            Self::CopyLost { .. } => COPY_LOST,
            Self::CopyWithdrawn { .. } => COPY_WITHDRAWN,
        }
    }

    fn schema_version(&self) -> u32 {
        1
    }

    fn to_payload(&self) -> serde_json::Value {
        match self.clone() {
            Self::CopyAdded { copy_id, barcode } => {
                encode_payload(&CopyAddedV1 { copy_id, barcode })
            }
            Self::LoanOpened {
                loan_id,
                copy_id,
                member,
                at,
                due_at,
            } => encode_payload(&LoanOpenedV1 {
                loan_id,
                copy_id,
                member,
                at,
                due_at,
            }),
            Self::HoldFulfilled {
                hold_id,
                member,
                loan_id,
            } => encode_payload(&HoldFulfilledV1 {
                hold_id,
                member,
                loan_id,
            }),
            Self::LoanEnded {
                loan_id,
                copy_id,
                member,
                at,
                end,
            } => encode_payload(&LoanEndedV1 {
                loan_id,
                copy_id,
                member,
                at,
                end: match end {
                    LoanEnd::Returned => LoanEndV1::Returned,
                    LoanEnd::Lost => LoanEndV1::Lost,
                },
            }),
            Self::LoanRenewed {
                loan_id,
                member,
                at,
                due_at,
                renewals,
            } => encode_payload(&LoanRenewedV1 {
                loan_id,
                member,
                at,
                due_at,
                renewals,
            }),
            Self::LoanOverdue {
                loan_id,
                member,
                due_at,
            } => encode_payload(&LoanOverdueV1 {
                loan_id,
                member,
                due_at,
            }),
            Self::HoldPlaced {
                hold_id,
                member,
                at,
            }
            | Self::HoldCancelled {
                hold_id,
                member,
                at,
            }
            | Self::HoldExpired {
                hold_id,
                member,
                at,
            } => encode_payload(&HoldChangeV1 {
                hold_id,
                member,
                at,
            }),
            Self::HoldReady {
                hold_id,
                member,
                copy_id,
                pickup_until,
            } => encode_payload(&HoldReadyV1 {
                hold_id,
                member,
                copy_id,
                pickup_until,
            }),
            Self::CopyLost { copy_id, at } | Self::CopyWithdrawn { copy_id, at } => {
                encode_payload(&CopyChangeV1 { copy_id, at })
            }
        }
    }

    fn from_stored(
        event_type: &str,
        schema_version: u32,
        payload: &serde_json::Value,
    ) -> Result<Self, EventDecodeError> {
        let (t, v, p) = (event_type, schema_version, payload);
        match (event_type, schema_version) {
            (COPY_ADDED, 1) => {
                let e: CopyAddedV1 = decode_payload(t, v, p)?;
                Ok(Self::CopyAdded {
                    copy_id: e.copy_id,
                    barcode: e.barcode,
                })
            }
            (LOAN_OPENED, 1) => {
                let e: LoanOpenedV1 = decode_payload(t, v, p)?;
                Ok(Self::LoanOpened {
                    loan_id: e.loan_id,
                    copy_id: e.copy_id,
                    member: e.member,
                    at: e.at,
                    due_at: e.due_at,
                })
            }
            (HOLD_FULFILLED, 1) => {
                let e: HoldFulfilledV1 = decode_payload(t, v, p)?;
                Ok(Self::HoldFulfilled {
                    hold_id: e.hold_id,
                    member: e.member,
                    loan_id: e.loan_id,
                })
            }
            (LOAN_ENDED, 1) => {
                let e: LoanEndedV1 = decode_payload(t, v, p)?;
                Ok(Self::LoanEnded {
                    loan_id: e.loan_id,
                    copy_id: e.copy_id,
                    member: e.member,
                    at: e.at,
                    end: match e.end {
                        LoanEndV1::Returned => LoanEnd::Returned,
                        LoanEndV1::Lost => LoanEnd::Lost,
                    },
                })
            }
            (LOAN_RENEWED, 1) => {
                let e: LoanRenewedV1 = decode_payload(t, v, p)?;
                Ok(Self::LoanRenewed {
                    loan_id: e.loan_id,
                    member: e.member,
                    at: e.at,
                    due_at: e.due_at,
                    renewals: e.renewals,
                })
            }
            (LOAN_OVERDUE, 1) => {
                let e: LoanOverdueV1 = decode_payload(t, v, p)?;
                Ok(Self::LoanOverdue {
                    loan_id: e.loan_id,
                    member: e.member,
                    due_at: e.due_at,
                })
            }
            (HOLD_PLACED | HOLD_CANCELLED | HOLD_EXPIRED, 1) => {
                let HoldChangeV1 {
                    hold_id,
                    member,
                    at,
                } = decode_payload(t, v, p)?;
                Ok(match event_type {
                    HOLD_PLACED => Self::HoldPlaced {
                        hold_id,
                        member,
                        at,
                    },
                    HOLD_CANCELLED => Self::HoldCancelled {
                        hold_id,
                        member,
                        at,
                    },
                    _ => Self::HoldExpired {
                        hold_id,
                        member,
                        at,
                    },
                })
            }
            (HOLD_READY, 1) => {
                let e: HoldReadyV1 = decode_payload(t, v, p)?;
                Ok(Self::HoldReady {
                    hold_id: e.hold_id,
                    member: e.member,
                    copy_id: e.copy_id,
                    pickup_until: e.pickup_until,
                })
            }
            (COPY_LOST | COPY_WITHDRAWN, 1) => {
                let CopyChangeV1 { copy_id, at } = decode_payload(t, v, p)?;
                Ok(if event_type == COPY_LOST {
                    Self::CopyLost { copy_id, at }
                } else {
                    Self::CopyWithdrawn { copy_id, at }
                })
            }
            (
                COPY_ADDED | LOAN_OPENED | HOLD_FULFILLED | LOAN_ENDED | LOAN_RENEWED
                | LOAN_OVERDUE | HOLD_PLACED | HOLD_READY | HOLD_CANCELLED | HOLD_EXPIRED
                | COPY_LOST | COPY_WITHDRAWN,
                version,
            ) => Err(EventDecodeError::unsupported_version(event_type, version)),
            _ => Err(EventDecodeError::unknown_type(event_type)),
        }
    }
}
