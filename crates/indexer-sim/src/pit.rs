//! Point-in-time contexts: a frozen snapshot time plus the indices resolved at creation,
//! kept alive by `keep_alive` and extended by each search that names one.
//!
//! Promises: an expired PIT is gone (searching it is a 404); at most 300 are open
//! (`search.max_open_pit_context`); `keep_alive` above 24h is refused
//! (`point_in_time.max_keep_alive`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use rand::RngCore;

use crate::opensearch::OsError;

pub const MAX_OPEN: usize = 300;
pub const MAX_KEEP_ALIVE: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone)]
pub struct Pit {
    pub indices: Vec<bool>,
    pub snapshot_ms: u64,
    pub excluded_shard: Option<u8>,
    pub expires: Instant,
    pub creation_time: i64,
    pub keep_alive: Duration,
}

#[derive(Default)]
pub struct Pits {
    map: Mutex<HashMap<String, Pit>>,
    counter: Mutex<u64>,
}

impl Pits {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pit>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn purge(map: &mut HashMap<String, Pit>, now: Instant) {
        map.retain(|_, p| p.expires > now);
    }

    /// Opens a PIT and returns its id.
    pub fn create(&self, pit: Pit) -> Result<String, OsError> {
        let mut map = self.lock();
        Pits::purge(&mut map, Instant::now());
        if map.len() >= MAX_OPEN {
            return Err(OsError::new(500, "illegal_argument_exception", format!(
                "Trying to create too many Point In Time contexts. Must be less than or equal to: [{MAX_OPEN}]. This limit can be set by changing the [search.max_open_pit_context] setting."
            )));
        }
        let n = {
            let mut c = self
                .counter
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *c += 1;
            *c
        };
        let mut bytes = Vec::with_capacity(96);
        bytes.extend_from_slice(b"\x8e\xb7\x43\x41\x01\x0fwazuh-alerts-4.x");
        bytes.extend_from_slice(&n.to_be_bytes());
        let mut rnd = [0u8; 64];
        rand::thread_rng().fill_bytes(&mut rnd);
        bytes.extend_from_slice(&rnd);
        let id = base64::engine::general_purpose::STANDARD.encode(bytes);
        map.insert(id.clone(), pit);
        Ok(id)
    }

    /// Looks a PIT up, extending its life when `keep_alive` is given.
    pub fn get(&self, id: &str, keep_alive: Option<Duration>) -> Option<Pit> {
        let mut map = self.lock();
        let now = Instant::now();
        Pits::purge(&mut map, now);
        let p = map.get_mut(id)?;
        if let Some(ka) = keep_alive {
            p.expires = now + ka;
            p.keep_alive = ka;
        }
        Some(p.clone())
    }

    /// Deletes PITs; returns (id, whether it existed).
    pub fn delete(&self, ids: &[String]) -> Vec<(String, bool)> {
        let mut map = self.lock();
        Pits::purge(&mut map, Instant::now());
        ids.iter()
            .map(|id| (id.clone(), map.remove(id).is_some()))
            .collect()
    }

    /// Deletes every PIT; returns their ids.
    pub fn delete_all(&self) -> Vec<String> {
        let mut map = self.lock();
        Pits::purge(&mut map, Instant::now());
        map.drain().map(|(k, _)| k).collect()
    }

    /// Open PITs: (id, creation time, keep_alive ms).
    pub fn list(&self) -> Vec<(String, i64, u128)> {
        let mut map = self.lock();
        Pits::purge(&mut map, Instant::now());
        map.iter()
            .map(|(k, p)| (k.clone(), p.creation_time, p.keep_alive.as_millis()))
            .collect()
    }

    pub fn open(&self) -> usize {
        let mut map = self.lock();
        Pits::purge(&mut map, Instant::now());
        map.len()
    }
}
