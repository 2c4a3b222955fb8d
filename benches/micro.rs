//! Criterion micro-benchmarks of the host's hot paths that the end-to-end benches fold into
//! larger figures: parsing Dapr schedule formats, one call through an activation's mailbox to
//! an embedded actor, checking a state transaction, and a sled claim.
//!
//! Run with `cargo bench --bench micro`; results are recorded in benches/README.md. (The ring
//! lookup and table rebuild have their own: `cargo bench --bench ring`.)

use std::sync::{Arc, Weak};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use futures::future::{BoxFuture, FutureExt};
use rookery_core::schedule::parse_schedule;
use rookery_runtime::actors::activation::{Activation, ActivationSink, HostSide};
use rookery_runtime::actors::channel::{ActorChannel, ActorInstance, ReentrantInvoker};
use rookery_runtime::cluster::lease::ServingGate;
use rookery_runtime::cluster::table::TableState;
use rookery_runtime::config::ActorDefaults;
use rookery_runtime::metrics::HostMetrics;
use rookery_runtime::state::sled_store::SledStore;
use rookery_runtime::state::{validate_transaction, StateOp, StateStore};
use rookery_runtime::{ActorKey, Call, CallError, CallKind};

const NOW_MS: u64 = 1_764_547_200_000;

fn bench_schedules(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_schedule");
    for (name, due, period, ttl) in [
        ("iso_duration", "PT1S", "", ""),
        ("go_duration", "1h2m3.5s", "10ms", ""),
        ("iso_repetitions", "PT0S", "R5/PT1S", "PT1H"),
        (
            "rfc3339",
            "2026-12-01T10:00:00Z",
            "PT1M",
            "2026-12-02T10:00:00Z",
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| parse_schedule(due, period, ttl, NOW_MS).expect("valid schedule"))
        });
    }
    group.finish();
}

/// An actor type whose instances answer every call with its data.
struct Echo;

impl ActorChannel for Echo {
    fn activate(
        &self,
        _key: Arc<ActorKey>,
    ) -> BoxFuture<'static, Result<Box<dyn ActorInstance>, CallError>> {
        async { Ok(Box::new(Echo) as Box<dyn ActorInstance>) }.boxed()
    }
}

impl ActorInstance for Echo {
    fn invoke(&mut self, call: Arc<Call>) -> BoxFuture<'_, Result<Bytes, CallError>> {
        async move { Ok(call.data.clone()) }.boxed()
    }

    fn reentrant_invoker(&self) -> Option<ReentrantInvoker> {
        None
    }

    fn deactivate(self: Box<Self>) -> BoxFuture<'static, Result<(), CallError>> {
        async { Ok(()) }.boxed()
    }
}

struct NoSink;
impl ActivationSink for NoSink {
    fn finished(&self, _key: &ActorKey, _activation_id: u64) {}
}

/// One call queued in an activation's mailbox, run as a turn of an echo actor, answered: the
/// dispatch every local call pays after routing, before its channel.
fn bench_mailbox(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (_state, table) = tokio::sync::watch::channel(TableState::default());
    let activation = runtime.block_on(async {
        let channel: Arc<dyn ActorChannel> = Arc::new(Echo);
        let sink: Weak<dyn ActivationSink> = Weak::<NoSink>::new();
        Activation::new(
            Arc::new(ActorKey::new("Echo", "e1")),
            1,
            channel,
            ActorDefaults::default().type_options(),
            Arc::new(HostSide {
                // Always open: no placement lease in a micro-benchmark.
                gate: ServingGate::new(table, true),
                sink,
                metrics: Arc::new(HostMetrics::default()),
                state: None,
                app_policy: None,
            }),
        )
    });
    let call = Call {
        key: ActorKey::new("Echo", "e1"),
        method: "echo".into(),
        data: Bytes::from_static(&[0u8; 64]),
        metadata: Default::default(),
        call_chain_id: String::new(),
        kind: CallKind::Method,
    };
    c.bench_function("mailbox_dispatch", |b| {
        b.iter(|| {
            runtime
                .block_on(activation.call(Arc::new(call.clone())))
                .expect("echo")
        })
    });
}

fn bench_state(c: &mut Criterion) {
    let ops: Vec<StateOp> = (0..10)
        .map(|i| StateOp::Upsert {
            key: format!("key-{i}"),
            value: Bytes::from(vec![0u8; 64]),
            ttl_seconds: Some(60),
        })
        .collect();
    c.bench_function("validate_transaction_10_upserts", |b| {
        b.iter(|| validate_transaction(&ops, 4 << 20).expect("valid"))
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SledStore::open(&dir.path().join("state")).expect("sled");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let actor = ActorKey::new("Bench", "claimed");
    c.bench_function("sled_claim", |b| {
        b.iter(|| runtime.block_on(store.claim(&actor)).expect("claim"))
    });
}

criterion_group!(benches, bench_schedules, bench_mailbox, bench_state);
criterion_main!(benches);
