//! Fuzzes the CSV import of `beffroi import`: the RFC 4180 reader (`beffroi_formats::csv`) and
//! the rebuilding of committed batches from `batches.csv` and `readings.csv`
//! (`beffroi::export::readings::BatchReader`).
//!
//! Input: the text of `batches.csv`, one NUL byte, the text of `readings.csv` (without a NUL
//! the whole input is both files). Properties: no panic; the reader gives back what the
//! writer writes of the records it read; batches that import are exported by
//! `ReadingsWriter` to files that import to the same batches, with a SenML pack that is JSON
//! with one record per reading.

#![no_main]

use beffroi::export::readings::{BatchReader, ReadingsWriter};
use beffroi_formats::csv::{write_record, CsvReader};
use beffroi_protocol::TenantId;
use beffroi_store::{CommitBatch, StoredBatch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (batches, readings) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (&data[..nul], &data[nul + 1..]),
        None => (data, data),
    };
    check_csv_round_trip(batches);
    check_csv_round_trip(readings);
    let imported = import(batches, readings);
    if imported.is_empty() {
        return;
    }
    let mut writer = ReadingsWriter::new(Vec::new(), Vec::new(), Vec::new())
        .expect("writing to memory cannot fail");
    for batch in &imported {
        writer
            .batch(&stored(batch))
            .expect("writing to memory cannot fail");
    }
    let (batches, readings, senml, _, reading_rows) =
        writer.finish().expect("writing to memory cannot fail");
    assert_eq!(
        import(&batches, &readings),
        imported,
        "export then import changed batches"
    );
    let pack: serde_json::Value = serde_json::from_slice(&senml).expect("the SenML pack is JSON");
    let records = pack.as_array().expect("the SenML pack is an array").len();
    assert_eq!(records as u64, reading_rows, "one SenML record per reading");
});

/// The batches that import before the first error (none without both headers).
fn import(batches: &[u8], readings: &[u8]) -> Vec<CommitBatch> {
    let tenant = TenantId::new("lyon").expect("a valid tenant id");
    let Ok(mut reader) = BatchReader::new(tenant, batches, readings) else {
        return Vec::new();
    };
    let mut imported = Vec::new();
    while let Ok(Some(batch)) = reader.next_batch() {
        imported.push(batch);
    }
    imported
}

fn stored(batch: &CommitBatch) -> StoredBatch {
    StoredBatch {
        tenant: batch.tenant.clone(),
        gateway: batch.gateway.clone(),
        seq: batch.seq,
        key_id: batch.key_id.clone(),
        signature: batch.signature,
        received_at: batch.received_at,
        readings: batch.readings.clone(),
    }
}

/// The records read before the first error, written again, read back the same.
fn check_csv_round_trip(text: &[u8]) {
    let records = read_records(text);
    let mut written = Vec::new();
    for record in &records {
        write_record(&mut written, record).expect("writing to memory cannot fail");
    }
    assert_eq!(
        read_records(&written),
        records,
        "written records read back differently"
    );
}

fn read_records(text: &[u8]) -> Vec<Vec<String>> {
    let mut reader = CsvReader::new(text);
    let mut records = Vec::new();
    let mut fields = Vec::new();
    while let Ok(true) = reader.next_record(&mut fields) {
        records.push(fields.clone());
    }
    records
}
