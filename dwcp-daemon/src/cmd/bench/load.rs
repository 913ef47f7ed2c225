//! The load of Narwhal's benchmark client: every [`BURST_INTERVAL`] each client
//! sends a burst of its share of `rate / 20` transactions; the first transaction of a
//! burst is a tagged sample (first byte 0, then the sample id) whose send time the
//! client records, the others start with 1, the client's index and a counter, so
//! that no two transactions are equal (engines drop repeats).

use bytes::{BufMut, Bytes, BytesMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Time between two bursts of one client (Narwhal's `BURST_DURATION`).
pub const BURST_INTERVAL: Duration = Duration::from_millis(50);
/// Bursts per second.
pub const BURSTS_PER_SECOND: u64 = 20;
/// Smallest transaction that holds the tag, the client index and a counter.
pub const MIN_TX_SIZE: usize = 16;

const SAMPLE: u8 = 0;
const STANDARD: u8 = 1;

/// Transactions per burst of each of `clients` clients sharing `rate` tx/s: at least
/// one, the sample.
pub fn burst_size(rate: u64, clients: usize) -> u64 {
    (rate / clients.max(1) as u64 / BURSTS_PER_SECOND).max(1)
}

/// The id of sample number `counter` of client `client`: unique over clients.
pub fn sample_id(client: usize, counter: u64) -> u64 {
    ((client as u64) << 40) | (counter & ((1 << 40) - 1))
}

/// The sample id a transaction carries, if it is a sample.
pub fn sample_of(tx: &[u8]) -> Option<u64> {
    if tx.first() != Some(&SAMPLE) {
        return None;
    }
    let id: [u8; 8] = tx.get(1..9)?.try_into().ok()?;
    Some(u64::from_be_bytes(id))
}

/// One client's transactions and its record of when it sent each sample.
pub struct Client {
    index: usize,
    tx_size: usize,
    burst: u64,
    counter: u64,
    bursts: u64,
    /// `(sample id, send time)` of every sample sent.
    pub samples: Vec<(u64, Instant)>,
    /// When the first burst went out.
    pub first_send: Option<Instant>,
    /// Bursts that took longer than [`BURST_INTERVAL`] to send, or started late.
    pub late_bursts: u64,
    /// Transactions the node refused or that could not be delivered.
    pub refused: u64,
    /// Transactions handed to the node.
    pub sent: u64,
}

impl Client {
    /// Client `index` sending `burst` transactions of `tx_size` bytes per burst.
    pub fn new(index: usize, tx_size: usize, burst: u64) -> Client {
        Client {
            index,
            tx_size,
            burst,
            counter: 0,
            bursts: 0,
            samples: Vec::new(),
            first_send: None,
            late_bursts: 0,
            refused: 0,
            sent: 0,
        }
    }

    /// The next burst (the sample first, then standard transactions) and its
    /// sample's id.
    pub fn next_burst(&mut self) -> (Vec<Bytes>, u64) {
        let id = sample_id(self.index, self.bursts);
        self.bursts += 1;
        let mut buf = BytesMut::with_capacity(self.tx_size * self.burst as usize);
        let mut txs = Vec::with_capacity(self.burst as usize);
        for k in 0..self.burst {
            if k == 0 {
                buf.put_u8(SAMPLE);
                buf.put_u64(id);
            } else {
                buf.put_u8(STANDARD);
                buf.put_u32(self.index as u32);
                buf.put_u64(self.counter);
                self.counter += 1;
            }
            buf.resize(self.tx_size, 0);
            txs.push(buf.split().freeze());
        }
        (txs, id)
    }

    /// Sends bursts through `send` on Narwhal's schedule until `stop_at`: `send`
    /// returns whether the node took the burst. Records sample send times and counts
    /// bursts that could not keep to the schedule.
    pub fn run(&mut self, stop_at: Instant, mut send: impl FnMut(Vec<Bytes>) -> bool) {
        let start = Instant::now();
        let mut next = start;
        while next < stop_at {
            let now = Instant::now();
            if now < next {
                std::thread::sleep(next - now);
            }
            let began = Instant::now();
            let (burst, id) = self.next_burst();
            let n = burst.len() as u64;
            self.first_send.get_or_insert(began);
            if send(burst) {
                self.samples.push((id, began));
                self.sent += n;
            } else {
                self.refused += n;
            }
            // Narwhal warns when a burst takes longer than its interval; a burst that
            // starts a whole interval late is the same failure seen from the clock.
            if began.elapsed() > BURST_INTERVAL || began > next + BURST_INTERVAL {
                self.late_bursts += 1;
            }
            next += BURST_INTERVAL;
            // Do not try to catch up with a burst storm: keep the rate, skip the past.
            while next + BURST_INTERVAL < Instant::now() {
                next += BURST_INTERVAL;
            }
        }
    }

    /// Bursts made.
    pub fn bursts(&self) -> u64 {
        self.bursts
    }
}

/// One client thread per node, each sending to its node only (as Narwhal's clients
/// each talk to one worker).
pub struct Clients {
    handles: Vec<JoinHandle<Client>>,
}

impl Clients {
    /// Starts `n` clients sharing `rate` tx/s until `stop_at`; client `i` hands its
    /// bursts to `sender(i)`, which returns whether the node took a burst.
    pub fn start<S>(
        n: usize,
        rate: u64,
        tx_size: usize,
        stop_at: Instant,
        sender: impl Fn(usize) -> S,
    ) -> std::io::Result<Clients>
    where
        S: FnMut(Vec<Bytes>) -> bool + Send + 'static,
    {
        let burst = burst_size(rate, n);
        let handles = (0..n)
            .map(|i| {
                let send = sender(i);
                std::thread::Builder::new()
                    .name(format!("client-{i}"))
                    .spawn(move || {
                        let mut client = Client::new(i, tx_size, burst);
                        client.run(stop_at, send);
                        client
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Clients { handles })
    }

    /// Waits for the clients to finish and adds up what they did.
    pub fn join(self) -> anyhow::Result<LoadTotals> {
        let mut t = LoadTotals::default();
        for h in self.handles {
            let c = h
                .join()
                .map_err(|_| anyhow::anyhow!("a client thread panicked"))?;
            t.sent += c.sent;
            t.refused += c.refused;
            t.late_bursts += c.late_bursts;
            t.bursts += c.bursts;
            t.first_send = match (t.first_send, c.first_send) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            t.samples.extend(c.samples);
        }
        Ok(t)
    }
}

/// What all clients did together.
#[derive(Debug, Clone, Default)]
pub struct LoadTotals {
    /// Transactions handed to the nodes.
    pub sent: u64,
    /// Transactions refused or undelivered.
    pub refused: u64,
    /// Bursts that missed the schedule.
    pub late_bursts: u64,
    /// Bursts made.
    pub bursts: u64,
    /// The first burst of any client.
    pub first_send: Option<Instant>,
    /// `(sample id, send time)` of every sample the nodes took.
    pub samples: Vec<(u64, Instant)>,
}

/// Calls `read` every `period` after `origin` on a thread of its own until `stop` is
/// set; joining the thread gives the readings, the first taken one period in.
pub fn read_every<T: Send + 'static>(
    origin: Instant,
    period: Duration,
    stop: Arc<AtomicBool>,
    mut read: impl FnMut() -> T + Send + 'static,
) -> JoinHandle<Vec<T>> {
    std::thread::spawn(move || {
        let mut readings = Vec::new();
        let mut next = origin + period;
        while !stop.load(Ordering::Relaxed) {
            if Instant::now() >= next {
                readings.push(read());
                next += period;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        readings
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn bursts_are_sized_tagged_and_unique_across_clients() {
        let mut seen = HashSet::new();
        for client in 0..3 {
            let mut c = Client::new(client, 64, burst_size(1200, 3));
            for b in 0..4 {
                let (burst, id) = c.next_burst();
                assert_eq!(id, sample_id(client, b));
                assert_eq!(burst.len(), 20);
                assert!(burst.iter().all(|t| t.len() == 64));
                assert_eq!(sample_of(&burst[0]), Some(sample_id(client, b)));
                assert!(burst[1..].iter().all(|t| sample_of(t).is_none()));
                for t in burst {
                    assert!(seen.insert(t), "a repeated transaction");
                }
            }
        }
        assert_eq!(burst_size(10, 4), 1, "at least the sample");
    }

    #[test]
    fn a_client_keeps_the_schedule_and_reports_a_node_that_cannot() {
        let mut c = Client::new(0, 32, 2);
        let stop = Instant::now() + Duration::from_millis(260);
        c.run(stop, |_| true);
        assert!((5..=7).contains(&c.bursts()), "{} bursts", c.bursts());
        assert_eq!(c.samples.len() as u64, c.bursts());
        assert_eq!(c.late_bursts, 0);

        let mut slow = Client::new(1, 32, 2);
        let stop = Instant::now() + Duration::from_millis(300);
        slow.run(stop, |_| {
            std::thread::sleep(Duration::from_millis(80));
            false
        });
        assert!(slow.late_bursts > 0);
        assert_eq!(slow.sent, 0);
        assert!(slow.samples.is_empty(), "refused samples were never sent");
    }
}
