//! The RouterOS simulator with an API user and a logged-in client (tests of the RouterOS side).

use std::time::Duration;

use hotspot_edge::routeros::backend::{DesiredProfile, RouterOsNas};
use hotspot_edge::routeros::client::ApiClient;
use hotspot_edge::routeros::sim::model::PrintForms;
use hotspot_edge::routeros::sim::{Model, Simulator};

/// A simulator printing values in `forms` (the reply tag first or, as real routers, last), and a
/// client logged in as `edge`.
pub async fn sim_and_api(forms: PrintForms, tag_first: bool) -> (Simulator, ApiClient) {
    let mut model = Model::with_forms(forms);
    model.add_api_user("edge", "s3cret-pass", "hotspot-edge");
    let sim = Simulator::start("127.0.0.1:0", model).await.unwrap();
    sim.set_tag_first(tag_first);
    let api = ApiClient::connect_plain(
        &sim.addr.to_string(),
        "edge",
        "s3cret-pass",
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    (sim, api)
}

/// Ensures the profile `1h` (one device) on the router, with this rate limit.
pub async fn hour_profile(b: &RouterOsNas, rate_limit: Option<&str>) {
    b.ensure_profile(&DesiredProfile {
        name: "1h".into(),
        rate_limit: rate_limit.map(String::from),
        shared_users: 1,
    })
    .await
    .unwrap();
}
