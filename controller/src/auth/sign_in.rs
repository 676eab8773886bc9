//! The pause every dashboard sign-in attempt waits in: the state of the
//! sign-in throttle, kept with the rest of who-may-do-what so the
//! controller's shared state does not reach into the dashboard for it.

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The TCP peer's address, when the listener gave one (tests that call the
/// router directly have none; they are counted under the unspecified
/// address).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip())
                .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
        ))
    }
}

/// How long a failed sign-in holds the turn before it is answered.
pub const FAILURE_PAUSE: Duration = Duration::from_secs(1);

/// Sign-in attempts the controller holds at once (waiting their turn or
/// being checked); more are answered 429 at once.
pub const MAX_SIGN_INS_IN_FLIGHT: usize = 16;

/// Sign-in attempts one client address may have in flight at once.
pub const MAX_SIGN_INS_IN_FLIGHT_PER_CLIENT: usize = 4;

/// Every sign-in attempt takes one turn, the same for all clients, before
/// its token or password is checked; a failure keeps the turn for
/// [`FAILURE_PAUSE`] before it is answered. Guessing thus runs at most one
/// try a second per controller however many connections it uses, and the
/// right guess sent among many wrong ones is answered no sooner than the
/// guesses ahead of it. A right token or password with no failure ahead is
/// answered at once. Attempts waiting are capped, per client address and
/// in all, so a flood is answered 429 instead of queueing without end (and
/// one address cannot fill the queue). Password hashes (argon2,
/// deliberately costly) are checked one at a time, in the turn, off the
/// async threads.
///
/// The client address is the TCP peer's: behind a reverse proxy every
/// attempt shares the proxy's address, and the per-client cap becomes a
/// second global one (`X-Forwarded-For` is not trusted, since any client
/// can send it).
#[derive(Debug, Default)]
pub struct SignInThrottle {
    pub(crate) turn: tokio::sync::Mutex<()>,
    in_flight: std::sync::Mutex<InFlight>,
}

#[derive(Debug, Default)]
struct InFlight {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

/// Why an attempt was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// This client address has [`MAX_SIGN_INS_IN_FLIGHT_PER_CLIENT`] in flight.
    Client,
    /// The controller holds [`MAX_SIGN_INS_IN_FLIGHT`].
    Everyone,
}

/// An attempt let in; it leaves the count when dropped.
#[derive(Debug)]
pub struct Admitted<'a> {
    throttle: &'a SignInThrottle,
    client: IpAddr,
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        let mut in_flight = self
            .throttle
            .in_flight
            .lock()
            .expect("the sign-in count is never poisoned");
        in_flight.total -= 1;
        if let Some(count) = in_flight.by_client.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                in_flight.by_client.remove(&self.client);
            }
        }
    }
}

/// The address an attempt is counted under: an IPv6 client by its /64,
/// the smallest network one holder usually gets, so it cannot take a new
/// address per attempt.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

impl SignInThrottle {
    /// Lets an attempt from `client` in, unless the caps are reached.
    pub fn admit(&self, client: IpAddr) -> Result<Admitted<'_>, Busy> {
        let client = client_key(client);
        let mut in_flight = self
            .in_flight
            .lock()
            .expect("the sign-in count is never poisoned");
        let mine = in_flight.by_client.get(&client).copied().unwrap_or(0);
        if mine >= MAX_SIGN_INS_IN_FLIGHT_PER_CLIENT {
            return Err(Busy::Client);
        }
        if in_flight.total >= MAX_SIGN_INS_IN_FLIGHT {
            return Err(Busy::Everyone);
        }
        in_flight.total += 1;
        *in_flight.by_client.entry(client).or_default() += 1;
        Ok(Admitted {
            throttle: self,
            client,
        })
    }

    /// Attempts from `client` in flight now.
    pub fn in_flight(&self, client: IpAddr) -> usize {
        let in_flight = self
            .in_flight
            .lock()
            .expect("the sign-in count is never poisoned");
        in_flight.by_client.get(&client_key(client)).copied().unwrap_or(0)
    }

    /// Whether `password` is the one `hash` was made from, checked off the
    /// async threads.
    pub async fn password_matches(password: &str, hash: &str) -> anyhow::Result<bool> {
        let (password, hash) = (password.to_owned(), hash.to_owned());
        Ok(tokio::task::spawn_blocking(move || crate::auth::password_matches(&password, &hash)).await?)
    }
}
