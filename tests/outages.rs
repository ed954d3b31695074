//! The provider failing during a peak, against the in-process provider
//! (a real provider cannot be told to fail its token endpoint on demand):
//! refreshes that fail back off instead of being retried by every
//! request, and a provider that stops answering holds at most
//! `provider.max_concurrent_calls` calls; every other call is refused at
//! once instead of piling up behind them.

mod support;

use support::evil::{sign_in, Behaviour, Client, ClientCheck, Raw, World, WorldSetup};
use support::*;

fn client() -> Client<'static> {
    Client {
        check: ClientCheck::Post("s3cret".into()),
        id: "tollgate",
        secret: Some("s3cret"),
        auth: "client_secret_post",
    }
}

/// Every access token is due for refresh at once (`refresh_before` beyond
/// its 300 s life), and the refresh grant is answered by `refresh`.
async fn world(refresh: Option<Raw>, provider: &str) -> World {
    World::start(
        client(),
        WorldSetup {
            provider,
            session: "refresh_before = \"10m\"",
            before: Behaviour {
                refresh_raw: refresh,
                ..Behaviour::default()
            },
            ..WorldSetup::default()
        },
    )
    .await
}

fn refreshes(w: &World) -> usize {
    w.op.calls()
        .iter()
        .filter(|c| {
            c.endpoint == "token" && c.param("grant_type").as_deref() == Some("refresh_token")
        })
        .count()
}

/// The token endpoint fails every refresh: the first request that needs one
/// tries, the failure starts a backoff, and the following requests go on
/// with the still-valid access token without asking the provider again.
#[tokio::test]
async fn a_failing_refresh_backs_off_instead_of_being_retried_by_every_request() {
    let w = world(
        Raw::new(500, "application/json", r#"{"error":"server_error"}"#),
        "",
    )
    .await;
    let mut b = Browser::new();
    let callback = sign_in(&mut b, &w.tollgate.url("/app")).await;
    assert_eq!(callback.status, 302, "{}", callback.body);
    for i in 0..10 {
        let page = b.get(&w.tollgate.url(&format!("/app/{i}"))).await;
        assert_eq!(page.status, 200, "{}", page.body);
    }
    let attempts = refreshes(&w);
    assert!(
        (1..5).contains(&attempts),
        "{attempts} refresh attempts for 10 requests\n{}",
        w.tollgate.output.text()
    );
    assert!(w.tollgate.output.has("refresh backing off"));
}

/// The provider stops answering refreshes, and `max_concurrent_calls = 1`:
/// the one stalled refresh holds the only slot, and another user's login
/// is refused at once (503, `provider_busy`) rather than queued behind it.
#[tokio::test]
async fn a_stalled_provider_holds_its_slots_and_other_calls_are_refused_at_once() {
    let w = world(Raw::stall(), "max_concurrent_calls = 1\ntimeout = \"60s\"").await;
    let mut alice = Browser::new();
    let callback = sign_in(&mut alice, &w.tollgate.url("/app")).await;
    assert_eq!(callback.status, 302, "{}", callback.body);
    // Alice's next request refreshes, and the provider never answers.
    let url = w.tollgate.url("/app");
    let cookie = alice.cookie_header(&url);
    let stalled = tokio::spawn(async move {
        reqwest::Client::new()
            .get(url)
            .header("cookie", cookie)
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    let start = std::time::Instant::now();
    while refreshes(&w) == 0 {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "no refresh"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    let mut bob = Browser::new();
    let refused = sign_in(&mut bob, &w.tollgate.url("/app")).await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(
        w.tollgate.output.has("provider_busy"),
        "{}",
        w.tollgate.output.text()
    );
    assert!(
        !stalled.is_finished(),
        "the stalled refresh still holds its slot"
    );
    stalled.abort();
}
