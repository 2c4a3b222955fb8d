//! Table versions only grow on every host, and one version is one table everywhere.
//!
//! - `versions/grow`: within one incarnation of a host (its process from start to crash or
//!   leave), the version of the table it holds never goes down. A restarted host starts with
//!   no table, so the property is per incarnation.
//! - `versions/same-table`: any two tables with the same version, on any hosts at any times,
//!   have the same content: a leader never sends two different tables under one version.
//!
//! Both are checked on every table state the host's watcher recorded; changes coalesced
//! within one scheduler pass are not seen, so a dip that is undone in the same pass would be
//! missed (the host never routed by it).

use std::collections::BTreeMap;

use crate::check::{capped, Violation};
use crate::ledger::{Event, Incarnation, Record};

pub fn check(records: &[Record]) -> Vec<Violation> {
    let mut held: BTreeMap<&Incarnation, u64> = BTreeMap::new();
    let mut content: BTreeMap<u64, (u64, &Incarnation)> = BTreeMap::new();
    let mut grow = Vec::new();
    let mut same = Vec::new();
    for record in records {
        let Event::TableState {
            incarnation,
            table: Some(table),
            ..
        } = &record.event
        else {
            continue;
        };
        let version = table.version();
        if let Some(&before) = held.get(incarnation) {
            if version < before {
                grow.push(Violation {
                    property: "versions/grow",
                    at: Some(record.at),
                    message: format!("{incarnation} went from table v{before} to v{version}"),
                });
            }
        }
        held.insert(incarnation, version);
        match content.get(&version) {
            Some(&(hash, first)) if hash != table.content_hash => same.push(Violation {
                property: "versions/same-table",
                at: Some(record.at),
                message: format!(
                    "table v{version} on {incarnation} differs from table v{version} first seen on {first}"
                ),
            }),
            Some(_) => {}
            None => {
                content.insert(version, (table.content_hash, incarnation));
            }
        }
    }
    let mut found = capped(grow);
    found.extend(capped(same));
    found
}
