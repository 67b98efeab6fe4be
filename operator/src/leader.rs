//! Leader election through a coordination.k8s.io Lease: one active operator,
//! others wait. Losing the lease ends the process (Kubernetes restarts it as a
//! follower), so two replicas never reconcile at once.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use std::time::Duration;

pub const LEASE_NAME: &str = "tenant-gateway-operator";
pub const LEASE_SECONDS: i32 = 15;
const RENEW_EVERY: Duration = Duration::from_secs(3);

/// Whether `identity` may take the lease at `now`.
pub fn can_acquire(spec: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> bool {
    let Some(spec) = spec else { return true };
    match spec.holder_identity.as_deref() {
        None | Some("") => true,
        Some(h) if h == identity => true,
        Some(_) => {
            let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref());
            let duration = i64::from(spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS));
            match renewed {
                Some(MicroTime(t)) => *t + SignedDuration::from_secs(duration) < now,
                None => true,
            }
        }
    }
}

fn held_spec(identity: &str, previous: Option<&LeaseSpec>, now: Timestamp) -> LeaseSpec {
    let same_holder = previous.and_then(|p| p.holder_identity.as_deref()) == Some(identity);
    LeaseSpec {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: Some(LEASE_SECONDS),
        acquire_time: if same_holder {
            previous.and_then(|p| p.acquire_time.clone())
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(
            previous.and_then(|p| p.lease_transitions).unwrap_or(0) + i32::from(!same_holder),
        ),
        ..Default::default()
    }
}

/// One attempt to take or renew the lease. Ok(true) when we hold it.
async fn try_hold(api: &Api<Lease>, identity: &str) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    match api.get_opt(LEASE_NAME).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(LEASE_NAME.into()),
                    ..Default::default()
                },
                spec: Some(held_spec(identity, None, now)),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        Some(mut lease) => {
            if !can_acquire(lease.spec.as_ref(), identity, now) {
                return Ok(false);
            }
            lease.spec = Some(held_spec(identity, lease.spec.as_ref(), now));
            // resourceVersion makes this a compare-and-swap.
            match api
                .replace(LEASE_NAME, &PostParams::default(), &lease)
                .await
            {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

/// Wait until we hold the lease, then keep renewing it in the background.
/// The returned future completes if the lease is lost.
pub async fn acquire(api: Api<Lease>, identity: String) -> impl std::future::Future<Output = ()> {
    loop {
        match try_hold(&api, &identity).await {
            Ok(true) => break,
            Ok(false) => tracing::info!(holder_wanted = %identity, "waiting for the leader lease"),
            Err(e) => tracing::warn!(error = %e, "leader lease check failed"),
        }
        tokio::time::sleep(RENEW_EVERY).await;
    }
    tracing::info!(identity = %identity, "became leader");
    async move {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            match try_hold(&api, &identity).await {
                Ok(true) => last_ok = tokio::time::Instant::now(),
                Ok(false) => {
                    tracing::error!("leader lease taken by another replica");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "renewing the leader lease failed");
                    // Stop before another replica may take over.
                    if last_ok.elapsed() > Duration::from_secs((LEASE_SECONDS - 4) as u64) {
                        tracing::error!("could not renew the leader lease in time");
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(Timestamp::from_second(renewed).unwrap())),
            ..Default::default()
        }
    }

    #[test]
    fn lease_rules() {
        let now = Timestamp::from_second(1_000).unwrap();
        assert!(can_acquire(None, "a", now));
        assert!(
            can_acquire(Some(&spec("a", 999)), "a", now),
            "renew our own"
        );
        assert!(
            !can_acquire(Some(&spec("b", 990)), "a", now),
            "b's lease is fresh"
        );
        assert!(
            can_acquire(Some(&spec("b", 980)), "a", now),
            "b's lease expired"
        );
        let taken = held_spec("a", Some(&spec("b", 980)), now);
        assert_eq!(taken.lease_transitions, Some(1));
        let renewed = held_spec("a", Some(&taken), now);
        assert_eq!(renewed.lease_transitions, Some(1));
        assert_eq!(renewed.acquire_time, taken.acquire_time);
    }
}
