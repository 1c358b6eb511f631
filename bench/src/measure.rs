//! Running a workload from concurrent tasks and reporting it against a baseline of the same
//! run: rates, latency quantiles and the `ratios:` line that CONVENTIONS describes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::Mutex;

pub struct Run {
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
}

impl Run {
    pub fn rate(&self, n: usize) -> f64 {
        n as f64 / self.elapsed.as_secs_f64()
    }

    pub fn describe(&self, n: usize) -> String {
        format!(
            "{:>8.0}/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
            self.rate(n),
            self.latency.value_at_quantile(0.5) as f64 / 1000.0,
            self.latency.value_at_quantile(0.99) as f64 / 1000.0
        )
    }
}

/// Runs `n` operations from `concurrency` tasks; `op(i)` is the i-th operation.
pub async fn measure<F, Fut>(n: usize, concurrency: usize, op: F) -> anyhow::Result<Run>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let latency = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let (op, latency) = (op.clone(), latency.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = t;
            while i < n {
                let begin = Instant::now();
                op(i).await?;
                latency
                    .lock()
                    .await
                    .record(begin.elapsed().as_micros() as u64)?;
                i += concurrency;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = started.elapsed();
    let latency = Arc::try_unwrap(latency)
        .map_err(|_| anyhow::anyhow!("tasks still hold the histogram"))?
        .into_inner();
    Ok(Run { elapsed, latency })
}

impl Run {
    /// The latency at quantile `q` in milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }
}

/// `measured / baseline`, guarded against a zero baseline.
pub fn ratio(measured: f64, baseline: f64) -> f64 {
    measured / baseline.max(f64::MIN_POSITIVE)
}

/// The last line of every benchmark: `ratios: KEY=VALUE ...` (CONVENTIONS).
pub fn print_ratios(ratios: &[(String, f64)]) {
    let line: Vec<String> = ratios.iter().map(|(k, v)| format!("{k}={v:.2}")).collect();
    println!("ratios: {}", line.join(" "));
}
