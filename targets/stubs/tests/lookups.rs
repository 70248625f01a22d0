//! The providers' lookups of what they already have (Twilio's message list, SendGrid's Email
//! Activity, a FHIR search by identifier): they find what the provider accepted and not what
//! it refused, are logged as GETs never accepted, and obey the knobs.

mod support;

use serde_json::{Value, json};
use stubs::Kind;
use support::{Served, TWILIO_PATH, serve};

async fn get(t: &Served, path_and_query: &str) -> (u16, Value) {
    let r = t
        .http
        .get(format!("{}{path_and_query}", t.api))
        .bearer_auth("SG.key")
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

fn field<'a>(v: &'a Value, list: &str, key: &str) -> Vec<&'a str> {
    v[list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list} in {v:#}"))
        .iter()
        .map(|m| m[key].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn twilio_lists_the_messages_it_accepted_newest_first_with_its_filters() {
    let t = serve(Kind::Twilio).await;
    t.knobs(json!({ "fail_first": 1 })).await;
    assert_eq!(
        t.sms("+15550000009", "refused")
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    for (to, body) in [
        ("+15550000001", "one"),
        ("+15550000002", "two"),
        ("+15550000001", "three"),
    ] {
        assert_eq!(t.sms(to, body).send().await.unwrap().status(), 201);
    }
    let invalid = t
        .http
        .post(format!("{}{TWILIO_PATH}", t.api))
        .form(&[("To", "+15550000009"), ("From", "+15550000000")])
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 400);

    let (status, all) = get(&t, TWILIO_PATH).await;
    assert_eq!(status, 200);
    assert_eq!(field(&all, "messages", "body"), ["three", "two", "one"]);
    for key in ["page", "page_size", "uri", "first_page_uri", "start", "end"] {
        assert!(!all[key].is_null(), "{key} in {all:#}");
    }
    assert_eq!(all["page_size"], 50);
    assert_eq!(all["next_page_uri"], Value::Null);
    assert_eq!(all["previous_page_uri"], Value::Null);
    let m = &all["messages"][0];
    assert!(m["sid"].as_str().unwrap().starts_with("SM") && m["sid"].as_str().unwrap().len() == 34);
    assert_eq!(m["status"], "sent");
    assert_eq!(m["account_sid"], "ACtest");
    assert!(m["date_sent"].as_str().unwrap().ends_with(" +0000"), "{m}");

    let (_, to_one) = get(&t, &format!("{TWILIO_PATH}?To=%2B15550000001")).await;
    assert_eq!(field(&to_one, "messages", "body"), ["three", "one"]);
    let (_, other_account) = get(&t, "/2010-04-01/Accounts/ACother/Messages.json").await;
    assert_eq!(
        field(&other_account, "messages", "body"),
        Vec::<&str>::new()
    );

    // DateSent: the day they were sent (the day the first accepted call arrived), not a
    // day long past; DateSent> and DateSent< compare with the day's midnight.
    let sent_at = t.calls().await[1]["at_ms"].as_u64().unwrap();
    let today = &stubs::clock::rfc3339(sent_at)[..10];
    let count = |v: &Value| v["messages"].as_array().unwrap().len();
    for (filter, expected) in [
        (format!("DateSent={today}"), 3),
        ("DateSent=2001-01-01".into(), 0),
        (format!("DateSent%3E={today}"), 3),
        ("DateSent%3E=2001-01-01".into(), 3),
        (format!("DateSent%3C={today}"), 0),
        ("DateSent%3C=2001-01-01".into(), 0),
    ] {
        let (_, found) = get(&t, &format!("{TWILIO_PATH}?{filter}")).await;
        assert_eq!(count(&found), expected, "{filter}: {found:#}");
    }

    // Paging.
    let (_, first) = get(&t, &format!("{TWILIO_PATH}?PageSize=2")).await;
    assert_eq!(field(&first, "messages", "body"), ["three", "two"]);
    let next = first["next_page_uri"].as_str().unwrap();
    assert!(
        next.contains("Page=1") && next.contains("PageSize=2"),
        "{next}"
    );
    let (_, second) = get(&t, next).await;
    assert_eq!(field(&second, "messages", "body"), ["one"]);
    assert_eq!(second["start"], 2);
    assert_eq!(second["next_page_uri"], Value::Null);
    assert!(
        second["previous_page_uri"]
            .as_str()
            .unwrap()
            .contains("Page=0")
    );

    // Bad filters are 400 in Twilio's error shape.
    for bad in [
        "?DateSent=yesterday",
        "?PageSize=0",
        "?PageSize=1001",
        "?to=%2B1",
    ] {
        let (status, body) = get(&t, &format!("{TWILIO_PATH}{bad}")).await;
        assert_eq!(status, 400, "{bad}");
        assert!(
            body["code"].is_u64() && body["more_info"].is_string(),
            "{body}"
        );
    }
}

#[tokio::test]
async fn lookups_are_logged_never_accepted_and_obey_the_knobs() {
    let t = serve(Kind::Twilio).await;
    assert_eq!(
        t.sms("+15550000001", "one").send().await.unwrap().status(),
        201
    );
    t.knobs(json!({ "fail_first": 1, "error_status": 429 }))
        .await;
    let (status, body) = get(&t, TWILIO_PATH).await;
    assert_eq!(
        status, 429,
        "a failing provider fails its lookups too: {body}"
    );
    let (status, _) = get(&t, TWILIO_PATH).await;
    assert_eq!(status, 200);
    let calls = t.calls().await;
    assert_eq!(calls.len(), 3);
    for c in &calls[1..] {
        assert_eq!(c["method"], "GET");
        assert_eq!(c["accepted"], false, "{c}");
        assert_eq!(c["body"], Value::Null);
    }
    assert_eq!(calls[1]["status"], 429);
    assert_eq!(calls[2]["status"], 200);
}

async fn mail(t: &Served, to: &str, args: Value) -> u16 {
    t.http
        .post(format!("{}/v3/mail/send", t.api))
        .bearer_auth("SG.key")
        .json(&json!({
            "personalizations": [{ "to": [{ "email": to }] }],
            "from": { "email": "noreply@mediconnect.test" },
            "subject": "Your appointment",
            "content": [{ "type": "text/plain", "value": "See you" }],
            "custom_args": args,
        }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn q(query: &str) -> String {
    let encoded = serde_urlencoded::to_string([("query", query)]).unwrap();
    format!("/v3/messages?limit=10&{encoded}")
}

#[tokio::test]
async fn sendgrid_activity_finds_accepted_mail_by_unique_args_and_recipient() {
    let t = serve(Kind::Sendgrid).await;
    t.knobs(json!({ "fail_first": 1 })).await;
    let a = |id: &str, kind: &str| json!({ "appointment_id": id, "kind": kind });
    assert_eq!(mail(&t, "refused@x.test", a("a1", "24h")).await, 503);
    assert_eq!(mail(&t, "pat@x.test", a("a1", "24h")).await, 202);
    assert_eq!(mail(&t, "pat@x.test", a("a1", "1h")).await, 202);
    assert_eq!(mail(&t, "sam@x.test", a("a2", "24h")).await, 202);

    let (status, by_id) = get(&t, &q(r#"unique_args['appointment_id']="a1""#)).await;
    assert_eq!(status, 200, "{by_id}");
    assert_eq!(
        field(&by_id, "messages", "to_email"),
        ["pat@x.test", "pat@x.test"]
    );
    let (_, both) = get(
        &t,
        &q(r#"unique_args['appointment_id']="a1" AND unique_args['kind']="24h""#),
    )
    .await;
    assert_eq!(field(&both, "messages", "to_email"), ["pat@x.test"]);
    let m = &both["messages"][0];
    for key in [
        "msg_id",
        "from_email",
        "subject",
        "status",
        "last_event_time",
    ] {
        assert!(m[key].is_string(), "{key} in {m}");
    }
    assert!(
        m["opens_count"].is_u64() && m["clicks_count"].is_u64(),
        "{m}"
    );
    assert_eq!(m["from_email"], "noreply@mediconnect.test");

    // The refused mail to refused@ is nowhere.
    let (_, refused) = get(&t, &q(r#"to_email="refused@x.test""#)).await;
    assert_eq!(field(&refused, "messages", "msg_id"), Vec::<&str>::new());
    let (_, sam) = get(&t, &q(r#"(to_email="sam@x.test")"#)).await;
    assert_eq!(field(&sam, "messages", "to_email"), ["sam@x.test"]);
    let (_, all) = get(&t, "/v3/messages?limit=2").await;
    assert_eq!(
        field(&all, "messages", "to_email"),
        ["sam@x.test", "pat@x.test"]
    );

    for bad in [
        q(r#"unique_args['appointment_id']=a1"#),
        q(r#"to_email="x" AND"#),
        "/v3/messages?limit=0".to_string(),
    ] {
        let (status, body) = get(&t, &bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["errors"][0]["message"].is_string(), "{body}");
    }
    let (_, body) = get(&t, &q("to_email=")).await;
    assert_eq!(body["errors"][0]["field"], "query");

    let unauthenticated = t
        .http
        .get(format!("{}/v3/messages?limit=1", t.api))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
}

async fn put(t: &Served, id: &str, value: &str) -> u16 {
    t.http
        .put(format!("{}/fhir/Appointment/{id}", t.api))
        .json(&json!({
            "resourceType": "Appointment",
            "identifier": [{ "system": "urn:mediconnect:appointment", "value": value }],
            "status": "booked",
        }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn ehr_searches_appointments_by_identifier() {
    let t = serve(Kind::Ehr).await;
    t.knobs(json!({ "fail_first": 1 })).await;
    assert_eq!(put(&t, "r3", "a3").await, 503);
    assert_eq!(put(&t, "r1", "a1").await, 201);
    assert_eq!(put(&t, "r1", "a1").await, 200);
    assert_eq!(put(&t, "r2", "a2").await, 201);

    let search = |token: &str| {
        let query = serde_urlencoded::to_string([("identifier", token)]).unwrap();
        format!("/fhir/Appointment?{query}")
    };
    let (status, bundle) = get(&t, &search("urn:mediconnect:appointment|a1")).await;
    assert_eq!(status, 200);
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "searchset");
    assert_eq!(bundle["total"], 1);
    let entry = &bundle["entry"][0];
    assert_eq!(entry["resource"]["id"], "r1");
    assert_eq!(entry["resource"]["meta"]["versionId"], "2");
    assert_eq!(entry["search"]["mode"], "match");
    assert!(
        entry["fullUrl"]
            .as_str()
            .unwrap()
            .ends_with("/fhir/Appointment/r1")
    );

    let (_, refused) = get(&t, &search("urn:mediconnect:appointment|a3")).await;
    assert_eq!(refused["total"], 0, "{refused}");
    let (_, other_system) = get(&t, &search("urn:other|a1")).await;
    assert_eq!(other_system["total"], 0);
    let (_, any_system) = get(&t, &search("a2")).await;
    assert_eq!(any_system["entry"][0]["resource"]["id"], "r2");
    let (_, either) = get(
        &t,
        &search("urn:mediconnect:appointment|a1,urn:mediconnect:appointment|a2"),
    )
    .await;
    assert_eq!(either["total"], 2);

    let (status, body) = get(&t, "/fhir/Appointment?patient=1").await;
    assert_eq!(status, 400);
    assert_eq!(body["resourceType"], "OperationOutcome");
    let (status, read) = get(&t, "/fhir/Appointment/r2").await;
    assert_eq!((status, &read["id"]), (200, &json!("r2")));

    let calls = t.calls().await;
    let gets: Vec<&Value> = calls.iter().filter(|c| c["method"] == "GET").collect();
    assert_eq!(gets.len(), 7);
    assert!(gets.iter().all(|c| c["accepted"] == false));
}
