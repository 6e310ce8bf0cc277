//! `quire lending …`: circulation reports for librarians' scripts, read from the `lending` read
//! model (safe while a server runs; it opens the read models read-only).

use anyhow::Context;
use clap::Subcommand;
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use quire_actors::clock::{Clock, SystemClock};
use quire_projections::{LoanQuery, LoanRow, LoanStatusFilter, PageRequest, ReadModels};
use serde_json::json;

use crate::config::Settings;

#[derive(Subcommand)]
pub(crate) enum LendingCommand {
    /// Open loans past their due date, the most overdue first.
    Overdue {
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(settings: &Settings, command: LendingCommand) -> anyhow::Result<()> {
    let read = super::open_read_models(settings, true).await?;
    match command {
        LendingCommand::Overdue { json } => overdue(&read, json).await,
    }
}

async fn overdue(read: &ReadModels, json: bool) -> anyhow::Result<()> {
    let now = SystemClock.now().as_micros();
    let mut loans: Vec<LoanRow> = Vec::new();
    let mut cursor = None;
    loop {
        let page = read
            .loans(&LoanQuery {
                user_id: None,
                book_id: None,
                status: Some(LoanStatusFilter::Overdue),
                now,
                page: PageRequest { cursor, limit: 100 },
            })
            .await
            .context("reading overdue loans")?;
        loans.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    loans.sort_by_key(|loan| (loan.due_at, loan.loan_id));
    let days_overdue = |loan: &LoanRow| (now - loan.due_at).max(0) / 86_400_000_000;
    if json {
        let list: Vec<_> = loans
            .iter()
            .map(|loan| {
                json!({
                    "loan_id": loan.loan_id,
                    "book_id": loan.book_id,
                    "user_id": loan.user_id,
                    "copy_id": loan.copy_id,
                    "barcode": loan.barcode,
                    "checkout_date": loan.checked_out_at.map(crate::cli::events::format_time),
                    "due_date": crate::cli::events::format_time(loan.due_at),
                    "days_overdue": days_overdue(loan),
                    "renewals_count": loan.renewals,
                })
            })
            .collect();
        println!("{}", json!({ "overdue": list }));
        return Ok(());
    }
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(["loan", "book", "member", "barcode", "due", "days overdue"]);
    for loan in &loans {
        table.add_row([
            loan.loan_id.to_string(),
            loan.book_id.to_string(),
            loan.user_id.to_string(),
            loan.barcode.clone().unwrap_or_else(|| "-".into()),
            crate::cli::events::format_time(loan.due_at),
            days_overdue(loan).to_string(),
        ]);
    }
    println!("{} overdue loan(s)", loans.len());
    if !loans.is_empty() {
        println!("{table}");
    }
    Ok(())
}
