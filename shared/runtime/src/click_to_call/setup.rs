//! What an admin registers in the CRMs: HubSpot's calling settings
//! (`vicibridge hubspot calling-setup`) and Salesforce's call center definition
//! (`vicibridge salesforce call-center`).

use std::time::Duration;

use vicibridge_core::config::ClickToCallConfig;

/// Widget size in HubSpot's call panel and in the Salesforce utility bar.
pub const WIDTH: u32 = 320;
pub const HEIGHT: u32 = 420;

/// The body of `POST|PATCH /crm/v3/extensions/calling/{appId}/settings`.
pub fn hubspot_calling_settings(c: &ClickToCallConfig, ready: bool) -> serde_json::Value {
    serde_json::json!({
        "name": "VICIdial (vicibridge)",
        "url": format!("{}/dialer/hubspot", c.public_base_url),
        "width": WIDTH,
        "height": HEIGHT,
        "isReady": ready,
        "supportsCustomObjects": false,
        "supportsInboundCalling": false,
        "usesCallingWindow": false,
        "usesRemote": false,
    })
}

/// The call center definition file to import in Setup → Call Centers.
pub fn salesforce_call_center_xml(c: &ClickToCallConfig) -> String {
    let url = format!("{}/dialer/salesforce", c.public_base_url);
    let items = [
        ("reqInternalName", "InternalName", "VicibridgeVicidial".to_owned()),
        ("reqDisplayName", "Display Name", "VICIdial (vicibridge)".to_owned()),
        ("reqAdapterUrl", "CTI Adapter URL", url),
        ("reqUseApi", "Use CTI API", "true".to_owned()),
        ("reqSoftphoneHeight", "Softphone Height", HEIGHT.to_string()),
        ("reqSoftphoneWidth", "Softphone Width", WIDTH.to_string()),
        ("reqSalesforceCompatibilityMode", "Salesforce Compatibility Mode", "Lightning".to_owned()),
    ];
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<callCenter>\n  <section sortOrder=\"0\" name=\"reqGeneralInfo\" label=\"General Information\">\n",
    );
    for (n, (name, label, value)) in items.iter().enumerate() {
        xml.push_str(&format!(
            "    <item sortOrder=\"{n}\" name=\"{name}\" label=\"{label}\">{}</item>\n",
            html_escape::encode_text(value)
        ));
    }
    xml.push_str("  </section>\n</callCenter>\n");
    xml
}

#[derive(Debug, thiserror::Error)]
pub enum CallingSetupError {
    #[error("[click_to_call.hubspot] app_id is needed (the calling app's id, from its developer account page)")]
    NoAppId,
    #[error("HubSpot calling settings: {0}")]
    Http(String),
}

/// Creates or updates the calling settings with the developer account's API key (HubSpot's
/// calling settings endpoints take `hapikey`). Returns what was done.
pub async fn register_hubspot_calling(
    c: &ClickToCallConfig,
    api_base: &str,
    developer_api_key: &str,
    ready: bool,
) -> Result<String, CallingSetupError> {
    let app_id = c.hubspot.as_ref().and_then(|h| h.app_id.as_deref()).ok_or(CallingSetupError::NoAppId)?;
    let http = vicibridge_http::client_builder()
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| CallingSetupError::Http(e.to_string()))?;
    let url = format!("{api_base}/crm/v3/extensions/calling/{app_id}/settings");
    let with_key =
        format!("{url}?hapikey={}", form_urlencoded::byte_serialize(developer_api_key.as_bytes()).collect::<String>());
    // The key is a query parameter: errors below name the path, never the URL.
    let fail = |e: reqwest::Error| CallingSetupError::Http(format!("{}: {}", url, e.without_url()));
    let existing = http.get(&with_key).send().await.map_err(fail)?;
    let body = hubspot_calling_settings(c, ready);
    let (verb, sent) = match existing.status().as_u16() {
        200 => ("updated", http.patch(&with_key).json(&body).send().await.map_err(fail)?),
        404 => ("created", http.post(&with_key).json(&body).send().await.map_err(fail)?),
        s => return Err(CallingSetupError::Http(format!("GET {url}: HTTP {s}"))),
    };
    if !sent.status().is_success() {
        let status = sent.status();
        let text = sent.text().await.unwrap_or_default();
        return Err(CallingSetupError::Http(format!("{url}: HTTP {status}: {text:.300}")));
    }
    Ok(format!("{verb} calling settings of app {app_id}: url {}", body["url"].as_str().unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_center_xml_names_the_adapter_and_lightning() {
        let c: ClickToCallConfig = toml::from_str("public_base_url = \"https://bridge.example.com\"\n").unwrap();
        let xml = salesforce_call_center_xml(&c);
        assert!(xml.contains(">https://bridge.example.com/dialer/salesforce</item>"), "{xml}");
        assert!(xml.contains("name=\"reqUseApi\" label=\"Use CTI API\">true<"));
        assert!(xml.contains(">Lightning<"));
        let s = hubspot_calling_settings(&c, false);
        assert_eq!(s["url"], "https://bridge.example.com/dialer/hubspot");
        assert_eq!(s["isReady"], false);
    }
}
