//! A faulty object store: `object_store::memory::InMemory` behind an [`ObjectStore`] that, as
//! the seed decides, fails a request before doing it (a transient error), stalls it (tokio's
//! paused clock moves on), or **loses the reply of a put that succeeded** (the object is
//! stored, the caller sees an error). [`FaultyStore::heal`] turns the faults off for the final
//! drain; the oracle reads through the healthy inner store.

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How often each fault strikes (per request, 0.0 – 1.0).
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    pub fail: f64,
    pub stall: f64,
    pub lose_reply: f64,
}

/// What the store did to one request (for the trace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    Fail,
    LoseReply,
}

pub struct FaultyStore {
    inner: Arc<InMemory>,
    faults: Faults,
    rng: Mutex<StdRng>,
    healed: AtomicBool,
    /// Faults dealt, for the trace: drained by the driver after each step.
    log: Mutex<Vec<String>>,
}

impl fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({:?})", self.faults)
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore")
    }
}

impl FaultyStore {
    pub fn new(inner: Arc<InMemory>, faults: Faults, seed: u64) -> FaultyStore {
        FaultyStore {
            inner,
            faults,
            rng: Mutex::new(StdRng::seed_from_u64(seed ^ 0x5eed_f417)),
            healed: AtomicBool::new(false),
            log: Mutex::new(Vec::new()),
        }
    }

    /// Restarts the fault stream from `seed`.
    pub fn reseed(&self, seed: u64) {
        *self.rng.lock().unwrap_or_else(|e| e.into_inner()) = StdRng::seed_from_u64(seed);
    }

    /// No more faults from now on.
    pub fn heal(&self) {
        self.healed.store(true, Ordering::SeqCst);
    }

    /// The faults dealt since the last call.
    pub fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Rolls the dice for one request: how long to stall, and what goes wrong.
    fn roll(&self, op: &str, path: &Path, is_put: bool) -> (Duration, Fault) {
        if self.healed.load(Ordering::SeqCst) {
            return (Duration::ZERO, Fault::None);
        }
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let stall = if rng.gen_bool(self.faults.stall) {
            Duration::from_millis(rng.gen_range(100..4000))
        } else {
            Duration::ZERO
        };
        let fault = if rng.gen_bool(self.faults.fail) {
            Fault::Fail
        } else if is_put && rng.gen_bool(self.faults.lose_reply) {
            Fault::LoseReply
        } else {
            Fault::None
        };
        drop(rng);
        if fault != Fault::None || !stall.is_zero() {
            let what = match fault {
                Fault::Fail => "fails",
                Fault::LoseReply => "succeeds, reply lost",
                Fault::None => "succeeds",
            };
            let name = path
                .as_ref()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string();
            self.log
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("store: {op} {name} stalls {stall:?}, {what}"));
        }
        (stall, fault)
    }

    fn error(op: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: "FaultyStore",
            source: format!("simulated fault during {op}").into(),
        }
    }

    /// Runs `f` under the dice: stall, maybe fail before, maybe lose the reply after.
    async fn faulty<T>(
        &self,
        op: &str,
        path: &Path,
        is_put: bool,
        f: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let (stall, fault) = self.roll(op, path, is_put);
        if !stall.is_zero() {
            tokio::time::sleep(stall).await;
        }
        if fault == Fault::Fail {
            return Err(Self::error(op));
        }
        let out = f.await?;
        if fault == Fault::LoseReply {
            return Err(Self::error(op));
        }
        Ok(out)
    }
}

// `ObjectStore` is an `async_trait`: its methods are written out as boxed futures here.
impl ObjectStore for FaultyStore {
    fn put_opts<'a, 'b, 't>(
        &'a self,
        location: &'b Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> BoxFuture<'t, Result<PutResult>>
    where
        'a: 't,
        'b: 't,
        Self: 't,
    {
        Box::pin(self.faulty(
            "put",
            location,
            true,
            self.inner.put_opts(location, payload, opts),
        ))
    }

    fn put_multipart_opts<'a, 'b, 't>(
        &'a self,
        location: &'b Path,
        opts: PutMultipartOptions,
    ) -> BoxFuture<'t, Result<Box<dyn MultipartUpload>>>
    where
        'a: 't,
        'b: 't,
        Self: 't,
    {
        Box::pin(self.faulty(
            "multipart",
            location,
            false,
            self.inner.put_multipart_opts(location, opts),
        ))
    }

    fn get_opts<'a, 'b, 't>(
        &'a self,
        location: &'b Path,
        options: GetOptions,
    ) -> BoxFuture<'t, Result<GetResult>>
    where
        'a: 't,
        'b: 't,
        Self: 't,
    {
        Box::pin(self.faulty(
            "get",
            location,
            false,
            self.inner.get_opts(location, options),
        ))
    }

    fn get_ranges<'a, 'b, 'c, 't>(
        &'a self,
        location: &'b Path,
        ranges: &'c [Range<u64>],
    ) -> BoxFuture<'t, Result<Vec<Bytes>>>
    where
        'a: 't,
        'b: 't,
        'c: 't,
        Self: 't,
    {
        Box::pin(self.faulty(
            "get",
            location,
            false,
            self.inner.get_ranges(location, ranges),
        ))
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        use futures::StreamExt;
        let p = prefix.cloned().unwrap_or_default();
        let (stall, fault) = self.roll("list", &p, false);
        if fault == Fault::Fail {
            return futures::stream::once(async { Err(FaultyStore::error("list")) }).boxed();
        }
        let inner = self.inner.list(prefix);
        if stall.is_zero() {
            return inner;
        }
        futures::stream::once(tokio::time::sleep(stall))
            .filter_map(|()| std::future::ready(None))
            .chain(inner)
            .boxed()
    }

    fn list_with_delimiter<'a, 'b, 't>(
        &'a self,
        prefix: Option<&'b Path>,
    ) -> BoxFuture<'t, Result<ListResult>>
    where
        'a: 't,
        'b: 't,
        Self: 't,
    {
        let p = prefix.cloned().unwrap_or_default();
        Box::pin(async move {
            self.faulty("list", &p, false, self.inner.list_with_delimiter(prefix))
                .await
        })
    }

    fn copy_opts<'a, 'b, 'c, 't>(
        &'a self,
        from: &'b Path,
        to: &'c Path,
        options: CopyOptions,
    ) -> BoxFuture<'t, Result<()>>
    where
        'a: 't,
        'b: 't,
        'c: 't,
        Self: 't,
    {
        Box::pin(self.faulty("copy", to, true, self.inner.copy_opts(from, to, options)))
    }
}
