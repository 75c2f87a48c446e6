//! Fuzzes the agent's JSON-lines source (`beffroi_agent::source::jsonl`): the line splitter
//! with its length limit, Beffroi readings, SenML (RFC 8428) records and packs with base name,
//! time and unit.
//!
//! Input: one byte giving the size of the reads the source sees (so that lines straddle
//! reads), then the stream. Properties: no panic, no hang (the source ends at the end of the
//! input); every reading it yields can be signed: it makes a batch whose encoding decodes to
//! the same batch.

#![no_main]

use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};

use beffroi_agent::source::jsonl::JsonlSource;
use beffroi_agent::source::{ReadingSink, Source};
use beffroi_agent::telemetry::Telemetry;
use beffroi_protocol::{Batch, GatewayId, Reading, TenantId};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::sync::CancellationToken;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime builds")
});

/// A reader handing out its bytes at most `step` at a time.
struct Chunked {
    data: Vec<u8>,
    at: usize,
    step: usize,
}

impl AsyncRead for Chunked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = self
            .step
            .min(buf.remaining())
            .min(self.data.len() - self.at);
        let at = self.at;
        buf.put_slice(&self.data[at..at + n]);
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, stream)) = data.split_first() else {
        return;
    };
    let reader = Chunked {
        data: stream.to_vec(),
        at: 0,
        // 0 reads everything at once (up to the source's buffer).
        step: if step == 0 {
            usize::MAX
        } else {
            usize::from(step)
        },
    };
    let source = Box::new(JsonlSource::from_reader("fuzz", Box::new(reader), false));
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let sink = ReadingSink::new(tx, Arc::new(Telemetry::default()), "fuzz");
    let readings = RUNTIME.block_on(async {
        let run = source.run(sink, CancellationToken::new());
        let collect = async {
            let mut readings = Vec::new();
            while let Some(reading) = rx.recv().await {
                readings.push(reading);
            }
            readings
        };
        let (ended, readings) = tokio::join!(run, collect);
        ended.expect("reading from memory cannot fail");
        readings
    });
    for reading in readings {
        check_signable(reading);
    }
});

fn check_signable(reading: Reading) {
    let tenant = TenantId::new("lyon").expect("a valid tenant id");
    let gateway = GatewayId::new("gw-1").expect("a valid gateway id");
    let batch = Batch::new(tenant, gateway, 1, vec![reading])
        .expect("a reading from a source makes a batch");
    let decoded = Batch::decode(&batch.encode()).expect("an encoded batch decodes");
    assert_eq!(
        decoded, batch,
        "a batch of a source's reading does not round-trip"
    );
}
